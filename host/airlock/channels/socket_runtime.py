"""The host-owned websocket of a channel: one aiohttp client socket per channel that declares
``capabilities.websocket``, run on the host's event loop by ``ChannelManager``.

Starting (:meth:`SocketRuntime.start`): the socket is opened only for an active channel whose websocket can
start (:func:`~airlock.channels.socket_protocols.start_blocker`): ``connect_on_start`` is true, the protocol is
supported (``discord``, ``wecom_aibot`` or generic) and the secrets it needs are stored. Otherwise it is never
opened, and the reason is logged and shown in the channel's health (``websocket.state == "not-started"``) and
``airlock channels list``.

URL: the file's ``wss://`` URL (or Discord's resume URL). ``HostConfig.upstream_overrides`` apply (``host ->
http(s)://base``; http becomes ws, https becomes wss): only an override can downgrade to ``ws://``, and each
override is logged. Without an override the host name is resolved by the host and refused if any address is
non-public, unless it is exempt by ``allow_private_hosts``: the same check as guest HTTP
(``capabilities.ssrf.AddressGuard``), applied by :class:`CheckedResolver` to names and before connecting to
IP literals (which aiohttp never hands to a resolver).

Reconnecting: after a connection ends (or fails to open), the next attempt waits a full-jitter exponential
backoff, ``uniform(0, min(64 s, 1 s * 2**attempt))`` (:class:`Backoff`); the attempt count resets after a
connection whose session stayed established for ``healthy_after_s`` (60 s). A terminal end (Discord 4004,
4010-4014; an HTTP 401/403 answer to the upgrade, for any protocol) stops the socket for good: logged at
error level, state ``stopped`` with the reason, no further attempt. The clock, sleep and random source are
injectable (:class:`SocketSettings`) so tests do not wait for real backoff delays.

Frames to the guest: ``deliver`` decides how a frame reaches the guest (the manager: ``channels.event_queue`` for
``near:agent`` components). By default (Airlock's world) each inbound text frame the driver forwards becomes a
synthetic ``on-http-request`` (:func:`frame_request`: POST ``/__websocket``, headers
``content-type: application/json`` and ``x-airlock-source: websocket``, query ``{}``, body = the frame text,
secret-validated true). Either way frames are handed over in arrival order, one at a time, through ``deliver``.
At most :data:`MAX_PENDING_FRAMES` frames wait; beyond that, reading pauses. The guest's answer is ignored.

Frames from the guest: ``websocket-send-text`` (``capabilities.websocket.WebsocketCapability``: 1 MiB max)
goes out on the open socket, after the driver's check (e.g. Discord: only ops 3/4/8/31) and a rate limit of
:data:`GUEST_FRAMES_PER_MINUTE`; it fails with a WIT error when no socket is open, and waits at most
:data:`SEND_TIMEOUT_S`.

Stopping (:meth:`SocketRuntime.stop`): cancels the reader, closes the socket with 1000 and the aiohttp
session, lets a frame callback already running finish, and drops (and counts) frames not yet delivered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..capabilities.ssrf import DestinationRefused, is_ip_literal
from ..capabilities.websocket import WebsocketCapability
from ..errors import ConfigError
from ..manifest import WebsocketCapability as WebsocketSpec
from ..runtime.linker import GuestFault
from ..runtime.values import IncomingHttpRequest
from .socket_base import CLOSE_TIMEOUT_S, MAX_INBOUND_FRAME_BYTES, RESUMABLE_CLOSE, ConnectionEnd, Driver, Link

# Re-exported: they lived here before socket_net / socket_protocols were split off.
from .socket_net import CheckedResolver as CheckedResolver
from .socket_net import resolve_url as resolve_url
from .socket_pacing import BACKOFF_BASE_S, BACKOFF_CAP_S, Backoff, RateWindow
from .socket_protocols import make_driver as make_driver
from .socket_protocols import protocol_of as protocol_of
from .socket_protocols import start_blocker as start_blocker

log = logging.getLogger("airlock.websocket")

WEBSOCKET_PATH = "/__websocket"
FRAME_HEADERS_JSON = json.dumps({"content-type": "application/json", "x-airlock-source": "websocket"})

HEALTHY_AFTER_S = 60.0
CONNECT_TIMEOUT_S = 30.0
SEND_TIMEOUT_S = 10.0
#: Frames received but not yet handed to the guest; reading pauses while the queue is full.
MAX_PENDING_FRAMES = 256
#: Frames a guest may send per rolling minute. Discord allows 120 gateway commands per 60 s per connection
#: (Gateway docs, "Rate Limiting"); 100 leaves room for the host's heartbeats and identify/resume.
GUEST_FRAMES_PER_MINUTE = 100

Deliver = Callable[[str], Awaitable[None]]
WaitForRoom = Callable[[], Awaitable[None]]


def frame_request(text: str) -> IncomingHttpRequest:
    """The synthetic ``on-http-request`` that carries one inbound websocket frame to the guest."""
    return IncomingHttpRequest(method="POST", path=WEBSOCKET_PATH, headers_json=FRAME_HEADERS_JSON,
                               query_json="{}", body=text.encode("utf-8"), secret_validated=True)


@dataclass(frozen=True)
class SocketSettings:
    """Host-wide websocket settings. ``upstream_overrides`` / ``allow_private_hosts`` come from ``HostConfig``;
    ``rand`` (floats in [0, 1)), ``sleep`` (backoff and op-9 waits, seconds), ``timer`` (a driver's waits inside a
    connection: heartbeats, seconds) and ``clock`` (monotonic seconds) are injectable for tests."""

    upstream_overrides: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allow_private_hosts: Collection[str] = ()
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S
    healthy_after_s: float = HEALTHY_AFTER_S
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    timer: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class SocketStatus:
    """What health shows: ``state`` is not-started | connecting | connected | backoff | stopped."""

    state: str = "not-started"
    reason: str = "channel inactive"
    protocol: str = ""
    connections: int = 0
    last_close: str | None = None
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    """Frames a ``near:agent`` guest never got: dropped from its bounded event queue (``channels.event_queue``)."""

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "protocol": self.protocol,
                "connections": self.connections, "last_close": self.last_close,
                "frames_in": self.frames_in, "frames_out": self.frames_out, "frames_dropped": self.frames_dropped}


class _NotOpen(Exception):
    pass


class SocketRuntime:
    """One channel's websocket (see the module docstring). Create, ``await start()``, ``await stop()``.

    ``secret_lookup(name) -> value | None`` reads the host's secret store; ``capability`` is the channel's
    ``websocket-send-text`` capability, whose sender this runtime sets; ``deliver(frame_text)`` hands one frame
    to the guest (awaited; one at a time, in order); ``wait_for_room()`` is awaited before each frame (the
    agent-side queue's backpressure).
    """

    def __init__(self, channel: str, spec: WebsocketSpec, *, secret_lookup: Callable[[str], str | None],
                 capability: WebsocketCapability, deliver: Deliver, settings: SocketSettings,
                 wait_for_room: WaitForRoom | None = None) -> None:
        self.channel = channel
        self.spec = spec
        self.settings = settings
        self.status = SocketStatus()
        self.driver: Driver | None = None
        self._secret_lookup = secret_lookup
        self._capability = capability
        self._deliver = deliver
        self._wait_for_room = wait_for_room
        self._loop_thread: int | None = None
        self._backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s, settings.rand)
        self._guest_rate = RateWindow(GUEST_FRAMES_PER_MINUTE, 60.0, settings.clock)
        self._frames: asyncio.Queue[str | None] = asyncio.Queue(MAX_PENDING_FRAMES)
        self._session: aiohttp.ClientSession | None = None
        self._link: Link | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._deliver_task: asyncio.Task[None] | None = None
        self._in_callback = False
        self._stopping = False
        self._logged_overrides: set[str] = set()
        self._resolver = CheckedResolver(settings.allow_private_hosts)

    # ---- lifecycle ---------------------------------------------------------------------------------

    def _set(self, state: str, reason: str) -> None:
        self.status.state, self.status.reason = state, reason

    async def start(self) -> bool:
        """Open the socket in the background if it may start; returns whether it started."""
        blocker = start_blocker(self.spec, lambda n: self._secret_lookup(n) is not None)
        if blocker is None:
            try:
                self.driver = make_driver(self.channel, self.spec, self._secret_lookup)
            except ConfigError as exc:
                blocker = str(exc)
        if blocker is not None or self.driver is None:
            self._set("not-started", f"websocket not opened: {blocker}")
            log.warning("[%s] %s", self.channel, self.status.reason)
            return False
        self.status.protocol = self.driver.name
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        connector = aiohttp.TCPConnector(resolver=self._resolver,
                                         use_dns_cache=False, limit=2)
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              trust_env=False, headers={"User-Agent": "airlock"})
        self._capability.sender = self._send_from_guest
        self._deliver_task = asyncio.create_task(self._deliver_loop(), name=f"ws-deliver-{self.channel}")
        self._run_task = asyncio.create_task(self._run(), name=f"ws-run-{self.channel}")
        self._set("connecting", "starting")
        return True

    async def stop(self) -> None:
        """Close the socket and end every task this runtime started. Idempotent."""
        self._stopping = True
        self._capability.sender = None
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
            self._run_task = None
        dropped = self._drain_frames()
        if dropped:
            log.warning("[%s] %d websocket frame(s) not delivered at shutdown", self.channel, dropped)
        await self._stop_delivery()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.status.state != "not-started" and self.status.state != "stopped":
            self._set("stopped", "host shutting down")

    def _drain_frames(self) -> int:
        dropped = 0
        while not self._frames.empty():
            if self._frames.get_nowait() is not None:
                dropped += 1
        return dropped

    async def _stop_delivery(self) -> None:
        task, self._deliver_task = self._deliver_task, None
        if task is None:
            return
        if self._in_callback:
            # A frame callback is running in a worker thread: let it finish (bounded by its own timeout)
            # so on-shutdown never overlaps it on the main lane.
            self._frames.put_nowait(None)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=SEND_TIMEOUT_S + 60)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # ---- connecting --------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.driver is not None
        try:
            while True:
                end = await self._connect_once(self.driver)
                self.status.last_close = end.reason
                if end.terminal:
                    self._set("stopped", f"websocket stopped: {end.reason}")
                    log.error("[%s] %s; not reconnecting (fix the cause, then restart the host)", self.channel,
                              self.status.reason)
                    return
                if end.established_at is not None and \
                        self.settings.clock() - end.established_at >= self.settings.healthy_after_s:
                    self._backoff.reset()
                delay = end.delay_s if end.delay_s is not None else self._backoff.next_delay()
                self._set("backoff", f"reconnecting in {delay:.1f} s after: {end.reason}")
                log.warning("[%s] websocket %s", self.channel, self.status.reason)
                await self.settings.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a host bug: report it instead of dying silently
            self._set("stopped", f"websocket stopped: host bug ({type(exc).__name__})")
            log.exception("[%s] websocket runtime failed", self.channel)

    def _target(self, logical: str) -> str:
        """The URL to connect to. Raises ``ConfigError`` for a URL that is not ``wss://`` and
        ``DestinationRefused`` for a non-public IP literal (a name is checked by the resolver)."""
        target, overridden = resolve_url(logical, self.settings.upstream_overrides)
        host = urlsplit(logical).hostname or ""
        if not overridden and is_ip_literal(host):
            self._resolver.guard.check(host, [host])
        if overridden and host not in self._logged_overrides:
            self._logged_overrides.add(host)
            log.warning("[%s] upstream override: websocket for %s goes to %s%s", self.channel, host, target,
                        " (unencrypted ws://)" if target.startswith("ws://") else "")
        return target

    async def _connect_once(self, driver: Driver) -> ConnectionEnd:
        assert self._session is not None
        self._set("connecting", "opening the websocket")
        try:
            target = self._target(driver.url())
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                ws = await self._session.ws_connect(
                    target, heartbeat=driver.ws_ping_interval_s, autoping=True,
                    max_msg_size=MAX_INBOUND_FRAME_BYTES + 1,  # aiohttp refuses sizes >= its limit
                    timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                return ConnectionEnd(f"the server refused the upgrade with HTTP {exc.status}", terminal=True)
            return ConnectionEnd(f"the server refused the upgrade with HTTP {exc.status}")
        except (ConfigError, DestinationRefused) as exc:
            return ConnectionEnd(str(exc), terminal=True)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("[%s] websocket connect failed: %s", self.channel, exc)
            return ConnectionEnd(f"could not connect ({_short(exc)})")
        self.status.connections += 1
        link = Link(ws, self._enqueue, rand=self.settings.rand, clock=self.settings.clock, timer=self.settings.timer)
        self._link = link
        self._set("connected", f"connected ({driver.name})")
        try:
            end = await driver.run(link)
        finally:
            self._link = None
            if not ws.closed:
                # 1000 only when the host stops: Discord ends a session closed with 1000/1001, and every
                # other end here is followed by a reconnect that may resume it.
                code = 1000 if self._stopping else RESUMABLE_CLOSE
                with contextlib.suppress(Exception):
                    await asyncio.shield(ws.close(code=code))
        return end

    # ---- frames to the guest -----------------------------------------------------------------------

    async def _enqueue(self, text: str) -> None:
        self.status.frames_in += 1
        link = self._link
        if not self._frames.full() or link is None:
            self._frames.put_nowait(text)
            return
        link.reader_blocked = link.reader_paused = True
        try:
            await self._frames.put(text)
        finally:
            link.reader_blocked = False

    async def _deliver_loop(self) -> None:
        while True:
            text = await self._frames.get()
            if text is None:
                return
            if self._wait_for_room is not None:
                await self._wait_for_room()
            self._in_callback = True
            try:
                await self._deliver(text)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed frame must not stop delivery of the next one
                log.exception("[%s] delivering a websocket frame failed", self.channel)
            finally:
                self._in_callback = False

    # ---- frames from the guest ---------------------------------------------------------------------

    def _send_from_guest(self, payload: str) -> None:
        """The ``websocket-send-text`` sender; runs in a callback's worker thread and blocks until sent."""
        loop = self._loop
        if loop is None or self._link is None:
            raise GuestFault("no websocket is open for this channel")
        if threading.get_ident() == self._loop_thread:  # waiting below would block the loop that sends
            raise GuestFault("websocket-send-text is only available inside a callback")
        if self.driver is not None:
            self.driver.check_guest_frame(payload)
        if not self._guest_rate.admit():
            raise GuestFault(f"websocket send rate limit reached ({GUEST_FRAMES_PER_MINUTE} frames per minute)")
        try:
            future = asyncio.run_coroutine_threadsafe(self._send_now(payload), loop)
        except RuntimeError:
            raise GuestFault("no websocket is open for this channel") from None
        try:
            future.result(timeout=SEND_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GuestFault(f"websocket send timed out after {SEND_TIMEOUT_S:.0f} s") from None
        except (_NotOpen, ConnectionError, aiohttp.ClientError, concurrent.futures.CancelledError):
            raise GuestFault("no websocket is open for this channel") from None
        self.status.frames_out += 1

    async def _send_now(self, payload: str) -> None:
        link = self._link
        if link is None:
            raise _NotOpen
        await link.send(payload)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
