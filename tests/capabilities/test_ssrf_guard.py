"""The SSRF check (``airlock.capabilities.ssrf``) through both of its callers: guest HTTP (``HttpCapability`` ->
``Egress``) and the host-owned websockets (``CheckedResolver``, ``SocketRuntime``). Every case runs on both
paths, so the two cannot drift apart again (issue 13: they normalised hosts differently).

Names resolve through an injected lookup (the answer a DNS server would give) or, for numeric spellings,
through the real ``getaddrinfo``, which needs no network for them. No packet leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urljoin

import pytest
from aiohttp import web
from fake_base import serving
from test_http import call, make_cap

from airlock.capabilities.egress import Egress
from airlock.capabilities.http import AllowRule, HttpAudit, HttpRefused
from airlock.capabilities.http_policy import parse_https_url
from airlock.capabilities.ssrf import AddressGuard, canonical_host
from airlock.capabilities.websocket import WebsocketCapability
from airlock.channels.socket_runtime import CheckedResolver, SocketRuntime, SocketSettings
from airlock.manifest import WebsocketCapability as WebsocketSpec

CALLERS = ["http", "websocket"]


async def http_outcome(exempt: list[str], host: str, answer: list[str] | None) -> str:
    """'refused' (SSRF), or 'passed' (the check let it through; the connection itself then fails)."""
    def resolve(name: str, port: int) -> list[str]:
        assert answer is not None, "an IP literal must not be looked up"
        return answer

    eg = Egress(resolve=resolve, allow_private_hosts=exempt)
    try:
        rule_host = parse_https_url(f"https://{host}/").host
        cap = make_cap(eg, allow=(AllowRule(rule_host, "/"),), timeout_secs=2)
        try:
            await call(cap, f"https://{host}/x")
        except HttpRefused as exc:
            return "refused" if "non-public" in str(exc) else "passed"
        return "passed"
    finally:
        eg.close()


async def websocket_outcome(exempt: list[str], host: str, answer: list[str] | None) -> str:
    async def lookup(name: str, port: int) -> list[str]:
        assert answer is not None, "an IP literal must not be looked up"
        return answer

    resolver = CheckedResolver(exempt, lookup=None if answer is None else lookup)
    try:
        await resolver.resolve(host.strip("[]"), 443)
    except OSError as exc:
        return "refused" if "non-public" in str(exc) else "passed"
    return "passed"


async def outcome(caller: str, exempt: list[str], host: str, answer: list[str] | None) -> str:
    if caller == "http":
        return await http_outcome(exempt, host, answer)
    return await websocket_outcome(exempt, host, answer)


LOOPBACK = ["127.0.0.1"]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("exempt", "host", "expected"),
    [
        ([], "internal.example.com", "refused"),
        (["internal.example.com"], "internal.example.com", "passed"),
        (["Internal.Example.COM."], "internal.example.com", "passed"),
        (["internal.example.com"], "INTERNAL.example.com.", "passed"),
        # never a substring or a suffix without its dot
        (["internal.example.com"], "internal.example.com.evil.net", "refused"),
        (["internal.example.com"], "xinternal.example.com", "refused"),
        (["internal.example.com"], "a.internal.example.com", "refused"),
        (["internal.example.com"], "example.com", "refused"),
        # *.suffix: subdomains only
        (["*.internal.example.com"], "a.internal.example.com", "passed"),
        (["*.internal.example.com"], "b.a.internal.example.com", "passed"),
        (["*.internal.example.com"], "internal.example.com", "refused"),
        (["*.internal.example.com"], "xinternal.example.com", "refused"),
        (["*.internal.example.com"], "a.internal.example.com.evil.net", "refused"),
    ],
)
async def test_allow_private_hosts_is_exact_or_subdomain(
    caller: str, exempt: list[str], host: str, expected: str
) -> None:
    assert await outcome(caller, exempt, host, LOOPBACK) == expected


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("answer", [["93.184.216.34", "10.0.0.5"], ["::ffff:169.254.169.254"], ["100.64.1.1"]])
async def test_one_private_address_refuses_the_name(caller: str, answer: list[str]) -> None:
    assert await outcome(caller, [], "mixed.example.com", answer) == "refused"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[64:ff9b::a9fe:a9fe]",  # NAT64 form of 169.254.169.254
        "169.254.169.254",
        "0.0.0.0",
    ],
)
async def test_ip_literals_are_judged_without_dns(caller: str, host: str) -> None:
    assert await outcome(caller, [], host, None) == "refused"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "0x7f000001"])
async def test_legacy_ipv4_spellings_resolve_to_what_they_mean(caller: str, host: str) -> None:
    # The real getaddrinfo maps these to 127.0.0.1 (no network needed); the address is what is judged.
    if caller == "http":
        eg = Egress()
        try:
            cap = make_cap(eg, allow=(AllowRule(host, "/"),), timeout_secs=2)
            with pytest.raises(HttpRefused, match="non-public"):
                await call(cap, f"https://{host}/x")
        finally:
            eg.close()
    else:
        with pytest.raises(OSError, match="non-public"):
            await CheckedResolver(()).resolve(host, 443)


def test_canonical_host_forms() -> None:
    assert canonical_host("[0:0:0:0:0:0:0:1]") == "::1"
    assert canonical_host("Example.COM.") == "example.com"
    assert canonical_host("bücher.example") == "xn--bcher-kva.example"
    guard = AddressGuard(["bücher.example", "*.Corp.Example."])
    assert guard.is_exempt("xn--bcher-kva.example")
    assert guard.is_exempt("a.corp.example")
    assert not guard.is_exempt("corp.example")


# ---- the websocket's own connection: an IP literal never reaches aiohttp's resolver ------------------


async def test_websocket_to_a_private_ip_literal_stops_before_connecting() -> None:
    spec = WebsocketSpec.model_validate({"url": "wss://127.0.0.1:9/gw", "connect_on_start": True})
    delivered: list[Any] = []

    async def deliver(request: Any) -> None:
        delivered.append(request)

    async def no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    runtime = SocketRuntime(
        "lit", spec, secret_lookup=lambda name: None, capability=WebsocketCapability("lit"), deliver=deliver,
        settings=SocketSettings(sleep=no_sleep),
    )
    assert await runtime.start()
    try:
        deadline = time.monotonic() + 5
        while runtime.status.state != "stopped" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert runtime.status.state == "stopped"
        assert "non-public" in runtime.status.reason
        assert runtime.status.connections == 0
    finally:
        await runtime.stop()


# ---- redirects towards internal addresses ---------------------------------------------------------------


@pytest.fixture
async def redirector() -> AsyncIterator[str]:
    """A 127.0.0.1 server whose ``/go?to=URL`` answers 302 with ``Location: URL``; ``/seen`` counts hits."""
    hits: list[str] = []

    async def go(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(status=302, headers={"Location": request.query["to"]})

    app = web.Application()
    app.router.add_get("/go", go)
    async with serving(app) as url:
        yield url


@pytest.mark.parametrize(
    "location",
    [
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://2130706433/x",
        "https://internal.example.com/x",
        "//127.0.0.1/x",
        "https://api.example.com@127.0.0.1/x",
        "http://api.example.com/x",
    ],
)
async def test_redirect_to_an_internal_address_is_not_followed(redirector: str, location: str) -> None:
    looked_up: list[str] = []

    def resolve(name: str, port: int) -> list[str]:
        looked_up.append(name)
        return ["127.0.0.1"]

    eg = Egress(upstream_overrides={"api.example.com": redirector}, resolve=resolve)
    try:
        allow = tuple(AllowRule(h, "/") for h in ("api.example.com", "internal.example.com", "127.0.0.1", "::1"))
        cap = make_cap(eg, allow=allow)
        audit: list[HttpAudit] = []
        result = await call(cap, f"https://api.example.com/go?to={quote(location, safe='')}", audit=audit)
        # The 3xx goes back to the guest unfollowed: one hop, no lookup, nothing else contacted.
        assert result.status == 302
        assert json.loads(result.headers_json)["location"] == location
        assert len(audit) == 1 and looked_up == []
        # Asking for the target itself goes through the allow-list and the SSRF check like any request.
        follow = urljoin("https://api.example.com/go", location)
        with pytest.raises(HttpRefused, match=r"non-public|not in the channel's HTTP allow-list|userinfo|https"):
            await call(cap, follow)
    finally:
        eg.close()
