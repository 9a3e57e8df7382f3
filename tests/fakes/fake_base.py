"""What the fake platform servers share: serving on 127.0.0.1, waiting for records, reading a bearer token.

:func:`serving` serves any aiohttp app on 127.0.0.1 for one block: the small ad-hoc servers of single test
modules (an upstream, a redirector, a websocket peer) use it rather than a fake of their own;
:func:`serving_on_thread` does the same for synchronous tests, on an event loop of its own in a thread.

A fake subclasses :class:`FakeServer`, adds its routes in :meth:`FakeServer.add_routes`, appends what it
records to plain lists and calls :meth:`FakeServer.notify` after each; tests ``async with`` the fake (or call
:meth:`~FakeServer.start` / :meth:`~FakeServer.stop`) and await :meth:`FakeServer.wait_for_records`.

Not shared on purpose: ``fake_discord.py`` (its ``start`` returns the fake, it serves a gateway websocket and
waits on predicates) and ``host/airlock_demo/telegram/`` (make run's demo embeds it, and it must not import
test code; it also binds to a caller-chosen address).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

__all__ = ["FakeServer", "bearer_token", "serving", "serving_on_thread"]

T = TypeVar("T")

POLL_S = 0.1
"""Longest sleep between two checks of a record list (a missed notify costs at most this)."""


class FakeServer:
    """An aiohttp app on 127.0.0.1, on a free port. Subclasses call ``super().__init__()`` (a dataclass
    from ``__post_init__``) and implement :meth:`add_routes`."""

    max_body_bytes = 1024 * 1024
    """Largest request body the fake reads (aiohttp's ``client_max_size``); a fake taking file uploads raises it."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def add_routes(self, app: web.Application) -> None:
        """Register the fake's handlers on ``app``."""
        raise NotImplementedError

    async def start(self) -> str:
        """Serve on 127.0.0.1 (a free port); returns the base URL (``http://127.0.0.1:<port>``, no slash)."""
        app = web.Application(client_max_size=self.max_body_bytes)
        self.add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The URL :meth:`start` returned; RuntimeError before that."""
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    def notify(self) -> None:
        """Wake :meth:`wait_for_records` (call after appending to a record list)."""
        self._changed.set()

    async def wait_for_records(self, records: list[T], n: int, timeout: float, what: str) -> list[T]:
        """The first ``n`` items of ``records`` (one of the fake's lists) once there are that many;
        TimeoutError naming ``what`` and listing what arrived if fewer do within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(records) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"expected {n} {what}, got {len(records)}: {records}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, POLL_S))
        return records[:n]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive, RFC 6750 section
    2.1), or None when the header is absent, of another scheme, or has an empty token."""
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


@contextlib.asynccontextmanager
async def serving(app: web.Application, **runner_options: Any) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1 (a free port) for the block, which gets its base URL ``http://127.0.0.1:<port>``
    (no slash); stopped at the block's end, also when it fails. ``runner_options`` go to ``web.AppRunner`` (e.g.
    ``access_log=None``, ``shutdown_timeout``)."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serving_on_thread(app: web.Application, **runner_options: Any) -> Iterator[str]:
    """:func:`serving` for synchronous code (a blocking client, a sandbox's worker threads): ``app`` runs on a new
    event loop in a daemon thread for the block, which gets the base URL."""
    loop = asyncio.new_event_loop()
    served = serving(app, **runner_options)
    url = loop.run_until_complete(served.__aenter__())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(served.__aexit__(None, None, None), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
