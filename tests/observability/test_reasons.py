"""Reason labels for metrics, driven by the host's real refusal messages: http-request refusals from the real
``HttpCapability`` + ``Egress`` (no traffic leaves the process: every refusal happens before a connection, the
resolver is injected), and webhook refusals from the real verifiers."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.capabilities.egress import Egress
from airlock.capabilities.http import HttpCapability
from airlock.capabilities.http_policy import AllowRule, HttpPolicy, HttpRefused
from airlock.inbound.verifiers import DiscordVerifier, HeaderVerifier, MetaVerifier, Reject, SlackVerifier
from airlock.observability.reasons import EGRESS_REASONS, WEBHOOK_REASONS, egress_reason, webhook_reason

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inbound"))
from webhook_signing import NOW, Secrets, request, slack_headers

HOST = "api.example.com"


def _resolve_private(host: str, port: int) -> list[str]:
    return ["10.1.2.3"]


def _resolve_nothing(host: str, port: int) -> list[str]:
    raise OSError("no such host")


@pytest.fixture
def egress() -> Iterator[Egress]:
    e = Egress(resolve=_resolve_private)
    yield e
    e.close()


def refusal(egress: Egress, url: str, *, method: str = "GET", body: bytes | None = None, headers: str = "{}",
            **policy: object) -> str:
    rules = policy.pop("credentials", ())
    cap = HttpCapability("c", HttpPolicy(allowlist=(AllowRule(HOST, "/ok/", ("GET", "POST")),),
                                         credentials=rules, **policy),  # type: ignore[arg-type]
                         lambda _n: None, lambda name: name == "allowed_one", egress)
    with pytest.raises(HttpRefused) as info:
        cap.request(method, url, headers, body, None, deadline=time.monotonic() + 5, audit=[])
    return str(info.value)


def test_egress_refusals_map_to_their_reason(egress: Egress) -> None:
    ok = f"https://{HOST}/ok/x"
    cases = {
        "allowlist": [refusal(egress, "https://other.example.net/ok/x"),
                      refusal(egress, f"https://{HOST}/elsewhere"),
                      refusal(egress, ok, method="DELETE")],
        "invalid-request": [refusal(egress, f"http://{HOST}/ok/x"), refusal(egress, ok, headers="[1]"),
                            refusal(egress, ok, method="CONNECT")],
        "size": [refusal(egress, ok, method="POST", body=b"xx", max_request_bytes=1)],
        "credentials": [refusal(egress, f"https://{HOST}/ok/{{NOT_ALLOWED}}")],
        "private-address": [refusal(egress, ok)],
    }
    for reason, messages in cases.items():
        for message in messages:
            assert egress_reason(message) == reason, message


def test_egress_rate_limit_and_unresolvable_host(egress: Egress) -> None:
    ok = f"https://{HOST}/ok/x"
    cap = HttpCapability("c", HttpPolicy(allowlist=(AllowRule(HOST),), requests_per_minute=1),
                         lambda _n: None, lambda _n: False, egress)
    messages = []
    for _ in range(2):
        with pytest.raises(HttpRefused) as info:
            cap.request("GET", ok, "{}", None, None, deadline=time.monotonic() + 5, audit=[])
        messages.append(str(info.value))
    assert [egress_reason(m) for m in messages] == ["private-address", "rate-limit"]
    lost = Egress(resolve=_resolve_nothing)
    try:
        assert egress_reason(refusal(lost, ok)) == "network"
    finally:
        lost.close()


def _reject(verdict: object) -> str:
    assert isinstance(verdict, Reject), verdict
    return verdict.reason


def test_webhook_refusals_map_to_their_reason() -> None:
    secret = "s3cr3t-value-123"
    store = Secrets(hook=secret, slack=secret, pub="00" * 32, tok="verify-me")
    header = HeaderVerifier("c", store.lookup, header="X-Secret", secret_name="hook")
    unset = HeaderVerifier("c", Secrets().lookup, header="X-Secret", secret_name="hook")
    slack = SlackVerifier("c", store.lookup, secret_name="slack")
    discord = DiscordVerifier("c", store.lookup, key_name="pub")
    meta = MetaVerifier("c", store.lookup, verify_token_name="tok", token_param="hub.verify_token",
                        app_secret_name="slack")
    body = b'{"a": 1}'
    good = slack_headers(secret, body, int(NOW))
    assert slack.verify(request(body, good)).__class__.__name__ == "Accept"
    cases = {
        "missing": [_reject(header.verify(request(body))), _reject(slack.verify(request(body))),
                    _reject(meta.verify(request(body)))],
        "wrong": [_reject(header.verify(request(body, {"X-Secret": "nope"}))),
                  _reject(slack.verify(request(body, {**good, "X-Slack-Signature": "v0=" + "0" * 64}))),
                  _reject(meta.verify(request(method="GET", query={"hub.mode": "subscribe", "hub.verify_token": "x",
                                                                   "hub.challenge": "1"})))],
        "secret-missing": [_reject(unset.verify(request(body, {"X-Secret": "x"})))],
        "stale": [_reject(slack.verify(request(body, slack_headers(secret, body, int(NOW) - 3600))))],
        "replayed": [_reject(slack.verify(request(body, good)))],
        "malformed": [_reject(slack.verify(request(body, {**good, "X-Slack-Signature": "v1=zz"}))),
                      _reject(discord.verify(request(body, {"X-Signature-Ed25519": "ab",
                                                            "X-Signature-Timestamp": str(int(NOW))}))),
                      _reject(header.verify(request(body, [("X-Secret", "a"), ("X-Secret", "b")])))],
    }
    for reason, messages in cases.items():
        for message in messages:
            assert webhook_reason(message) == reason, message


def test_reason_sets_are_closed() -> None:
    assert egress_reason("something new") == "other" and webhook_reason("something new") == "other"
    assert EGRESS_REASONS[-1] == "other" and WEBHOOK_REASONS[-1] == "other"
    assert len(set(EGRESS_REASONS)) == len(EGRESS_REASONS) and len(set(WEBHOOK_REASONS)) == len(WEBHOOK_REASONS)
