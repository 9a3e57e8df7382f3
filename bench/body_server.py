"""A 127.0.0.1 HTTP server for bench/http_memory.py, in a process of its own (its memory is not the host's).

``GET /body`` answers the current body: 1,000 bytes of ``x`` until ``POST /size?n=N`` sets N bytes (made once,
at that request, so the measured fetch costs the server nothing new). Prints the port it listens on as one line,
then serves until killed. Usage: python bench/body_server.py
"""

from __future__ import annotations

import asyncio

from aiohttp import web

_MAX = 1024 * 1024 * 1024


async def main() -> None:
    current = [b"x" * 1000]

    async def body(request: web.Request) -> web.Response:
        return web.Response(body=current[0])

    async def size(request: web.Request) -> web.Response:
        current[0] = b"x" * min(int(request.query["n"]), _MAX)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/body", body)
    app.router.add_post("/size", size)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
