"""Push mode without a channel: messages committed to the real log are POSTed, signed, to a receiver on
127.0.0.1; a conversation's messages arrive in order even when a push fails and is retried."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web
from apihelp import inject, started_host

from airlock.agentapi.push import sign, verify


async def test_a_conversation_is_pushed_in_order_through_failures(airlock_home: Path) -> None:
    accepted: list[str] = []
    tries: list[str] = []
    secret: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        assert verify(secret[0], request.headers["X-Airlock-Timestamp"], body,
                      request.headers["X-Airlock-Signature"])
        content = json.loads(body)["content"]
        tries.append(content)
        if content == "one" and tries.count("one") == 1:
            return web.Response(status=500)  # the first push of the first message fails
        accepted.append(content)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with started_host(airlock_home) as host:
            for text in ("one", "two", "three"):
                inject(host, "pushed", text, chat="5")  # one conversation
            inject(host, "pushed", "other chat", chat="6")
            _, key = host.agents.add("pushed", host.secrets, f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
            secret.append(key or "")
            for _ in range(200):
                if len(accepted) == 4:
                    break
                await asyncio.sleep(0.05)
            mine = [c for c in accepted if c != "other chat"]
            assert mine == ["one", "two", "three"], tries
            # "two" was never pushed before "one" was accepted
            assert tries.index("two") > [i for i, c in enumerate(tries) if c == "one"][-1], tries
            assert host.bus.unacknowledged() == 0
    finally:
        await runner.cleanup()


def test_signature_shape() -> None:
    sig = sign("s3cret", "1700000000", b'{"a":1}')
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert verify("s3cret", "1700000000", b'{"a":1}', sig)
    assert not verify("s3cret", "1700000001", b'{"a":1}', sig)  # the timestamp is signed
    assert not verify("other", "1700000000", b'{"a":1}', sig)
    assert not verify("s3cret", "1700000000", b'{"a":2}', sig)
