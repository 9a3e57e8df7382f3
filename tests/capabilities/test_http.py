"""Tests for ``http-request`` (``airlock.capabilities.http``, ``http_policy`` and ``egress``).

A real aiohttp server on 127.0.0.1 plays every upstream; ``upstream_overrides`` point the allow-listed
``https`` hosts at it. ``HttpCapability.request`` blocks, so tests call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web
from fake_base import serving

from airlock.capabilities.egress import Egress, is_forbidden_address
from airlock.capabilities.http import (
    AllowRule,
    CredentialRule,
    HttpAudit,
    HttpCapability,
    HttpPolicy,
    HttpRefused,
    HttpResult,
)
from airlock.capabilities.http_policy import parse_https_url, select_credentials
from airlock.errors import ConfigError

TG_TOKEN = "123456:SECRET-tg_token"
SLACK_TOKEN = "xoxb-SECRET-slack"
API_KEY = "k3y/with?odd&chars"
SECRETS = {
    "telegram_bot_token": TG_TOKEN,
    "slack_bot_token": SLACK_TOKEN,
    "api_key": API_KEY,
    "other_token": "other-SECRET",
    "wild_key": "wild-SECRET",
    "exact_key": "exact-SECRET",
    "path_key": "path-SECRET",
    "basic_pw": "basic-SECRET",
    "query_key": "query SECRET/+",
    "bad_header_secret": "line1\r\nX-Injected: yes",
}

HOSTS = [
    "api.example.com",
    "api.telegram.org",
    "a.wild.example.com",
    "readonly.example.com",
    "bearer.example.com",
    "basic.example.com",
    "discord.example.com",
    "query.example.com",
    "api.example.org",
    "x.example.org",
    "optional.example.com",
]

DEFAULT_ALLOW = (
    AllowRule("api.example.com", "/echo"),
    AllowRule("api.example.com", "/slow"),
    AllowRule("api.example.com", "/big"),
    AllowRule("api.example.com", "/redirect"),
    AllowRule("api.example.com", "/gzip"),
    AllowRule("api.telegram.org", "/bot"),
    AllowRule("*.wild.example.com", "/echo", methods=("GET",)),
    AllowRule("readonly.example.com", "/echo", methods=("GET", "HEAD")),
)
TELEGRAM_CRED = CredentialRule(
    secret_name="telegram_bot_token",
    location="url_path",
    placeholder="{TELEGRAM_BOT_TOKEN}",
    host_patterns=("api.telegram.org",),
    id="telegram_bot",
)


@dataclass
class Upstream:
    base: str
    seen: list[dict[str, Any]] = field(default_factory=list)


def _every_form(secret: str) -> list[str]:
    return [secret, quote(secret), quote(secret, safe=""), quote_plus(secret)]


def assert_no_secret(secret: str, *texts: str | bytes) -> None:
    for text in texts:
        blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for form in _every_form(secret):
            assert form not in blob, f"secret leaked in {blob[:300]!r}"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream(base="")

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": request.rel_url.raw_query_string,
            "headers": dict(request.headers),
            "body": body.decode("utf-8", "replace"),
        }
        up.seen.append(record)
        resp = web.json_response(record, headers={"X-Echo-Path": request.raw_path})
        resp.headers.add("X-Dup", "a")
        resp.headers.add("X-Dup", "b")
        if request.path.startswith("/gzip"):
            resp.enable_compression()
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["n"])
        resp = web.StreamResponse()
        await resp.prepare(request)  # chunked: no Content-Length
        for _ in range(size // 10_000):
            await resp.write(b"x" * 10_000)
        await resp.write_eof()
        return resp

    async def big_declared(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * int(request.match_info["n"]))

    def redirect_to(location: str, status: int = 302) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            up.seen.append({"method": request.method, "path": request.path})
            return web.Response(status=status, headers={"Location": location})

        return handler

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/big/{n}", big)
    app.router.add_get("/bigdeclared/{n}", big_declared)
    app.router.add_route("*", "/redirect/same", redirect_to("/echo/after"))
    app.router.add_route("*", "/redirect/cross", redirect_to("https://elsewhere.example.net/x"))
    app.router.add_route("*", "/redirect/outside", redirect_to("/private/x"))
    app.router.add_route("*", "/redirect/loop", redirect_to("/redirect/loop"))
    app.router.add_route("*", "/redirect/see-other", redirect_to("/echo/after", 303))
    app.router.add_route("*", "/redirect/plain-http", redirect_to("http://api.example.com/echo/x"))
    app.router.add_route("*", "/{tail:.*}", echo)
    async with serving(app, shutdown_timeout=0.2, handler_cancellation=True) as up.base:
        yield up


@pytest.fixture
def egress(upstream: Upstream) -> Iterator[Egress]:
    eg = Egress(upstream_overrides=dict.fromkeys(HOSTS, upstream.base))
    yield eg
    eg.close()


def make_cap(
    egress: Egress,
    *,
    allow: tuple[AllowRule, ...] = DEFAULT_ALLOW,
    credentials: tuple[CredentialRule, ...] = (TELEGRAM_CRED,),
    secrets: dict[str, str] = SECRETS,
    allowed: Callable[[str], bool] = lambda name: name in {"api_key", "query_key", "bad_header_secret"},
    clock: Callable[[], float] = time.monotonic,
    **policy: Any,
) -> HttpCapability:
    return HttpCapability(
        "test",
        HttpPolicy(allowlist=allow, credentials=credentials, **policy),
        secrets.get,
        allowed,
        egress,
        clock,
    )


async def call(
    cap: HttpCapability,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | str | None = None,
    body: bytes | None = None,
    timeout_ms: int | None = None,
    deadline: float | None = None,
    audit: list[HttpAudit] | None = None,
) -> HttpResult:
    headers_json = headers if isinstance(headers, str) else json.dumps(headers or {})
    return await asyncio.to_thread(
        cap.request,
        method,
        url,
        headers_json,
        body,
        timeout_ms,
        deadline=deadline if deadline is not None else time.monotonic() + 30,
        audit=audit if audit is not None else [],
    )


def echoed(result: HttpResult) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.body)
    return data


# --- URL, method and allow-list rules ------------------------------------------------------------------


async def test_allowed_request_reaches_server(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    result = await call(make_cap(egress), "https://api.example.com/echo/hello?a=1", audit=audit)
    assert result.status == 200
    assert echoed(result)["path"] == "/echo/hello"
    assert echoed(result)["query"] == "a=1"
    assert audit == [
        HttpAudit("GET", "https://api.example.com/echo/hello?a=1", True, 200, None, audit[0].elapsed_s)
    ]


async def test_off_allowlist_host_refused(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    with pytest.raises(HttpRefused, match=r"host evil\.example\.com is not in the channel's HTTP allow-list"):
        await call(make_cap(egress), "https://evil.example.com/echo", audit=audit)
    assert len(audit) == 1 and audit[0].allowed is False and audit[0].status is None
    assert audit[0].error is not None and "allow-list" in audit[0].error
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.example.com/echo", "only https"),
        ("ftp://api.example.com/echo", "only https"),
        ("https://user:pw@api.example.com/echo", "userinfo"),
        ("https://api.example.com@evil.com/echo", "userinfo"),
        ("https://api.example.com:8443/echo", "port"),
        ("https://api.example.com:99999/echo", "port"),
        ("https:///echo", "no host"),
        ("https://api.example.com/echo/../private", r"'\.\.' segments"),
        ("https://api.example.com/echo/%2e%2e/private", r"'\.\.' segments"),
        ("https://api.example.com/echo/%2E%2e/private", r"'\.\.' segments"),
        ("https://api.example.com/echo/%252e%252e/private", r"'\.\.' segments"),
        ("https://api.example.com/echo/..%2fprivate", r"'\.\.' segments"),
        ("https://api.example.com/echo/./x", r"'\.\.' segments"),
        ("https://api.example.com/echo\\..\\private", "backslash"),
        ("https://api.example.com/echo x", "whitespace"),
        ("https://api.example.com/echo\r\nHost: x", "control"),
        ("https://api.example.com/private", "path /private is not allowed"),
        ("https://api.example.com/%65cho/x", "is not allowed for host"),
        ("https://wild.example.com/echo", "not in the channel's HTTP allow-list"),
        ("https://a.wild.example.com.evil.com/echo", "not in the channel's HTTP allow-list"),
    ],
)
async def test_bad_urls_refused(egress: Egress, upstream: Upstream, url: str, message: str) -> None:
    with pytest.raises(HttpRefused, match=message):
        await call(make_cap(egress), url)
    assert upstream.seen == []


async def test_explicit_port_443_and_case_insensitive_host(egress: Egress, upstream: Upstream) -> None:
    result = await call(make_cap(egress), "https://API.Example.COM:443/echo/x")
    assert result.status == 200
    assert echoed(result)["path"] == "/echo/x"


async def test_wildcard_matches_subdomain_not_apex(egress: Egress, upstream: Upstream) -> None:
    result = await call(make_cap(egress), "https://a.wild.example.com/echo/w")
    assert result.status == 200
    with pytest.raises(HttpRefused, match="allow-list"):
        await call(make_cap(egress), "https://wild.example.com/echo/w")


async def test_methods(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress)
    result = await call(cap, "https://readonly.example.com/echo/m", method="get")
    assert echoed(result)["method"] == "GET"
    with pytest.raises(HttpRefused, match=r"method POST is not allowed for host readonly\.example\.com"):
        await call(cap, "https://readonly.example.com/echo/m", method="POST", body=b"x")
    with pytest.raises(HttpRefused, match="method TRACE is not allowed"):
        await call(cap, "https://api.example.com/echo/m", method="TRACE")
    result = await call(cap, "https://api.example.com/echo/m", method="post", body=b"payload")
    assert echoed(result)["method"] == "POST"
    assert echoed(result)["body"] == "payload"


def test_non_ascii_path_is_percent_encoded() -> None:
    parsed = parse_https_url("https://api.example.com/echo/caf\u00e9?q=\u00fc#frag")
    assert parsed.geturl() == "https://api.example.com/echo/caf%C3%A9?q=%C3%BC"


# --- headers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers_json", "message"),
    [
        ("[]", "JSON object"),
        ('{"a": 1}', "JSON object"),
        ('{"a": null}', "JSON object"),
        ("not json", "not valid JSON"),
        (json.dumps({f"X-H{i}": "v" for i in range(101)}), "too many headers"),
        ('{"X-A": "a\\r\\nX-B: c"}', "CR, LF or NUL"),
        ('{"X-A": "a\\nb"}', "CR, LF or NUL"),
        ('{"Bad Name": "x"}', "invalid header name"),
        ('{"X\\r\\nY": "x"}', "invalid header name"),
    ],
)
async def test_bad_headers_refused(
    egress: Egress, upstream: Upstream, headers_json: str, message: str
) -> None:
    with pytest.raises(HttpRefused, match=message):
        await call(make_cap(egress), "https://api.example.com/echo", headers=headers_json)
    assert upstream.seen == []


async def test_hundred_headers_accepted_and_empty_string_means_none(
    egress: Egress, upstream: Upstream
) -> None:
    cap = make_cap(egress)
    result = await call(cap, "https://api.example.com/echo", headers={f"X-H{i}": "v" for i in range(100)})
    assert echoed(result)["headers"]["X-H99"] == "v"
    result = await call(cap, "https://api.example.com/echo", headers="")
    assert result.status == 200


async def test_hop_by_hop_headers_are_set_by_host(egress: Egress, upstream: Upstream) -> None:
    result = await call(
        make_cap(egress),
        "https://api.example.com/echo",
        method="POST",
        body=b"abc",
        headers={
            "Host": "evil.internal",
            "Content-Length": "999",
            "Transfer-Encoding": "chunked",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "X-Kept": "yes",
        },
    )
    seen = echoed(result)["headers"]
    assert seen["Host"] == upstream.base.removeprefix("http://")
    assert seen["Content-Length"] == "3"
    assert "Transfer-Encoding" not in seen and "Upgrade" not in seen
    assert seen["X-Kept"] == "yes"
    assert echoed(result)["body"] == "abc"


async def test_response_headers_lowercased_and_duplicates_joined(egress: Egress, upstream: Upstream) -> None:
    result = await call(make_cap(egress), "https://api.example.com/echo/h")
    headers = json.loads(result.headers_json)
    assert headers["x-dup"] == "a, b"
    assert headers["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in headers)


async def test_gzip_response_is_decoded_and_redacted(egress: Egress, upstream: Upstream) -> None:
    result = await call(make_cap(egress), "https://api.example.com/gzip", headers={"X-Key": "{API_KEY}"})
    assert upstream.seen[-1]["headers"]["X-Key"] == API_KEY
    headers = json.loads(result.headers_json)
    assert "content-encoding" not in headers
    assert echoed(result)["headers"]["X-Key"] == "[REDACTED]"
    assert_no_secret(API_KEY, result.body)


# --- placeholders and credential injection -------------------------------------------------------------


async def test_placeholder_for_disallowed_secret_refused(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress)
    with pytest.raises(HttpRefused, match=r"may not use secret placeholder \{OTHER_TOKEN\}") as err:
        await call(cap, "https://api.example.com/echo/{OTHER_TOKEN}")
    assert "other-SECRET" not in str(err.value)
    with pytest.raises(HttpRefused, match=r"may not use secret placeholder \{OTHER_TOKEN\}"):
        await call(cap, "https://api.example.com/echo", headers={"X-T": "Bearer {OTHER_TOKEN}"})
    with pytest.raises(HttpRefused, match=r"may not use secret placeholder \{SLACK_BOT_TOKEN\}"):
        await call(cap, "https://api.example.com/echo?t={SLACK_BOT_TOKEN}")
    assert upstream.seen == []


async def test_placeholder_for_allowed_but_missing_secret_refused(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress, allowed=lambda name: True)
    with pytest.raises(HttpRefused, match=r"may not use secret placeholder \{NOT_STORED\}"):
        await call(cap, "https://api.example.com/echo", headers={"X-T": "{NOT_STORED}"})


async def test_allowed_placeholders_filled_in_header_and_path(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    result = await call(
        make_cap(egress),
        "https://api.example.com/echo/{API_KEY}?x=1",
        headers={"X-Api-Key": "{API_KEY}", "X-Other": "lit {not_a_placeholder}"},
        audit=audit,
    )
    seen = upstream.seen[-1]
    assert seen["headers"]["X-Api-Key"] == API_KEY
    assert seen["headers"]["X-Other"] == "lit {not_a_placeholder}"
    assert seen["path"] == f"/echo/{API_KEY}"  # '/' and '?' were percent-encoded in the path
    assert seen["query"] == "x=1"
    assert_no_secret(API_KEY, result.body, result.headers_json, audit[0].url)
    assert "[REDACTED]" in audit[0].url


async def test_query_placeholder_needs_a_query_param_credential_for_the_host(
    egress: Egress, upstream: Upstream
) -> None:
    # Allowed by secrets.allowed_names, but nothing in the capabilities file puts api_key in a query string.
    with pytest.raises(HttpRefused, match=r"\{API_KEY\} may not be sent in the query string to host api\.example\.com"):
        await call(make_cap(egress), "https://api.example.com/echo?key={API_KEY}")
    # A url_path credential fills the path only; in the query its placeholder is refused the same way.
    with pytest.raises(HttpRefused, match=r"\{TELEGRAM_BOT_TOKEN\} may not be sent in the query string"):
        await call(make_cap(egress, allowed=lambda n: n.startswith("telegram_")),
                   "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getMe?t={TELEGRAM_BOT_TOKEN}")
    # A query_param credential for another host does not count either.
    elsewhere = (CredentialRule("api_key", "query_param", ("query.example.com",), name="key"),)
    with pytest.raises(HttpRefused, match=r"\{API_KEY\} may not be sent"):
        await call(make_cap(egress, credentials=elsewhere), "https://api.example.com/echo?key={API_KEY}")
    assert upstream.seen == []
    # With a query_param credential for this host, the query may carry it.
    here = (CredentialRule("api_key", "query_param", ("api.example.com",), name="key"),)
    result = await call(make_cap(egress, credentials=here), "https://api.example.com/echo?k2={API_KEY}")
    assert upstream.seen[-1]["query"] == f"k2={quote(API_KEY, safe='')}&key={quote(API_KEY, safe='')}"
    assert_no_secret(API_KEY, result.body, result.headers_json)


async def test_secret_with_crlf_cannot_enter_a_header(egress: Egress, upstream: Upstream) -> None:
    with pytest.raises(HttpRefused, match="CR, LF or NUL") as err:
        await call(make_cap(egress), "https://api.example.com/echo", headers={"X-A": "{BAD_HEADER_SECRET}"})
    assert "line1" not in str(err.value)
    assert upstream.seen == []


async def test_telegram_url_path_token_reaches_server_but_never_the_guest(
    egress: Egress, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    audit: list[HttpAudit] = []
    # secret_allowed says no to everything: the url_path credential rule alone satisfies the placeholder.
    cap = make_cap(egress, allowed=lambda name: False)
    result = await call(cap, "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getMe", audit=audit)
    assert upstream.seen[-1]["path"] == f"/bot{TG_TOKEN}/getMe"
    assert result.status == 200
    assert echoed(result)["path"] == "/bot[REDACTED]/getMe"
    assert json.loads(result.headers_json)["x-echo-path"] == "/bot[REDACTED]/getMe"
    assert audit[0].url == "https://api.telegram.org/bot[REDACTED]/getMe"
    assert_no_secret(TG_TOKEN, result.body, result.headers_json, repr(audit))
    assert_no_secret("SECRET", result.body)


async def test_token_redacted_from_errors_audit_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    eg = Egress(upstream_overrides={"api.telegram.org": f"http://127.0.0.1:{dead_port}"})
    try:
        cap = make_cap(eg)
        audit: list[HttpAudit] = []
        caplog.set_level(logging.DEBUG, logger="airlock.http")
        with pytest.raises(HttpRefused, match=r"connection to api\.telegram\.org failed") as err:
            await call(cap, "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getMe", audit=audit)
        assert audit[0].allowed is True and audit[0].status is None
        assert audit[0].error == str(err.value)
        assert_no_secret(TG_TOKEN, str(err.value), repr(audit), caplog.text)
        assert "127.0.0.1" not in str(err.value)
    finally:
        eg.close()


async def test_credential_locations(egress: Egress, upstream: Upstream) -> None:
    creds = (
        CredentialRule("slack_bot_token", "bearer", ("bearer.example.com",)),
        CredentialRule("basic_pw", "basic", ("basic.example.com",), username="bot"),
        CredentialRule(
            "slack_bot_token", "header", ("discord.example.com",), name="Authorization", prefix="Bot "
        ),
        CredentialRule("query_key", "query_param", ("query.example.com",), name="access_token"),
    )
    allow = tuple(AllowRule(h, "/echo") for h in HOSTS)
    cap = make_cap(egress, allow=allow, credentials=creds)

    async def seen_for(host: str, **kw: Any) -> tuple[dict[str, Any], HttpResult]:
        result = await call(cap, f"https://{host}/echo/c?z=1&access_token=guest", **kw)
        return upstream.seen[-1], result

    seen, result = await seen_for("bearer.example.com", headers={"authorization": "Bearer guest-chosen"})
    assert seen["headers"]["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert_no_secret(SLACK_TOKEN, result.body, result.headers_json)

    seen, result = await seen_for("basic.example.com")
    b64 = base64.b64encode(b"bot:basic-SECRET").decode()
    assert seen["headers"]["Authorization"] == f"Basic {b64}"
    assert b64 not in result.body.decode()
    assert_no_secret("basic-SECRET", result.body)

    seen, result = await seen_for("discord.example.com", headers={"Authorization": "Bot forged"})
    assert seen["headers"]["Authorization"] == f"Bot {SLACK_TOKEN}"

    seen, result = await seen_for("query.example.com")
    assert seen["query"] == f"z=1&access_token={quote('query SECRET/+', safe='')}"
    assert_no_secret("query SECRET/+", result.body, result.headers_json)

    # No credential rule matches api.example.org: nothing is injected.
    seen, _ = await seen_for("api.example.org")
    assert "Authorization" not in seen["headers"]


def test_most_specific_credential_wins() -> None:
    creds = (
        CredentialRule("wild_key", "header", ("*.example.org",), name="X-Key"),
        CredentialRule("exact_key", "header", ("api.example.org",), name="X-Key"),
        CredentialRule(
            "path_key", "header", ("*.example.org",), path_patterns=("/echo/special",), name="X-Key"
        ),
        CredentialRule("slack_bot_token", "bearer", ("*.org",)),
    )
    policy = HttpPolicy(credentials=creds)

    def chosen(url: str) -> list[str]:
        return sorted(r.secret_name for r in select_credentials(policy, parse_https_url(url)))

    assert chosen("https://api.example.org/echo/x") == ["exact_key", "slack_bot_token"]
    assert chosen("https://x.example.org/echo/x") == ["slack_bot_token", "wild_key"]
    assert chosen("https://x.example.org/echo/special/1") == ["path_key", "slack_bot_token"]
    assert chosen("https://example.org/echo/x") == ["slack_bot_token"]
    assert chosen("https://example.com/echo/x") == []


async def test_most_specific_credential_is_injected(egress: Egress, upstream: Upstream) -> None:
    creds = (
        CredentialRule("wild_key", "header", ("*.example.org",), name="X-Key"),
        CredentialRule("exact_key", "header", ("api.example.org",), name="X-Key"),
    )
    allow = (AllowRule("*.example.org", "/echo"),)
    cap = make_cap(egress, allow=allow, credentials=creds)
    await call(cap, "https://api.example.org/echo", headers={"x-key": "guest"})
    assert upstream.seen[-1]["headers"]["X-Key"] == "exact-SECRET"
    await call(cap, "https://x.example.org/echo")
    assert upstream.seen[-1]["headers"]["X-Key"] == "wild-SECRET"


async def test_unstored_credential_skipped_keeping_the_guest_header(
        egress: Egress, upstream: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    """IronClaw skips a credential whose secret is not stored (its Feishu file declares a bearer token the guest
    fetches itself): the request goes out, with the guest's own header if it brought one; only a non-optional
    credential is worth a warning, logged once."""
    allow = (AllowRule("optional.example.com", "/echo"),)
    optional = (CredentialRule("absent_secret", "bearer", ("optional.example.com",), optional=True),)
    result = await call(
        make_cap(egress, allow=allow, credentials=optional), "https://optional.example.com/echo"
    )
    assert result.status == 200
    assert "Authorization" not in upstream.seen[-1]["headers"]
    assert "absent_secret" not in caplog.text

    declared = (CredentialRule("absent_secret", "bearer", ("optional.example.com",), id="feishu_bearer"),
                CredentialRule("absent_key", "header", ("optional.example.com",), name="X-Key"),
                CredentialRule("absent_q", "query_param", ("optional.example.com",), name="key"))
    cap = make_cap(egress, allow=allow, credentials=declared)
    for _ in range(2):
        result = await call(cap, "https://optional.example.com/echo?key=guest-q",
                            headers={"Authorization": "Bearer t-guest-own", "X-Key": "guest-key"})
        assert result.status == 200
        seen = upstream.seen[-1]
        assert seen["headers"]["Authorization"] == "Bearer t-guest-own"
        assert seen["headers"]["X-Key"] == "guest-key" and seen["query"] == "key=guest-q"
    assert caplog.text.count("secret absent_secret is not stored") == 1
    assert "credential feishu_bearer" in caplog.text

    stored = (CredentialRule("api_key", "bearer", ("optional.example.com",)),)
    await call(make_cap(egress, allow=allow, credentials=stored), "https://optional.example.com/echo",
               headers={"Authorization": "Bearer guest"})
    assert upstream.seen[-1]["headers"]["Authorization"] == f"Bearer {API_KEY}"  # a stored one still wins

    required_path = (
        CredentialRule(
            "absent_secret", "url_path", ("api.telegram.org",), placeholder="{TELEGRAM_BOT_TOKEN}"
        ),
    )
    with pytest.raises(HttpRefused, match="credential required"):
        await call(
            make_cap(egress, credentials=required_path), "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/x"
        )


def test_policy_dataclasses_validate() -> None:
    with pytest.raises(ConfigError, match="header name"):
        CredentialRule("s", "header", ("a.com",))
    with pytest.raises(ConfigError, match="placeholder"):
        CredentialRule("s", "url_path", ("a.com",))
    with pytest.raises(ConfigError, match="unknown location"):
        CredentialRule("s", "cookie", ("a.com",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="set by the host"):
        CredentialRule("s", "header", ("a.com",), name="Host")


# --- size limits ---------------------------------------------------------------------------------------


async def test_request_body_limit(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress, max_request_bytes=100)
    result = await call(cap, "https://api.example.com/echo", method="POST", body=b"a" * 100)
    assert result.status == 200
    with pytest.raises(HttpRefused, match="request body is 101 bytes; max_request_bytes is 100"):
        await call(cap, "https://api.example.com/echo", method="POST", body=b"a" * 101)


async def test_response_body_limit_streamed_and_declared(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress, max_response_bytes=50_000)
    ok = await call(cap, "https://api.example.com/big/50000")
    assert len(ok.body) == 50_000
    with pytest.raises(HttpRefused, match=r"response body exceeds max_response_bytes \(50000 bytes\)"):
        await call(cap, "https://api.example.com/big/2000000")
    with pytest.raises(HttpRefused, match=r"response body exceeds max_response_bytes \(50000 bytes\)"):
        await call(cap, "https://api.example.com/bigdeclared/60000")


# --- timeouts ------------------------------------------------------------------------------------------


async def test_timeout_honors_callback_deadline(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress)
    audit: list[HttpAudit] = []
    start = time.monotonic()
    with pytest.raises(HttpRefused, match=r"^timed out after (2\d\d|300) ms$"):
        await call(cap, "https://api.example.com/slow", timeout_ms=10_000, deadline=start + 0.3, audit=audit)
    assert time.monotonic() - start < 2.0
    assert audit[0].allowed is True and audit[0].error is not None and "timed out" in audit[0].error


async def test_timeout_ms_and_policy_timeout(egress: Egress, upstream: Upstream) -> None:
    start = time.monotonic()
    with pytest.raises(HttpRefused, match=r"^timed out after 200 ms$"):
        await call(make_cap(egress), "https://api.example.com/slow", timeout_ms=200)
    with pytest.raises(HttpRefused, match=r"^timed out after 250 ms$"):
        await call(make_cap(egress, timeout_secs=0.25), "https://api.example.com/slow")
    assert time.monotonic() - start < 3.0
    with pytest.raises(HttpRefused, match=r"^timed out after 0 ms$"):
        await call(make_cap(egress), "https://api.example.com/echo", deadline=time.monotonic() - 1)


# --- rate limit ----------------------------------------------------------------------------------------


async def test_rate_limit_sliding_windows(egress: Egress, upstream: Upstream) -> None:
    now = [1000.0]
    cap = make_cap(egress, clock=lambda: now[0], requests_per_minute=2, requests_per_hour=3)
    url = "https://api.example.com/echo"
    with pytest.raises(HttpRefused, match="allow-list"):  # refused attempts are not counted
        await call(cap, "https://evil.example.com/")
    await call(cap, url)
    await call(cap, url)
    with pytest.raises(HttpRefused, match=r"rate limit exceeded \(2 requests per minute\)"):
        await call(cap, url)
    now[0] += 61
    await call(cap, url)
    now[0] += 61
    with pytest.raises(HttpRefused, match=r"rate limit exceeded \(3 requests per hour\)"):
        await call(cap, url)
    now[0] += 3600
    await call(cap, url)
    assert len(upstream.seen) == 4


# --- redirects -----------------------------------------------------------------------------------------


async def test_same_host_redirect_followed(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    result = await call(make_cap(egress), "https://api.example.com/redirect/same", audit=audit)
    assert result.status == 200
    assert echoed(result)["path"] == "/echo/after"
    assert [(a.url, a.status) for a in audit] == [
        ("https://api.example.com/redirect/same", 302),
        ("https://api.example.com/echo/after", 200),
    ]


async def test_see_other_turns_post_into_get(egress: Egress, upstream: Upstream) -> None:
    result = await call(
        make_cap(egress), "https://api.example.com/redirect/see-other", method="POST", body=b"x"
    )
    assert echoed(result)["method"] == "GET"
    assert echoed(result)["body"] == ""


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/redirect/cross", "https://elsewhere.example.net/x"),
        ("/redirect/outside", "/private/x"),
        ("/redirect/plain-http", "http://api.example.com/echo/x"),
    ],
)
async def test_redirect_not_followed_is_returned(
    egress: Egress, upstream: Upstream, path: str, location: str
) -> None:
    result = await call(make_cap(egress), f"https://api.example.com{path}")
    assert result.status == 302
    assert json.loads(result.headers_json)["location"] == location
    assert [s["path"] for s in upstream.seen] == [path]


async def test_redirect_loop_refused(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    with pytest.raises(HttpRefused, match=r"too many redirects \(more than 5\)"):
        await call(make_cap(egress), "https://api.example.com/redirect/loop", audit=audit)
    assert len(upstream.seen) == 6
    assert len(audit) == 6


# --- SSRF and upstream overrides -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "not-an-ip",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not is_forbidden_address(address)


async def test_name_resolving_to_loopback_refused() -> None:
    eg = Egress(resolve=lambda host, port: ["127.0.0.1"])
    try:
        cap = make_cap(eg, allow=(AllowRule("internal.example.com", "/"),))
        audit: list[HttpAudit] = []
        with pytest.raises(HttpRefused, match="resolves to a non-public address"):
            await call(cap, "https://internal.example.com/x", audit=audit)
        assert audit[0].allowed is True and audit[0].status is None
    finally:
        eg.close()


async def test_any_private_address_refuses_the_name() -> None:
    eg = Egress(resolve=lambda host, port: ["93.184.216.34", "::ffff:10.0.0.5"])
    try:
        cap = make_cap(eg, allow=(AllowRule("mixed.example.com", "/"),))
        with pytest.raises(HttpRefused, match="resolves to a non-public address"):
            await call(cap, "https://mixed.example.com/x")
    finally:
        eg.close()


async def test_real_localhost_refused_and_ip_literals_checked() -> None:
    eg = Egress()
    try:
        cap = make_cap(
            eg, allow=(AllowRule("localhost", "/"), AllowRule("127.0.0.1", "/"), AllowRule("::1", "/"))
        )
        for url in ("https://localhost/x", "https://127.0.0.1/x", "https://[::1]/x"):
            with pytest.raises(HttpRefused, match="non-public address"):
                await call(cap, url)
    finally:
        eg.close()


async def test_allow_private_hosts_skips_the_address_check() -> None:
    resolved: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        resolved.append((host, port))
        return ["127.0.0.1"]

    eg = Egress(resolve=resolve, allow_private_hosts=["Internal.Example.com"])
    try:
        cap = make_cap(eg, allow=(AllowRule("internal.example.com", "/"),), timeout_secs=2)
        # Passes the SSRF check, then fails to connect to 127.0.0.1:443 (nothing listens there, or TLS fails).
        with pytest.raises(
            HttpRefused, match=r"connection to internal\.example\.com failed|timed out"
        ) as err:
            await call(cap, "https://internal.example.com/x")
        assert "non-public" not in str(err.value)
        assert resolved == [("internal.example.com", 443)]  # one lookup; aiohttp never asked DNS again
    finally:
        eg.close()


async def test_connection_goes_to_the_address_the_host_resolved(upstream: Upstream) -> None:
    # "upstream.invalid" does not exist in DNS: the request only works if aiohttp connects to the address
    # Egress resolved itself (pinned resolver), not to a second lookup of its own.
    port = int(upstream.base.rsplit(":", 1)[1])
    lookups: list[str] = []

    def resolve(host: str, p: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    eg = Egress(upstream_overrides={"api.example.com": f"http://upstream.invalid:{port}"}, resolve=resolve)
    try:
        result = await call(make_cap(eg), "https://api.example.com/echo/pinned")
        assert echoed(result)["path"] == "/echo/pinned"
        assert lookups == ["upstream.invalid"]
    finally:
        eg.close()


async def test_unresolvable_host_refused() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    eg = Egress(resolve=resolve)
    try:
        cap = make_cap(eg, allow=(AllowRule("nowhere.example.com", "/"),))
        with pytest.raises(HttpRefused, match=r"could not resolve host nowhere\.example\.com"):
            await call(cap, "https://nowhere.example.com/x")
    finally:
        eg.close()


async def test_override_with_path_prefix_and_logging(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airlock.http")
    eg = Egress(upstream_overrides={"api.example.com": upstream.base + "/prefix/"})
    try:
        overrides_logged = [r for r in caplog.records if "upstream override" in r.getMessage()]
        assert len(overrides_logged) == 1
        assert "api.example.com" in overrides_logged[0].getMessage()
        result = await call(make_cap(eg), "https://api.example.com/echo/p?q=1")
        assert echoed(result)["path"] == "/prefix/echo/p"
        assert echoed(result)["query"] == "q=1"
        # The override never widens the allow-list.
        with pytest.raises(HttpRefused, match="not allowed"):
            await call(make_cap(eg), "https://api.example.com/private")
    finally:
        eg.close()
    assert len([r for r in caplog.records if "upstream override" in r.getMessage()]) == 1


@pytest.mark.parametrize("base", ["ftp://x", "http://", "http://u:p@h", "http://h/?q=1", "http://h:99999"])
def test_bad_override_is_config_error(base: str) -> None:
    with pytest.raises(ConfigError, match=r"upstream override for api\.example\.com"):
        Egress(upstream_overrides={"api.example.com": base})


async def test_closed_egress_refuses(upstream: Upstream) -> None:
    eg = Egress(upstream_overrides={"api.example.com": upstream.base})
    eg.close()
    eg.close()
    with pytest.raises(HttpRefused, match="shut down"):
        await call(make_cap(eg), "https://api.example.com/echo")


async def test_close_fails_in_flight_requests(upstream: Upstream) -> None:
    eg = Egress(upstream_overrides={"api.example.com": upstream.base})
    pending = asyncio.ensure_future(call(make_cap(eg), "https://api.example.com/slow"))
    await asyncio.sleep(0.2)
    start = time.monotonic()
    await asyncio.to_thread(eg.close)
    with pytest.raises(HttpRefused, match="shutting down"):
        await pending
    assert time.monotonic() - start < 2.0


async def test_concurrent_requests_share_one_egress(egress: Egress, upstream: Upstream) -> None:
    cap = make_cap(egress)
    results = await asyncio.gather(*(call(cap, f"https://api.example.com/echo/{i}") for i in range(10)))
    assert sorted(echoed(r)["path"] for r in results) == sorted(f"/echo/{i}" for i in range(10))
