"""Downloading a package from an ``https://`` URL, under the same SSRF rule as guest egress.

Every connection (the first and each redirect) goes to addresses checked by ``capabilities.ssrf.AddressGuard``
(the guard of guest HTTP and the host's websockets): a host that resolves to a loopback, private, link-local,
metadata or otherwise non-public address is refused unless the operator exempted it
(``HostConfig.allow_private_hosts`` or ``--allow-private-host``). aiohttp connects to exactly the checked
addresses (the resolver below answers with them), so a second DNS answer cannot slip past the check. IP
literals never reach a resolver, so they are checked here before connecting.

Limits: ``https`` only (also after a redirect), no credentials in the URL, at most ``MAX_REDIRECTS``
redirects, at most ``archive.MAX_PACKAGE_BYTES`` (the declared length is checked first, then every byte
read), and one deadline ``FETCH_TIMEOUT_S`` for the whole download. TLS certificates are verified against the
system's CAs (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name others, OpenSSL's usual variables). The body is kept
in memory: nothing is written before the package is verified.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Collection
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..capabilities.ssrf import AddressGuard, DestinationRefused, canonical_host, is_ip_literal
from ..errors import PackageError
from .archive import MAX_PACKAGE_BYTES

__all__ = ["FETCH_TIMEOUT_S", "MAX_REDIRECTS", "fetch_package", "is_url"]

FETCH_TIMEOUT_S = 60.0
"""Seconds for the whole download, redirects included (``--timeout`` overrides)."""
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


def is_url(source: str) -> bool:
    """Whether ``source`` is a URL (``scheme://...``) rather than a file path."""
    return "://" in source


class _GuardedResolver(AbstractResolver):
    """Resolves with ``getaddrinfo`` and returns only addresses the guard accepted (all or nothing)."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        async def lookup(name: str, p: int) -> list[str]:
            infos = await asyncio.get_running_loop().getaddrinfo(name, p, type=socket.SOCK_STREAM, family=family)
            return [str(info[4][0]) for info in infos]

        addrs = await self.guard.resolve(host, port, lookup)
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addrs]

    async def close(self) -> None:
        return None


def _check_url(url: str, guard: AddressGuard) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise PackageError(f"{url}: only https:// URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise PackageError("a package URL may not carry credentials (user:password@)")
    host = parts.hostname or ""
    if not host:
        raise PackageError(f"{url}: no host")
    if is_ip_literal(host):
        guard.check(host, [canonical_host(host)])


async def _get(session: aiohttp.ClientSession, url: str, guard: AddressGuard, max_bytes: int) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url, guard)
        async with session.get(url, allow_redirects=False) as resp:
            if resp.status in _REDIRECTS and "Location" in resp.headers:
                url = urljoin(url, resp.headers["Location"])
                continue
            if resp.status != 200:
                raise PackageError(f"{url}: the server answered {resp.status}")
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise PackageError(f"{url}: {resp.content_length} bytes, over the {max_bytes}-byte limit")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise PackageError(f"{url}: more than the {max_bytes}-byte limit")
            return bytes(body)
    raise PackageError(f"{url}: more than {MAX_REDIRECTS} redirects")


async def _fetch(url: str, guard: AddressGuard, max_bytes: int) -> bytes:
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(guard), use_dns_cache=False,
                                     ssl=ssl.create_default_context())
    async with aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                     cookie_jar=aiohttp.DummyCookieJar(),
                                     headers={"User-Agent": "airlock", "Accept-Encoding": "identity"}) as session:
        return await _get(session, url, guard, max_bytes)


def _refused(url: str, exc: DestinationRefused) -> PackageError:
    hint = f" (allow it with --allow-private-host {exc.host})" if exc.reason == "non-public" else ""
    return PackageError(f"{url}: {exc}{hint}")


def fetch_package(url: str, *, allow_private_hosts: Collection[str] = (), timeout_s: float = FETCH_TIMEOUT_S,
                  max_bytes: int = MAX_PACKAGE_BYTES) -> bytes:
    """Download ``url`` (module docstring for the rules). Blocks; runs its own event loop.

    Raises:
        PackageError: a refused or unreachable destination, a TLS failure, a non-200 answer, too many
            redirects, over ``max_bytes``, or over ``timeout_s`` (one line each; nothing written).
    """
    guard = AddressGuard(allow_private_hosts)
    try:
        return asyncio.run(asyncio.wait_for(_fetch(url, guard, max_bytes), timeout_s))
    except DestinationRefused as exc:
        raise _refused(url, exc) from None
    except TimeoutError:
        raise PackageError(f"{url}: no complete answer within {timeout_s:g} s") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise PackageError(f"{url}: TLS certificate not trusted ({exc.certificate_error})") from None
    except aiohttp.ClientConnectorError as exc:
        cause = exc.os_error
        if isinstance(cause, DestinationRefused):  # raised by the resolver, wrapped by aiohttp
            raise _refused(url, cause) from None
        raise PackageError(f"{url}: cannot connect: {cause.strerror or cause}") from None
    except (aiohttp.ClientError, ssl.SSLError, ValueError) as exc:
        raise PackageError(f"{url}: download failed: {type(exc).__name__}: {str(exc)[:160]}") from None
