"""The Discord gateway driver (``protocol: "discord"``, or inferred for ``wss://gateway.discord.gg`` with an
``identify`` block). The host runs the whole session; the guest only sees dispatch events.

Source: Discord developer documentation, "Gateway" (connection lifecycle, heartbeat, identify, resume) and
"Opcodes and Status Codes" (gateway opcodes and close event codes), API v10.

Per connection:

1. The gateway sends HELLO (op 10, ``d.heartbeat_interval`` in ms). The host heartbeats (op 1, ``d`` = the last
   sequence number received, or null) first after ``interval * jitter`` (jitter uniform in [0, 1)), then every
   interval. The interval is clamped to [:data:`MIN_HEARTBEAT_S`, :data:`MAX_HEARTBEAT_S`]. HELLO must come within
   :data:`HELLO_TIMEOUT_S`.
2. Op 11 (heartbeat ACK) clears the missed count. When ``max_missed_heartbeat_acks`` (default 1: "no ACK
   between two heartbeats") heartbeats in a row were not acknowledged, the connection is a zombie: the host
   closes it with 4000 (so the session stays resumable) and reconnects; no verdict is taken over an interval in
   which reading waited for a slow guest (the ACK may be unread). Op 1 from the gateway gets an immediate
   heartbeat.
3. With no session, the host sends IDENTIFY (op 2): ``d`` is the capabilities file's ``identify`` object (keys
   starting with ``_`` are comments and dropped; ``intents`` is required) plus ``token`` = the secret named by
   ``identify_secret_name`` and default ``properties``. The guest never holds the token.
4. READY (a dispatch) gives ``session_id`` and ``resume_gateway_url``; the next connection after a resumable
   end goes to that URL (with the configured path and query, e.g. ``?v=10&encoding=json``) and sends RESUME
   (op 6: token, session_id, seq). ``resume_gateway_url`` must be ``wss://`` on the configured host or a host
   under the same parent domain (``*.discord.gg``), otherwise it is ignored.
5. Op 7 (reconnect): close with 4000 and resume. Op 9 (invalid session): ``d: true`` resume; ``d: false``
   forget the session and identify afresh on a new connection after 1-5 s (random).
6. Close codes 4004 authentication failed, 4010 invalid shard, 4011 sharding required, 4012 invalid API version,
   4013 invalid intents and 4014 disallowed intents are terminal: no further attempt. 4007 (invalid seq) and
   4009 (session timed out) need a fresh IDENTIFY; every other close is resumed when a session exists.

Only dispatch events (op 0) go to the guest, as the exact frame text ``{"op":0,"t":...,"s":...,"d":...}``
(READY included: it carries the bot's own user id). A guest may send only ops 3 (presence update), 4 (voice
state update), 8 (request guild members) and 31 (request soundboard sounds); heartbeat, identify and resume
belong to the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..errors import ConfigError
from ..manifest import WebsocketCapability as WebsocketSpec
from ..runtime.linker import GuestFault
from .generic_socket import strip_comments
from .socket_base import RESUMABLE_CLOSE, ConnectionEnd, DuplicateKey, Link, closed_end, loads_strict, log

GATEWAY_HOST = "gateway.discord.gg"

HELLO_TIMEOUT_S = 20.0
MIN_HEARTBEAT_S = 0.05
MAX_HEARTBEAT_S = 600.0
#: Op 9 with d=false: wait a random 1-5 s before identifying again (Discord's recommendation).
INVALID_SESSION_DELAY_S = (1.0, 5.0)

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_RECONNECT = 0, 1, 2, 6, 7
OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 9, 10, 11

#: Ops a guest may send (the client-sent gateway commands the host does not own).
GUEST_OPS = frozenset({3, 4, 8, 31})

CLOSE_CODES = {
    4000: "unknown error",
    4001: "unknown opcode",
    4002: "decode error",
    4003: "not authenticated",
    4004: "authentication failed",
    4005: "already authenticated",
    4007: "invalid seq",
    4008: "rate limited",
    4009: "session timed out",
    4010: "invalid shard",
    4011: "sharding required",
    4012: "invalid API version",
    4013: "invalid intents",
    4014: "disallowed intents",
}
TERMINAL_CLOSE_CODES = frozenset({4004, 4010, 4011, 4012, 4013, 4014})
NEW_SESSION_CLOSE_CODES = frozenset({4007, 4009})


def is_discord_spec(spec: WebsocketSpec) -> bool:
    """``protocol: "discord"``, or no protocol, the gateway.discord.gg URL and an ``identify`` block."""
    if spec.protocol is not None:
        return spec.protocol == "discord"
    return urlsplit(spec.url).hostname == GATEWAY_HOST and spec.identify is not None


def describe_close(code: int | None) -> str:
    if code is None:
        return "connection lost"
    name = CLOSE_CODES.get(code)
    return f"close {code} ({name})" if name else f"close {code}"


def _parent_domain(host: str) -> str:
    labels = host.split(".")
    return ".".join(labels[1:]) if len(labels) > 2 else host


class DiscordGatewayDriver:
    """See the module docstring. ``token`` is the bot token (never logged, never given to the guest).

    Raises ``ConfigError`` when ``identify`` lacks an integer ``intents`` (required by gateway v10).
    """

    name = "discord"
    ws_ping_interval_s: float | None = None

    def __init__(self, channel: str, spec: WebsocketSpec, token: str) -> None:
        self.channel = channel
        self.spec = spec
        self._token = token
        self.max_missed_acks = spec.max_missed_heartbeat_acks or 1
        self._identify = self._identify_body(spec)
        self.session_id: str | None = None
        self.seq: int | None = None
        self.resume_url: str | None = None
        self.identifies = 0
        self.resumes = 0
        self._unacked = 0
        self._zombie = False
        self._established: float | None = None

    def _identify_body(self, spec: WebsocketSpec) -> dict[str, Any]:
        body = strip_comments(spec.identify or {})
        intents = body.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0:
            raise ConfigError("capabilities.websocket.identify.intents must be a non-negative integer "
                              "(required by the Discord gateway)")
        if "token" in body:
            log.warning("[%s] identify.token in the capabilities file is ignored; the host sends %s",
                        self.channel, spec.identify_secret_name)
        body.setdefault("properties", {"os": platform.system().lower() or "linux", "browser": "airlock",
                                       "device": "airlock"})
        return dict(body)

    # ---- URLs ------------------------------------------------------------------------------------

    def _resumable(self) -> bool:
        return self.session_id is not None and self.seq is not None

    def url(self) -> str:
        return self.resume_url if self._resumable() and self.resume_url else self.spec.url

    def _checked_resume_url(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        parts, configured = urlsplit(value), urlsplit(self.spec.url)
        host, home = (parts.hostname or ""), (configured.hostname or "")
        parent = _parent_domain(home)
        if parts.scheme != "wss" or not (host == home or host.endswith("." + parent)):
            log.warning("[%s] resume_gateway_url ignored: not wss:// under %s", self.channel, parent)
            return None
        query = f"?{configured.query}" if configured.query else ""
        return f"wss://{parts.netloc}{configured.path or '/'}{query}"

    def forget_session(self) -> None:
        self.session_id, self.seq, self.resume_url = None, None, None

    # ---- one connection ----------------------------------------------------------------------------

    async def run(self, link: Link) -> ConnectionEnd:
        self._unacked, self._zombie, self._established = 0, False, None
        try:
            hello = await link.receive(timeout_s=HELLO_TIMEOUT_S)
        except TimeoutError:
            return ConnectionEnd(f"no HELLO within {HELLO_TIMEOUT_S:.0f} s")
        interval = self._hello_interval(hello)
        if interval is None:
            if hello.type != aiohttp.WSMsgType.TEXT:
                return self._on_close(link, hello)
            await link.close(RESUMABLE_CLOSE)
            return ConnectionEnd("the first frame was not HELLO (op 10)")
        beat = asyncio.create_task(self._heartbeat(link, interval), name=f"ws-heartbeat-{self.channel}")
        try:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._start_session(link)
            return await self._read(link)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    def _hello_interval(self, msg: aiohttp.WSMessage) -> float | None:
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        try:
            frame = json.loads(msg.data)
        except ValueError:
            return None
        if not isinstance(frame, dict) or frame.get("op") != OP_HELLO or not isinstance(frame.get("d"), dict):
            return None
        ms = frame["d"].get("heartbeat_interval")
        if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
            return None
        return float(min(max(ms / 1000, MIN_HEARTBEAT_S), MAX_HEARTBEAT_S))

    async def _start_session(self, link: Link) -> None:
        if self._resumable():
            self.resumes += 1
            log.info("[%s] discord gateway: resuming at seq %s", self.channel, self.seq)
            await link.send(json.dumps({"op": OP_RESUME, "d": {
                "token": self._token, "session_id": self.session_id, "seq": self.seq}}))
        else:
            self.identifies += 1
            log.info("[%s] discord gateway: identifying (intents %s)", self.channel, self._identify["intents"])
            await link.send(json.dumps({"op": OP_IDENTIFY, "d": {**self._identify, "token": self._token}}))

    async def _heartbeat(self, link: Link, interval: float) -> None:
        await link.timer(interval * link.rand())
        while True:
            if link.take_paused():
                # ACKs may be waiting, unread, behind frames the guest has not taken yet: no verdict.
                self._unacked = 0
            elif self._unacked >= self.max_missed_acks:
                self._zombie = True
                log.warning("[%s] discord gateway: %d heartbeat(s) not acknowledged; reconnecting",
                            self.channel, self._unacked)
                await link.close(RESUMABLE_CLOSE)
                return
            if not await self._beat(link):
                return
            await link.timer(interval)

    async def _beat(self, link: Link) -> bool:
        try:
            await link.send(json.dumps({"op": OP_HEARTBEAT, "d": self.seq}))
        except (ConnectionError, aiohttp.ClientError):
            return False
        self._unacked += 1
        return True

    async def _read(self, link: Link) -> ConnectionEnd:
        while True:
            msg = await link.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                end = await self._on_text(link, msg.data)
                if end is not None:
                    return end
            elif msg.type != aiohttp.WSMsgType.BINARY:
                return self._on_close(link, msg)

    async def _on_text(self, link: Link, text: str) -> ConnectionEnd | None:
        try:
            frame = json.loads(text)
        except ValueError:
            log.warning("[%s] discord gateway sent a frame that is not JSON; ignored", self.channel)
            return None
        op = frame.get("op") if isinstance(frame, dict) else None
        if op == OP_DISPATCH:
            await self._dispatch(link, frame, text)
        elif op == OP_HEARTBEAT:
            await self._beat(link)
        elif op == OP_HEARTBEAT_ACK:
            self._unacked = 0
        elif op == OP_RECONNECT:
            await link.close(RESUMABLE_CLOSE)
            return ConnectionEnd("the gateway asked to reconnect (op 7)", established_at=self._established)
        elif op == OP_INVALID_SESSION:
            return await self._invalid_session(link, frame.get("d") is True)
        return None

    async def _dispatch(self, link: Link, frame: dict[str, Any], text: str) -> None:
        seq = frame.get("s")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.seq = seq
        data = frame.get("d")
        if frame.get("t") == "READY" and isinstance(data, dict):
            session = data.get("session_id")
            self.session_id = session if isinstance(session, str) and session else None
            self.resume_url = self._checked_resume_url(data.get("resume_gateway_url"))
            self._established = link.clock()
            log.info("[%s] discord gateway: READY", self.channel)
        elif frame.get("t") == "RESUMED":
            self._established = link.clock()
            log.info("[%s] discord gateway: RESUMED", self.channel)
        await link.forward(text)

    async def _invalid_session(self, link: Link, resumable: bool) -> ConnectionEnd:
        if resumable:
            await link.close(RESUMABLE_CLOSE)
            return ConnectionEnd("invalid session (op 9, resumable)", established_at=self._established)
        self.forget_session()
        await link.close(1000)
        low, high = INVALID_SESSION_DELAY_S
        return ConnectionEnd("invalid session (op 9): identifying again", established_at=self._established,
                             delay_s=low + (high - low) * link.rand())

    def _on_close(self, link: Link, msg: aiohttp.WSMessage) -> ConnectionEnd:
        code, _ = closed_end(link, msg)
        if self._zombie:
            return ConnectionEnd(f"zombie connection: {self._unacked} heartbeat(s) not acknowledged",
                                 code=code, established_at=self._established)
        if code in TERMINAL_CLOSE_CODES:
            return ConnectionEnd(f"{describe_close(code)}: not retried", code=code, terminal=True,
                                 established_at=self._established)
        if code in NEW_SESSION_CLOSE_CODES:
            self.forget_session()
        return ConnectionEnd(describe_close(code), code=code, established_at=self._established)

    # ---- guest frames ------------------------------------------------------------------------------

    def check_guest_frame(self, text: str) -> None:
        try:
            frame = loads_strict(text)
        except DuplicateKey:
            # Which copy the gateway reads is not ours to guess: {"op":1,"op":3} must not pass as op 3.
            raise GuestFault("a Discord gateway frame may not repeat a key") from None
        except (ValueError, RecursionError):
            raise GuestFault("a Discord gateway frame must be a JSON object") from None
        op = frame.get("op") if isinstance(frame, dict) else None
        if not isinstance(op, int) or isinstance(op, bool):
            raise GuestFault("a Discord gateway frame must be a JSON object with an integer op")
        if op not in GUEST_OPS:
            allowed = ", ".join(str(o) for o in sorted(GUEST_OPS))
            raise GuestFault(f"op {op} is sent by the host, not the channel (a channel may send ops {allowed})")
