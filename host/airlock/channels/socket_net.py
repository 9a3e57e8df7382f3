"""Where a channel's websocket connects: upstream overrides for the URL, and a resolver that refuses non-public
addresses unless the host is exempt, with the same check as guest HTTP (``capabilities.ssrf.AddressGuard``).
Used by ``socket_runtime.SocketRuntime``, which also applies the guard to IP literals before connecting
(aiohttp never hands a literal to a resolver)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from ..capabilities.ssrf import AddressGuard, DestinationRefused, Lookup
from ..errors import ConfigError

__all__ = ["CheckedResolver", "resolve_url"]

log = logging.getLogger("airlock.websocket")


def resolve_url(logical: str, overrides: Mapping[str, str]) -> tuple[str, bool]:
    """Apply an upstream override to a ``wss://`` URL: ``(target URL, overridden?)``.

    ``wss://gateway.discord.gg/?v=10`` with ``{"gateway.discord.gg": "http://127.0.0.1:9000/gw"}`` gives
    ``ws://127.0.0.1:9000/gw/?v=10``. Raises ``ConfigError`` for a URL that is not ``wss://`` without an override.
    """
    parts = urlsplit(logical)
    host = (parts.hostname or "").lower().rstrip(".")
    base = overrides.get(host)
    if base is None:
        if parts.scheme != "wss":
            raise ConfigError(f"websocket URL for {host or '?'} must be wss://")
        return logical, False
    b = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(b.scheme)
    if scheme is None or not b.netloc:
        raise ConfigError(f"upstream override for {host} must be an http:// or https:// base URL")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{b.netloc}{b.path.rstrip('/')}{parts.path or '/'}{query}", True


class CheckedResolver(AbstractResolver):
    """Resolves a websocket host and refuses non-public addresses unless the host is exempt
    (``exempt``: ``allow_private_hosts``, exact or ``*.suffix``). ``lookup``: ``(host, port) -> addresses``
    for tests; default ``getaddrinfo`` on the running loop. ``guard`` is the check itself, shared with the
    runtime's IP-literal check."""

    def __init__(self, exempt: Collection[str], lookup: Lookup | None = None) -> None:
        self.guard = AddressGuard(exempt)
        self._lookup = lookup

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        async def getaddrinfo(name: str, p: int) -> list[str]:
            infos = await asyncio.get_running_loop().getaddrinfo(name, p, type=socket.SOCK_STREAM, family=family)
            return [str(info[4][0]) for info in infos]

        try:
            addrs = await self.guard.resolve(host, port, self._lookup or getaddrinfo)
        except DestinationRefused as exc:
            log.warning("websocket host %s refused: %s", host, exc.reason)
            raise OSError(str(exc)) from None
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addrs]

    async def close(self) -> None:
        return None
