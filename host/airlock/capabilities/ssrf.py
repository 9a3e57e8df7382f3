"""The one SSRF check of every outbound connection the host makes: guest HTTP (``egress.Egress``) and the
host-owned websockets (``channels.socket_runtime.CheckedResolver``).

Rule: a destination host is resolved by the host itself and refused if ANY of its addresses could reach
something internal (``is_forbidden_address``), unless the host is exempt by ``HostConfig.allow_private_hosts``.
An exemption is an exact host or ``*.suffix`` (any subdomain of ``suffix``, not ``suffix`` itself), compared
after the same normalisation on both sides (``canonical_host``): never a substring, so neither
``internal.example.com.evil.net`` nor ``xinternal.example.com`` matches ``internal.example.com``.

IP literals are judged as they are, without DNS; a literal in a legacy spelling (``2130706433``, ``0x7f.1``,
``127.1``) is not an IP literal here, so it goes to the resolver, which maps it to the address it means, and
that address is judged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Collection, Sequence

from airlock.errors import AirlockError

__all__ = [
    "AddressGuard",
    "DestinationRefused",
    "Lookup",
    "canonical_host",
    "is_forbidden_address",
    "is_ip_literal",
]

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

Lookup = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses`` (IP literals as strings); raises ``OSError`` or ``UnicodeError`` when the
name does not resolve."""


class DestinationRefused(AirlockError):
    """A destination failed the check. ``reason`` is ``"unresolvable"`` or ``"non-public"``; ``str(err)`` is
    safe to show to a guest (it names the host only, never the addresses)."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        if reason == "unresolvable":
            super().__init__(f"could not resolve host {host}")
        else:
            super().__init__(f"host {host} resolves to a non-public address; request refused")


def is_forbidden_address(address: str) -> bool:
    """True if a connection to ``address`` (an IP literal, IPv6 with or without a ``%zone``) could reach
    something internal: loopback, private, link-local, unspecified, multicast, reserved, CGNAT
    (100.64.0.0/10), cloud metadata (169.254.169.254, fd00:ec2::254), anything not globally routable, or
    an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 form of these. Unparsable input counts as forbidden."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the connection goes to the IPv4 address: judge that one
            return is_forbidden_address(str(ip.ipv4_mapped))
        embedded: ipaddress.IPv4Address | None = ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_forbidden_address(str(embedded)):
            return True
    elif ip in _CGNAT:
        return True
    return (
        ip in _METADATA
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or not ip.is_global
    )


def is_ip_literal(host: str) -> bool:
    """True for a canonical IPv4 or IPv6 literal (brackets allowed); legacy IPv4 spellings are not."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def canonical_host(host: str) -> str:
    """The form both sides of every comparison take: brackets dropped, lower case, trailing dots dropped,
    non-ASCII names IDNA-encoded, IPv6 literals compressed (``0:0:0:0:0:0:0:1`` -> ``::1``). Wildcard
    patterns keep their ``*.``."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host  # never matches a valid exemption; the lookup refuses it
    return host


class AddressGuard:
    """The SSRF check with its exemptions. ``allow_private_hosts``: exact hosts or ``*.suffix`` patterns
    (``HostConfig.allow_private_hosts``). Stateless after construction; safe to share between threads."""

    def __init__(self, allow_private_hosts: Collection[str] = ()) -> None:
        exact: set[str] = set()
        suffixes: set[str] = set()
        for pattern in allow_private_hosts:
            if pattern.strip().startswith("*."):
                suffixes.add("." + canonical_host(pattern.strip()[2:]))
            else:
                exact.add(canonical_host(pattern))
        self._exact = frozenset(exact)
        self._suffixes = tuple(sorted(suffixes))

    def is_exempt(self, host: str) -> bool:
        """Whether ``host`` may resolve to non-public addresses: an exact exemption, or a subdomain of a
        ``*.suffix`` one (``a.suffix``, not ``suffix`` and not ``xsuffix``)."""
        name = canonical_host(host)
        return name in self._exact or any(name.endswith(s) and len(name) > len(s) for s in self._suffixes)

    def check(self, host: str, addresses: Sequence[str]) -> None:
        """Raise ``DestinationRefused`` if ``host`` is not exempt and any of ``addresses`` is forbidden."""
        if not self.is_exempt(host) and any(is_forbidden_address(a) for a in addresses):
            raise DestinationRefused(canonical_host(host), "non-public")

    async def resolve(self, host: str, port: int, lookup: Lookup) -> list[str]:
        """The checked addresses of ``host``: itself for an IP literal, else ``lookup(host, port)``
        deduplicated in order. Raises ``DestinationRefused`` (unresolvable, or non-public)."""
        name = canonical_host(host)
        if is_ip_literal(name):
            addresses = [name]
        else:
            try:
                found = await lookup(name, port)
            except (OSError, UnicodeError):
                raise DestinationRefused(name, "unresolvable") from None
            addresses = list(dict.fromkeys(found))
            if not addresses:
                raise DestinationRefused(name, "unresolvable")
        self.check(name, addresses)
        return addresses
