"""The webhook listener's socket-level defences: connection caps, a header deadline, quiet parse errors.

A webhook listener faces the whole internet, so the limits here apply before any request is parsed:

- **Connection caps** (:class:`ConnectionGate`): at most ``max_connections`` open connections in total and
  ``max_connections_per_ip`` from one peer address; a connection over either cap is aborted as soon as it is
  accepted (no bytes are read), so slow or idle peers cannot exhaust the process's file descriptors.
- **Header deadline**: a connection must deliver a complete request head within ``header_timeout_s`` of being
  opened (and of its previous response, on keep-alive). aiohttp (>= 3.10) arms its keep-alive timer when a
  connection is made and closes a connection still waiting for a request head when the timer fires, so the
  listener passes ``header_timeout_s`` as aiohttp's ``keepalive_timeout``; an idle keep-alive connection is
  closed after the same time (platforms reconnect freely).
- The **body deadline** is enforced per request by ``inbound.body.read_body``.
- **Quiet parse errors** (:class:`QuietParseErrors`): a malformed request (``BadHttpMethod``, ``LineTooLong``,
  ...) is the client's problem: aiohttp logs it at ERROR with a traceback; the filter turns that into one INFO
  line without the traceback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web, web_app
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("airlock.inbound")

#: aiohttp's logger for errors while serving a request (``web_protocol.RequestHandler.log_exception``).
AIOHTTP_SERVER_LOGGER = "aiohttp.server"


@dataclass(frozen=True)
class ListenerLimits:
    """Socket-level limits of the webhook listener (see the module docstring).

    Fields: ``header_timeout_s`` (seconds to deliver a request head, > 0), ``body_timeout_s`` (seconds to
    deliver a whole body, > 0), ``max_connections`` and ``max_connections_per_ip`` (open connections, >= 1).
    Defaults: 15 s, 30 s, 1024 and 128 (a platform behind one egress IP keeps tens of connections at most).
    """

    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    max_connections: int = 1024
    max_connections_per_ip: int = 128

    def __post_init__(self) -> None:
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("listener timeouts must be positive")
        if self.max_connections < 1 or self.max_connections_per_ip < 1:
            raise ValueError("listener connection caps must be at least 1")


class ConnectionGate:
    """Counts open connections in total and per peer address; refuses those over the caps. Event-loop only."""

    def __init__(self, limits: ListenerLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self._per_ip: Counter[str] = Counter()

    def admit(self, peer: str) -> bool:
        """Count a new connection from ``peer`` and return True, or return False (nothing counted)."""
        if self.open >= self.limits.max_connections or self._per_ip[peer] >= self.limits.max_connections_per_ip:
            self.refused += 1
            return False
        self.open += 1
        self._per_ip[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        self._per_ip[peer] -= 1
        if self._per_ip[peer] <= 0:
            del self._per_ip[peer]


class _GatedProtocol(asyncio.Protocol):
    """Wraps one aiohttp request handler: counts the connection in the gate, or aborts it before any read."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate) -> None:
        self._inner = inner
        self._gate = gate
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        if not self._gate.admit(peer):
            log.info("webhook connection from %s refused: connection cap reached (%d total, %d per address)",
                     peer, self._gate.limits.max_connections, self._gate.limits.max_connections_per_ip)
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._peer = peer
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is None:
            return
        self._gate.release(self._peer)
        self._peer = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._peer is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._peer is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GatedTCPSite(web.BaseSite):
    """A TCP site whose connections pass a :class:`ConnectionGate` first (aiohttp's documented ``BaseSite``
    extension point). ``port`` is the bound port once started (useful with port 0). With ``sock`` (a listening
    socket inherited from ``airlock serve --workers N``'s supervisor), it accepts there instead of binding."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate, *,
                 sock: socket.socket | None = None) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._sock = sock
        self.gate = gate
        self.port: int | None = None

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port if self.port is not None else self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        factory: Callable[[], asyncio.Protocol] = lambda: _GatedProtocol(server(), self.gate)  # noqa: E731
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock)
        else:
            self._server = await loop.create_server(factory, self._host, self._port)
        sockets = self._server.sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._port


class QuietParseErrors(logging.Filter):
    """Turn aiohttp's traceback for a malformed request into one INFO line (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "malformed HTTP request refused with %s: %s"
            record.args = (exc.code, _one_line(exc))
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", "") or exc).split())
    return text[:200]


_FILTER = QuietParseErrors()


def install_quiet_parse_errors() -> None:
    """Attach :class:`QuietParseErrors` to aiohttp's server logger (idempotent)."""
    logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


#: Seconds aiohttp keeps reading (and discarding) an unread body after answering early (a 413 or 408), so the
#: client can read the answer before the connection closes; aiohttp's default is 10 s, too long for a refusal.
LINGERING_S = 2.0


def runner_kwargs(limits: ListenerLimits) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` that apply ``limits`` (the header deadline) and
    :data:`LINGERING_S`."""
    return {"keepalive_timeout": limits.header_timeout_s, "lingering_time": LINGERING_S}


def forget_stopped_apps() -> None:
    """Drop aiohttp's memo of built middleware chains; call it after an ``AppRunner.cleanup()``.

    aiohttp (3.14, ``web_app._cached_build_middleware``) memoizes each (handler, apps) pair it built a middleware
    chain for in a module-level ``lru_cache`` of 1,024 entries. An application with middlewares that served one
    request therefore stays reachable after its runner is cleaned up, and with it everything its state holds (for
    the agent API and the admin listener: the host, its wasmtime engine and instance pool, about 2,400 memory
    mappings each). Clearing the memo only costs rebuilding a chain on the next request of a live app.
    """
    memo = getattr(web_app, "_cached_build_middleware", None)
    clear = getattr(memo, "cache_clear", None)
    if callable(clear):
        clear()
