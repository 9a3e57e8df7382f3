"""Secret placeholders in request BODIES (``X-Airlock-Body-Secrets`` opt-in; PLAN "Secrets in HTTP bodies").

Needed by Feishu's tenant_access_token call (``{"app_id": "{FEISHU_APP_ID}", "app_secret":
"{FEISHU_APP_SECRET}"}``). Same rules as URL and header placeholders (allowed names only, only to hosts a
credential binding the secret permits), plus: only names the guest listed are filled, escaped for the
body's content type, and every value is redacted from what the guest and the audit trail see.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qs

import pytest
from test_http import (  # the real 127.0.0.1 upstream and its helpers
    DEFAULT_ALLOW,
    SECRETS,
    Upstream,
    assert_no_secret,
    call,
    echoed,
    egress,
    make_cap,
    upstream,
)

from airlock.capabilities.egress import Egress
from airlock.capabilities.http import AllowRule, CredentialRule, HttpAudit, HttpRefused
from airlock.capabilities.http_policy import MAX_BODY_PLACEHOLDERS

__all__ = ["egress", "upstream"]  # fixtures re-exported for pytest

APP_ID = "cli_a1b2c3"
APP_SECRET = 'sec"ret\\with/odd&chars é'  # quote and backslash must not break out of a JSON string
BODY_SECRETS = {**SECRETS, "feishu_app_id": APP_ID, "feishu_app_secret": APP_SECRET}
FEISHU_ALLOWED = {"feishu_app_id", "feishu_app_secret", "slack_bot_token"}
TOKEN_BODY = b'{"app_id":"{FEISHU_APP_ID}","app_secret":"{FEISHU_APP_SECRET}"}'
OPT_IN = {"Content-Type": "application/json; charset=utf-8",
          "X-Airlock-Body-Secrets": "FEISHU_APP_ID, FEISHU_APP_SECRET"}
ALLOW = (*DEFAULT_ALLOW, AllowRule("bearer.example.com", "/echo"))
SLACK_BEARER = CredentialRule("slack_bot_token", "bearer", ("bearer.example.com",), id="slack")


def cap_for(egress: Egress, **kw: Any) -> Any:
    return make_cap(egress, allow=ALLOW, secrets=BODY_SECRETS, allowed=lambda n: n in FEISHU_ALLOWED, **kw)


async def test_listed_placeholders_filled_as_json_and_redacted(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    result = await call(cap_for(egress), "https://api.example.com/echo/token", method="POST",
                        headers=OPT_IN, body=TOKEN_BODY, audit=audit)
    seen = upstream.seen[-1]
    assert json.loads(seen["body"]) == {"app_id": APP_ID, "app_secret": APP_SECRET}
    # The opt-in header is the host's business: it never reaches the platform.
    assert not any(h.lower() == "x-airlock-body-secrets" for h in seen["headers"])
    # The echo server returns the body it got: the guest sees only [REDACTED].
    assert json.loads(echoed(result)["body"]) == {"app_id": "[REDACTED]", "app_secret": "[REDACTED]"}
    assert_no_secret(APP_SECRET, result.body, result.headers_json, repr(audit))
    assert_no_secret(APP_ID, result.body, repr(audit))


async def test_form_body_is_form_encoded(egress: Egress, upstream: Upstream) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Airlock-Body-Secrets": "FEISHU_APP_SECRET"}
    await call(cap_for(egress), "https://api.example.com/echo/form", method="POST", headers=headers,
               body=b"grant=client&secret={FEISHU_APP_SECRET}&x=1")
    form = parse_qs(upstream.seen[-1]["body"])
    assert form == {"grant": ["client"], "secret": [APP_SECRET], "x": ["1"]}


async def test_unlisted_placeholder_in_body_is_left_alone(egress: Egress, upstream: Upstream) -> None:
    # A reply quoting user text such as "{FEISHU_APP_SECRET}" must never be filled in.
    body = b'{"text":"say {FEISHU_APP_SECRET} and {FEISHU_APP_ID}"}'
    partly = {"Content-Type": "application/json", "X-Airlock-Body-Secrets": "FEISHU_APP_ID"}
    await call(cap_for(egress), "https://api.example.com/echo/a", method="POST",
               headers={"Content-Type": "application/json"}, body=body)
    assert upstream.seen[-1]["body"] == body.decode()
    await call(cap_for(egress), "https://api.example.com/echo/b", method="POST", headers=partly, body=body)
    assert upstream.seen[-1]["body"] == f'{{"text":"say {{FEISHU_APP_SECRET}} and {APP_ID}"}}'


async def test_name_the_channel_may_not_use_is_refused_safely(egress: Egress, upstream: Upstream) -> None:
    audit: list[HttpAudit] = []
    headers = {"Content-Type": "application/json", "X-Airlock-Body-Secrets": "FEISHU_APP_ID OTHER_TOKEN"}
    with pytest.raises(HttpRefused, match=r"may not use secret placeholder \{OTHER_TOKEN\}") as err:
        await call(cap_for(egress), "https://api.example.com/echo/x", method="POST", headers=headers,
                   body=b'{"a":"{FEISHU_APP_ID}","b":"{OTHER_TOKEN}"}', audit=audit)
    assert upstream.seen == []
    assert audit[0].allowed is False and audit[0].error == str(err.value)
    assert_no_secret("other-SECRET", str(err.value), repr(audit))
    assert_no_secret(APP_ID, str(err.value), repr(audit))


async def test_allowed_but_unstored_name_is_refused(egress: Egress, upstream: Upstream) -> None:
    headers = {"Content-Type": "application/json", "X-Airlock-Body-Secrets": "FEISHU_NOT_STORED"}
    cap = make_cap(egress, secrets=BODY_SECRETS, allowed=lambda n: True)
    with pytest.raises(HttpRefused, match=r"may not use secret placeholder \{FEISHU_NOT_STORED\}"):
        await call(cap, "https://api.example.com/echo/x", method="POST", headers=headers, body=b"{FEISHU_NOT_STORED}")
    assert upstream.seen == []


async def test_secret_bound_by_a_credential_only_goes_to_its_hosts(egress: Egress, upstream: Upstream) -> None:
    cap = cap_for(egress, credentials=(SLACK_BEARER,))
    headers = {"Content-Type": "text/plain", "X-Airlock-Body-Secrets": "SLACK_BOT_TOKEN"}
    # api.example.com is on the allow-list, but the credential binds slack_bot_token to bearer.example.com.
    with pytest.raises(HttpRefused, match=r"\{SLACK_BOT_TOKEN\} may not be sent to host api\.example\.com") as err:
        await call(cap, "https://api.example.com/echo/x", method="POST", headers=headers, body=b"t={SLACK_BOT_TOKEN}")
    assert_no_secret(SECRETS["slack_bot_token"], str(err.value))
    assert upstream.seen == []
    # The same rule holds for URL and header placeholders.
    with pytest.raises(HttpRefused, match="may not be sent to host"):
        await call(cap, "https://api.example.com/echo/x", headers={"X-T": "{SLACK_BOT_TOKEN}"})
    with pytest.raises(HttpRefused, match="may not be sent to host"):
        await call(cap, "https://api.example.com/echo/{SLACK_BOT_TOKEN}")
    assert upstream.seen == []
    # To the credential's own host it is filled in.
    result = await call(cap, "https://bearer.example.com/echo/x", method="POST", headers=headers,
                        body=b"t={SLACK_BOT_TOKEN}")
    assert upstream.seen[-1]["body"] == f"t={SECRETS['slack_bot_token']}"
    assert echoed(result)["body"] == "t=[REDACTED]"


async def test_opt_in_header_is_validated(egress: Egress, upstream: Upstream) -> None:
    cap = cap_for(egress)
    too_many = ",".join(f"FEISHU_N{i}" for i in range(MAX_BODY_PLACEHOLDERS + 1))
    with pytest.raises(HttpRefused, match=f"at most {MAX_BODY_PLACEHOLDERS}"):
        await call(cap, "https://api.example.com/echo/x", method="POST",
                   headers={"X-Airlock-Body-Secrets": too_many}, body=b"{}")
    with pytest.raises(HttpRefused, match="invalid placeholder name"):
        await call(cap, "https://api.example.com/echo/x", method="POST",
                   headers={"X-Airlock-Body-Secrets": "feishu_app_id"}, body=b"{}")
    assert upstream.seen == []


async def test_filled_body_must_fit_max_request_bytes(egress: Egress, upstream: Upstream) -> None:
    cap = cap_for(egress, max_request_bytes=len(TOKEN_BODY) + 5)
    with pytest.raises(HttpRefused, match="max_request_bytes") as err:
        await call(cap, "https://api.example.com/echo/x", method="POST", headers=OPT_IN, body=TOKEN_BODY)
    assert_no_secret(APP_SECRET, str(err.value))
    assert upstream.seen == []


async def test_secret_redacted_from_connection_errors(upstream: Upstream) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    eg = Egress(upstream_overrides={"api.example.com": f"http://127.0.0.1:{dead}"})
    try:
        audit: list[HttpAudit] = []
        with pytest.raises(HttpRefused, match=r"connection to api\.example\.com failed") as err:
            await call(cap_for(eg), "https://api.example.com/echo/x", method="POST", headers=OPT_IN,
                       body=TOKEN_BODY, audit=audit)
        assert_no_secret(APP_SECRET, str(err.value), repr(audit))
    finally:
        eg.close()
