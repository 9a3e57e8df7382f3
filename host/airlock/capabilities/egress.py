"""Outbound HTTP for the whole host: one background asyncio loop, one aiohttp session, SSRF checks.

``Egress`` knows nothing about channels or policies; ``HttpCapability`` (``http.py``) decides what may be
sent and calls ``Egress.fetch`` for one hop at a time. ``Egress`` adds the network-level rules:

- upstream overrides (operator config): ``{"api.telegram.org": "http://127.0.0.1:8081"}`` sends requests
  for that host to the override base instead (scheme/host/port replaced, the base's path prepended);
  the SSRF check is skipped for overridden targets because the operator chose them;
- SSRF (``ssrf.AddressGuard``, the same check the websockets use): the host resolves the name itself and
  refuses if ANY address is non-public (``ssrf.is_forbidden_address``), unless the host is exempt by
  ``allow_private_hosts`` (exact host or ``*.suffix``). The connection then goes to the checked
  addresses only (a pinned resolver), so a second DNS answer cannot differ;
- the response body is read with ``max_response_bytes`` enforced on the decoded bytes while they stream in,
  gzip and deflate included (``body_decoder.BodyDecoder``); other encodings are refused;
- no cookies are kept (one session serves every channel), proxies from the environment are ignored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import socket
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from airlock.errors import ConfigError

from .body_decoder import ACCEPT_ENCODING, BodyDecoder, too_large
from .http_policy import HttpRefused
from .ssrf import AddressGuard, DestinationRefused, is_forbidden_address, is_ip_literal

__all__ = ["Egress", "EgressResponse", "is_forbidden_address"]

logger = logging.getLogger("airlock.http")

_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})
_CHUNK = 64 * 1024

# The addresses checked for the current request, by host name; read by the pinned resolver. Each fetch
# runs in its own task, so the value never leaks between concurrent requests.
_PINNED: contextvars.ContextVar[Mapping[str, list[str]]] = contextvars.ContextVar("airlock_pinned_addrs")


class _PinnedResolver(AbstractResolver):
    """Hands aiohttp the addresses ``Egress`` checked for this request; never asks DNS itself."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addrs = _PINNED.get({}).get(host)
        if not addrs:
            raise OSError(f"no checked address for {host}")
        return [
            {
                "hostname": host,
                "host": addr,
                "port": port,
                "family": socket.AF_INET6 if ":" in addr else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for addr in addrs
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class EgressResponse:
    """One HTTP response: ``status``, ``headers`` as received (name, value) pairs, decoded ``body``."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class _Override:
    scheme: str
    host: str
    port: int
    netloc: str
    path: str


class Egress:
    """The host's single outbound HTTP client. Thread-safe; ``fetch`` blocks the calling thread.

    ``upstream_overrides``: logical host (lower-case) -> base URL (``http``/``https``, no userinfo, query or
    fragment). Each override is logged once (logger ``airlock.http``) here. Raises ``ConfigError`` for a
    malformed base.
    ``allow_private_hosts``: hosts exempt from the SSRF address check (e.g. an internal API the operator
    allow-listed on purpose): exact names or ``*.suffix`` (``ssrf.AddressGuard``).
    ``resolve``: name resolver ``(host, port) -> [ip, ...]``, for tests; the default is
    ``loop.getaddrinfo`` on the egress loop.
    """

    def __init__(
        self,
        *,
        upstream_overrides: Mapping[str, str] = _NO_OVERRIDES,
        allow_private_hosts: Collection[str] = (),
        resolve: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self._overrides = {
            host.lower().rstrip("."): _parse_override(host, base) for host, base in upstream_overrides.items()
        }
        for host, base in upstream_overrides.items():
            logger.warning("upstream override: requests for %s go to %s (SSRF check skipped)", host, base)
        self._guard = AddressGuard(allow_private_hosts)
        self._resolve = resolve
        self._closed = False
        self._close_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="airlock-egress", daemon=True)
        self._thread.start()
        self._session = asyncio.run_coroutine_threadsafe(self._open_session(), self._loop).result()

    async def _open_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(), use_dns_cache=False, limit=100)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,  # BodyDecoder inflates under the size limit
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": "airlock"},
        )

    def close(self) -> None:
        """Close the session and stop the loop thread. Idempotent; in-flight fetches fail."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError):  # pragma: no cover - best effort
            logger.debug("egress session did not close cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        in_flight = [task for task in asyncio.all_tasks() if task is not current]
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await self._session.close()
        await self._loop.shutdown_default_executor()

    def fetch(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        max_response_bytes: int,
        timeout_s: float,
        redact: Callable[[str], str] = str,
    ) -> EgressResponse:
        """Send one request (redirects are not followed) and read the whole response body.

        ``url``: the logical ``https://host/path?query`` URL, already checked by the caller; an upstream
        override is applied here. ``timeout_s`` bounds everything (DNS, connect, send, read).
        ``redact`` cleans text before it is logged.

        Raises ``TimeoutError`` when ``timeout_s`` passes, ``HttpRefused`` for a forbidden address, a DNS or
        connection failure (short generic message; details logged at debug level), or a body larger than
        ``max_response_bytes``. Must not be called from the egress loop thread.
        """
        if self._closed:
            raise HttpRefused("outbound HTTP is shut down")
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("Egress.fetch called from the egress loop thread")
        future = asyncio.run_coroutine_threadsafe(
            self._fetch(method, url, headers, body, max_response_bytes, timeout_s, redact), self._loop
        )
        try:
            return future.result(timeout=timeout_s + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None
        except concurrent.futures.CancelledError:
            raise HttpRefused("request cancelled: outbound HTTP is shutting down") from None

    async def _fetch(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        max_response_bytes: int,
        timeout_s: float,
        redact: Callable[[str], str],
    ) -> EgressResponse:
        async with asyncio.timeout(timeout_s):
            logical = urlsplit(url)
            logical_host = (logical.hostname or "").lower().rstrip(".")
            override = self._overrides.get(logical_host)
            if override is None:
                connect_host, port = logical_host, 443
                target = url
                addrs = await self._checked_addresses(connect_host, port)
            else:
                connect_host, port = override.host, override.port
                target = f"{override.scheme}://{override.netloc}{override.path}{logical.path}"
                target += f"?{logical.query}" if logical.query else ""
                addrs = [] if is_ip_literal(connect_host) else await self._resolved(connect_host, port)
            _PINNED.set({connect_host: addrs})
            try:
                return await self._send(method, target, headers, body, max_response_bytes)
            except (TimeoutError, HttpRefused):
                raise
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                detail = redact(str(exc))
                logger.debug("request to %s failed: %s: %s", logical_host, type(exc).__name__, detail)
                raise HttpRefused(f"connection to {logical_host} failed") from None

    async def _send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        max_response_bytes: int,
    ) -> EgressResponse:
        send_headers: list[tuple[str, str]] = [*headers, ("Accept-Encoding", ACCEPT_ENCODING)]
        request_kwargs: dict[str, Any] = {"allow_redirects": False}
        if body is not None:
            request_kwargs["data"] = body
        async with self._session.request(
            method, URL(target, encoded=True), headers=send_headers, **request_kwargs
        ) as resp:
            decoder = BodyDecoder(resp.headers.get("Content-Encoding"), max_response_bytes)
            declared = resp.content_length
            if decoder.encoding is None and declared is not None and declared > max_response_bytes:
                raise too_large(max_response_bytes)
            async for chunk in resp.content.iter_chunked(_CHUNK):
                decoder.feed(chunk)
            received = tuple((name, value) for name, value in resp.headers.items())
            if decoder.encoding is not None:
                # The body is decoded; the encoding and length headers no longer describe it.
                drop = ("content-encoding", "content-length")
                received = tuple((n, v) for n, v in received if n.lower() not in drop)
            return EgressResponse(status=resp.status, headers=received, body=decoder.finish())

    async def _lookup(self, host: str, port: int) -> list[str]:
        """The name's addresses from the injected resolver or ``getaddrinfo``; raises ``OSError``."""
        if self._resolve is not None:
            return await self._loop.run_in_executor(None, self._resolve, host, port)
        infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]

    async def _resolved(self, host: str, port: int) -> list[str]:
        """An override's addresses, not checked (the operator chose the target)."""
        try:
            addrs = list(dict.fromkeys(await self._lookup(host, port)))
        except (OSError, UnicodeError) as exc:
            logger.debug("cannot resolve %s: %s", host, exc)
            raise HttpRefused(f"could not resolve host {host}") from None
        if not addrs:
            raise HttpRefused(f"could not resolve host {host}")
        return addrs

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        try:
            return await self._guard.resolve(host, port, self._lookup)
        except DestinationRefused as exc:
            logger.info("refused request to %s: %s", host, exc.reason)
            raise HttpRefused(str(exc)) from None


def _parse_override(host: str, base: str) -> _Override:
    try:
        parts = urlsplit(base)
        port = parts.port
    except ValueError:
        raise ConfigError(f"upstream override for {host}: invalid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream override for {host}: need an http:// or https:// URL with a host")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"upstream override for {host}: no userinfo, query or fragment allowed")
    return _Override(
        scheme=parts.scheme,
        host=parts.hostname.lower(),
        port=port if port is not None else (443 if parts.scheme == "https" else 80),
        netloc=parts.netloc,
        path=parts.path.rstrip("/"),
    )
