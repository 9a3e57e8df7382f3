"""What a websocket protocol driver sees of one connection, and how it reports the connection's end.

A driver (``generic_socket.GenericDriver``, ``discord_gateway.DiscordGatewayDriver``) runs one connection at a
time through a :class:`Link` and returns a :class:`ConnectionEnd`; ``socket_runtime.SocketRuntime`` owns the
socket, the reconnect loop and the queue that carries frames to the guest. Everything here runs on the host's
event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

log = logging.getLogger("airlock.websocket")

#: Largest inbound frame the host accepts, in bytes (aiohttp's default, 4 MiB). A larger frame makes aiohttp
#: close the connection with 1009 (message too big); the runtime then reconnects.
MAX_INBOUND_FRAME_BYTES = 4 * 1024 * 1024

#: How long closing a connection may wait for the peer's close frame, in seconds.
CLOSE_TIMEOUT_S = 5.0

#: Close code the host uses when it drops a connection it wants to resume (Discord keeps a session open only
#: when the client closes with a code other than 1000/1001; 4000-4999 are application codes, RFC 6455 7.4.2).
RESUMABLE_CLOSE = 4000


@dataclass(frozen=True)
class ConnectionEnd:
    """How one connection ended.

    ``reason``: one line for the log and the channel's status (never a secret). ``code``: the websocket close
    code, when there was one. ``terminal``: stop for good (no further attempts). ``established_at``: the
    monotonic time (``SocketSettings.clock``) the session was established (Discord READY/RESUMED, or the open
    socket for a generic driver), ``None`` if it never was; the runtime resets its backoff after a connection
    that stayed up ``healthy_after_s``. ``delay_s``: a delay the protocol prescribes before the next attempt
    (Discord op 9: 1-5 s) instead of the backoff's.
    """

    reason: str
    code: int | None = None
    terminal: bool = False
    established_at: float | None = None
    delay_s: float | None = None


class Link:
    """One open websocket as a driver uses it: send, receive, close, and forward frames to the guest.

    ``forward`` waits while the guest's frame queue is full (so a slow guest slows reading instead of losing
    frames); the runtime marks that in ``reader_blocked`` / ``reader_paused`` so a driver does not mistake
    replies it could not read yet for a dead peer. ``rand`` returns a float in [0, 1); ``clock`` is monotonic
    seconds; ``timer(seconds)`` is how a driver waits inside the connection (heartbeats; ``asyncio.sleep`` unless
    a test injects one). Sends are serialized.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        forward: Callable[[str], Awaitable[None]],
        *,
        rand: Callable[[], float],
        clock: Callable[[], float],
        timer: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ws = ws
        self._forward = forward
        self.rand = rand
        self.clock = clock
        self.timer = timer
        self._send_lock = asyncio.Lock()
        self.reader_blocked = False
        self.reader_paused = False

    def take_paused(self) -> bool:
        """True if reading waited for the guest since the last call (or is waiting now); clears the mark."""
        paused, self.reader_paused = self.reader_paused or self.reader_blocked, False
        return paused

    async def send(self, text: str) -> None:
        """Send one text frame. Raises ``ConnectionError`` if the socket is closed or closing."""
        async with self._send_lock:
            if self.ws.closed:
                raise ConnectionError("websocket is closed")
            await self.ws.send_str(text)

    async def receive(self, timeout_s: float | None = None) -> aiohttp.WSMessage:
        """The next frame (text, binary, or a close/error marker). Raises ``TimeoutError`` after ``timeout_s``."""
        return await self.ws.receive(timeout=timeout_s)

    async def close(self, code: int) -> None:
        """Close with ``code`` (waits at most :data:`CLOSE_TIMEOUT_S` for the peer)."""
        if not self.ws.closed:
            await self.ws.close(code=code)

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def forward(self, text: str) -> None:
        """Queue a text frame for the guest (in order; waits while the queue is full)."""
        await self._forward(text)


class Driver(Protocol):
    """A websocket protocol: which URL to open, what to do on one connection, what a guest may send.

    ``ws_ping_interval_s``: websocket-level ping interval in seconds (aiohttp closes a connection whose pong
    does not come within half of it), or ``None`` when the protocol keeps the connection alive itself.
    """

    name: str
    ws_ping_interval_s: float | None

    def url(self) -> str:
        """The logical ``wss://`` URL of the next connection (before upstream overrides)."""
        ...

    async def run(self, link: Link) -> ConnectionEnd:
        """Drive one connection until it ends; must not raise for anything the peer does."""
        ...

    def check_guest_frame(self, text: str) -> None:
        """Raise ``GuestFault`` (a safe one-line reason) if the guest may not send ``text``."""
        ...


def closed_end(link: Link, msg: aiohttp.WSMessage) -> tuple[int | None, str]:
    """The close code and a one-line description of a CLOSE/CLOSING/CLOSED/ERROR message."""
    code = link.close_code
    if msg.type == aiohttp.WSMsgType.CLOSE and isinstance(msg.data, int):
        code = msg.data
    if msg.type == aiohttp.WSMsgType.ERROR:
        suffix = f", code {code}" if code is not None else ""
        return code, f"connection error ({type(msg.data).__name__}{suffix})"
    return code, f"closed by the server (code {code})" if code is not None else "connection closed"


class DuplicateKey(ValueError):
    """A JSON object repeated a key (see :func:`loads_strict`)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise DuplicateKey
    return out


def loads_strict(text: str) -> Any:
    """``json.loads`` for a frame a guest wants to send: an object repeating a key (at any depth) raises
    :class:`DuplicateKey`, because which copy the platform reads is not ours to guess (``{"op":1,"op":3}`` must not
    pass a check as op 3). Also raises ``ValueError`` (not JSON) and ``RecursionError`` (nested too deep)."""
    return json.loads(text, object_pairs_hook=_unique_keys)
