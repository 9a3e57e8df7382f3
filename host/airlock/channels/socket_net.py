"""Where a channel's websocket connects: upstream overrides for the URL, and a resolver that refuses non-public
addresses (``capabilities.egress.is_forbidden_address``) unless the host is exempt. Used by
``socket_runtime.SocketRuntime``."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from ..capabilities.egress import is_forbidden_address
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
    """Resolves a websocket host and refuses non-public addresses (unless the host is exempt)."""

    def __init__(self, exempt: Collection[str]) -> None:
        self._exempt = frozenset(h.lower().rstrip(".") for h in exempt)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addrs:
            raise OSError(f"could not resolve {host}")
        if host.lower().rstrip(".") not in self._exempt and any(is_forbidden_address(a) for a in addrs):
            log.warning("websocket host %s resolves to a non-public address %s; refused", host, addrs)
            raise OSError(f"{host} resolves to a non-public address; refused")
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addrs]

    async def close(self) -> None:
        return None
