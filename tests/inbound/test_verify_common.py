"""Shared verifier pieces (replay cache bound, request view, timestamps), the header scheme, and choosing a
verifier from real capabilities files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from webhook_signing import NOW, Secrets, request

from airlock.errors import CapabilitiesError
from airlock.inbound.verifiers import (
    MAX_REPLAY_ENTRIES,
    Accept,
    DiscordVerifier,
    FeishuVerifier,
    HeaderVerifier,
    MetaVerifier,
    Reject,
    ReplayCache,
    SlackVerifier,
    Unverified,
    WebhookRequest,
    build_verifier,
    verifier_for,
)
from airlock.inbound.verifiers.base import Rejected, fresh_timestamp
from airlock.manifest import WebhookSpec, load_capabilities, parse_capabilities

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "ironclaw-capabilities"

# ---- replay cache ---------------------------------------------------------------------------------


def test_replay_cache_default_bound() -> None:
    assert MAX_REPLAY_ENTRIES == 10_000 and ReplayCache().max_entries == MAX_REPLAY_ENTRIES
    with pytest.raises(ValueError):
        ReplayCache(0)


def test_replay_cache_bound_evicts_oldest() -> None:
    cache = ReplayCache(3)
    for i in range(5):
        assert cache.seen(f"s{i}", NOW + 300, NOW) is False
    assert len(cache) == 3 and cache.evictions == 2
    # s0 and s1 were evicted (oldest first): seen again they count as new; s2..s4 are still remembered.
    assert [cache.seen(f"s{i}", NOW + 300, NOW) for i in (4, 3)] == [True, True]
    assert cache.seen("s0", NOW + 300, NOW) is False
    assert len(cache) == 3


def test_replay_cache_forgets_expired_entries_first() -> None:
    cache = ReplayCache(3)
    cache.seen("old", NOW + 10, NOW)
    cache.seen("mid", NOW + 100, NOW)
    cache.seen("new", NOW + 300, NOW)
    assert cache.seen("later", NOW + 400, NOW + 50) is False  # "old" expired: dropped, nothing evicted
    assert cache.evictions == 0 and len(cache) == 3
    assert cache.seen("mid", NOW + 100, NOW + 60) is True
    assert cache.seen("mid", NOW + 500, NOW + 101) is False  # its time passed: a new entry


def test_slack_replay_bound_comes_from_the_factory() -> None:
    spec = WebhookSpec(hmac_secret_name="s")
    v = build_verifier(spec, Secrets().lookup, channel="c", replay_max=7)
    assert isinstance(v, SlackVerifier) and v.replay.max_entries == 7
    d = build_verifier(WebhookSpec(signature_key_secret_name="k"), Secrets().lookup, channel="c", replay_max=5)
    assert isinstance(d, DiscordVerifier) and d.replay.max_entries == 5


# ---- request view and timestamps -------------------------------------------------------------------


def test_request_headers_case_insensitive_and_repeats_refused() -> None:
    req = request(headers=[("X-Thing", "a"), ("x-other", "b"), ("X-OTHER", "c")])
    assert req.header("x-thing") == "a" and req.header("X-THING") == "a" and req.header("nope") is None
    with pytest.raises(Rejected) as err:
        req.header("X-Other")
    assert err.value.status == 401


def test_query_repeats_refused() -> None:
    req = request(query={"a": "1"})
    assert req.query_value("a") == "1" and req.query_value("A") is None
    dup = WebhookRequest.build("GET", "/", {}, [("a", "1"), ("a", "2")], b"", NOW)
    with pytest.raises(Rejected):
        dup.query_value("a")


@pytest.mark.parametrize(("text", "status"), [("abc", 401), ("", 401), ("1e9", 401), (f"{int(NOW)}\n", 401),
                                              (f" {int(NOW)}", 401), (str(int(NOW) - 301), 403),
                                              (str(int(NOW) + 301), 403)])
def test_fresh_timestamp_rejections(text: str, status: int) -> None:
    with pytest.raises(Rejected) as err:
        fresh_timestamp(text, NOW, "T")
    assert err.value.status == status


def test_fresh_timestamp_window_is_configurable() -> None:
    assert fresh_timestamp(str(int(NOW) - 20), NOW, "T", window_s=30) == int(NOW) - 20
    with pytest.raises(Rejected):
        fresh_timestamp(str(int(NOW) - 31), NOW, "T", window_s=30)


# ---- header scheme ---------------------------------------------------------------------------------


def header_verifier(store: Secrets) -> HeaderVerifier:
    return HeaderVerifier("telegram", store.lookup, header="X-Telegram-Bot-Api-Secret-Token",
                          secret_name="telegram_webhook_secret")


def test_header_scheme() -> None:
    store = Secrets(telegram_webhook_secret="s3cret")
    v = header_verifier(store)
    assert v.verify(request(b"{}", {"x-telegram-bot-api-secret-token": "s3cret"})) == Accept(validated=True)
    missing = v.verify(request(b"{}", {}))
    wrong = v.verify(request(b"{}", {"X-Telegram-Bot-Api-Secret-Token": "s3creT"}))
    assert isinstance(missing, Reject) and missing.status == 401
    assert isinstance(wrong, Reject) and wrong.status == 403 and "s3cre" not in wrong.reason
    not_stored = header_verifier(Secrets()).verify(request(b"{}", {"X-Telegram-Bot-Api-Secret-Token": ""}))
    assert isinstance(not_stored, Reject) and not_stored.status == 403


# ---- choosing the verifier -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind", "validated_posts"), [
    ("telegram", HeaderVerifier, True),
    ("slack", SlackVerifier, True),
    ("discord", DiscordVerifier, True),
    ("whatsapp", MetaVerifier, False),  # no app_secret_name in IronClaw's file
    ("feishu", Unverified, False),  # managed_by_host: false
    ("wechat", Unverified, False),  # no webhook block
])
def test_real_capabilities_files_choose_their_verifier(name: str, kind: type, validated_posts: bool) -> None:
    caps = load_capabilities(TESTDATA / f"{name}.capabilities.json")
    v = build_verifier(caps.capabilities.channel.webhook, Secrets().lookup, channel=name)
    assert type(v) is kind
    if isinstance(v, MetaVerifier):
        assert v.verifies_posts is validated_posts and v.token_param == "hub.verify_token"
    if isinstance(v, Unverified):
        assert v.verify(request(b"{}")) == Accept(validated=False)
        assert v.declared is (name == "feishu")


def caps_with(webhook: dict[str, Any]) -> bytes:
    return json.dumps({"name": "x", "version": "0.1.0", "wit_version": "0.1.0",
                       "capabilities": {"channel": {"webhook": webhook}}}).encode()


@pytest.mark.parametrize(("webhook", "scheme"), [
    ({"hmac_secret_name": "a"}, "slack"),
    ({"signature_key_secret_name": "a"}, "discord"),
    ({"verify_token_param": "hub.verify_token", "secret_name": "a"}, "meta"),
    ({"app_secret_name": "a"}, "meta"),
    ({"verification_token_secret_name": "a"}, "feishu"),
    ({"encrypt_key_secret_name": "k", "secret_name": "t"}, "feishu"),
    ({"secret_header": "X-A", "secret_name": "a"}, "header"),
    ({"secret_name": "a"}, None),
    ({}, None),
    ({"scheme": "feishu", "secret_name": "t"}, "feishu"),
    ({"scheme": "meta", "secret_header": "X-Hub-Signature-256", "secret_name": "t"}, "meta"),
])
def test_scheme_declared_or_inferred(webhook: dict[str, Any], scheme: str | None) -> None:
    spec = parse_capabilities(caps_with(webhook), "x.json").capabilities.channel.webhook
    assert spec is not None and spec.effective_scheme == scheme


def test_feishu_factory_uses_token_and_encrypt_key_names() -> None:
    spec = WebhookSpec(scheme="feishu", verification_token_secret_name="t", secret_name="other",
                       encrypt_key_secret_name="k")
    v = build_verifier(spec, Secrets().lookup, channel="feishu")
    assert isinstance(v, FeishuVerifier) and (v.token_name, v.encrypt_key_name) == ("t", "k")
    fallback = build_verifier(WebhookSpec(scheme="feishu", secret_name="tok"), Secrets().lookup, channel="f")
    assert isinstance(fallback, FeishuVerifier) and (fallback.token_name, fallback.encrypt_key_name) == ("tok", None)


@pytest.mark.parametrize(("webhook", "path", "problem"), [
    ({"scheme": "hmac"}, "$.capabilities.channel.webhook.scheme", "unknown webhook scheme 'hmac'"),
    ({"scheme": 3}, "$.capabilities.channel.webhook.scheme", "string"),
    ({"scheme": "slack"}, "$.capabilities.channel.webhook", "needs key hmac_secret_name"),
    ({"scheme": "discord"}, "$.capabilities.channel.webhook", "needs key signature_key_secret_name"),
    ({"scheme": "meta"}, "$.capabilities.channel.webhook", "secret_name or app_secret_name"),
    ({"scheme": "feishu", "encrypt_key_secret_name": "k"}, "$.capabilities.channel.webhook",
     "verification_token_secret_name or secret_name"),
    ({"scheme": "header", "secret_name": "a"}, "$.capabilities.channel.webhook", "secret_header"),
    ({"app_secret_name": 5}, "$.capabilities.channel.webhook.app_secret_name", "string"),
])
def test_bad_webhook_blocks_name_file_and_path(webhook: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(CapabilitiesError) as err:
        parse_capabilities(caps_with(webhook), "chan.capabilities.json")
    message = str(err.value)
    assert message.startswith(f"chan.capabilities.json: {path}: ") and problem in message


def test_unmanaged_scheme_logged_and_unverified(caplog: pytest.LogCaptureFixture) -> None:
    spec = WebhookSpec(hmac_secret_name="s", managed_by_host=False)
    with caplog.at_level(logging.INFO, logger="airlock.inbound"):
        v = build_verifier(spec, Secrets(s="x").lookup, channel="c")
    assert isinstance(v, Unverified) and v.declared
    assert any("managed_by_host false" in r.getMessage() for r in caplog.records)


def test_verifier_for_takes_optional_secrets_from_setup() -> None:
    doc = json.loads(caps_with({"scheme": "feishu", "verification_token_secret_name": "t",
                                "encrypt_key_secret_name": "k"}))
    required = parse_capabilities(json.dumps(doc), "f.json")
    doc["setup"] = {"required_secrets": [{"name": "t"}, {"name": "k", "optional": True}]}
    optional = parse_capabilities(json.dumps(doc), "f.json")
    strict, lenient = verifier_for(required, Secrets().lookup), verifier_for(optional, Secrets().lookup)
    assert isinstance(strict, FeishuVerifier) and strict.encrypt_key_optional is False
    assert isinstance(lenient, FeishuVerifier) and lenient.encrypt_key_optional is True
    # A declared, required encrypt key that is not stored refuses even a request with the right token.
    body = json.dumps({"type": "url_verification", "token": "tok", "challenge": "c"}).encode()
    store = Secrets(t="tok")
    assert isinstance(verifier_for(required, store.lookup).verify(request(body)), Reject)
    assert verifier_for(optional, store.lookup).verify(request(body)) == Accept(validated=True)
