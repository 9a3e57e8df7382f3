"""Meta (WhatsApp Cloud API) webhooks: the GET subscription handshake and X-Hub-Signature-256 on POSTs
(signatures made with stdlib hmac, the reference construction)."""

from __future__ import annotations

import json
import logging

import pytest
from webhook_signing import Secrets, meta_headers, request

from airlock.inbound.verifiers import Accept, MetaVerifier, Reject, build_verifier
from airlock.manifest import WebhookSpec

APP_SECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "verify-me-please"
BODY = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": []}]}).encode()
HANDSHAKE = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"}


def verifier(secrets: Secrets | None = None, *, app: bool = True, param: str = "hub.verify_token") -> MetaVerifier:
    store = secrets if secrets is not None else Secrets(whatsapp_verify_token=TOKEN, whatsapp_app_secret=APP_SECRET)
    return MetaVerifier("whatsapp", store.lookup, verify_token_name="whatsapp_verify_token", token_param=param,
                        app_secret_name="whatsapp_app_secret" if app else None)


def status(verdict: object) -> int:
    assert isinstance(verdict, Reject), verdict
    return verdict.status


def test_same_construction_as_githubs_published_vector() -> None:
    # Data: GitHub's "Validating webhook deliveries" example uses the identical sha256=<hex HMAC of raw body> header.
    store = Secrets(whatsapp_verify_token=TOKEN, whatsapp_app_secret="It's a Secret to Everybody")
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verifier(store).verify(request(b"Hello, World!", {"X-Hub-Signature-256": sig})) == Accept(True)


def test_handshake_good_token_accepted() -> None:
    assert verifier().verify(request(method="GET", query=HANDSHAKE)) == Accept(validated=True)


def test_handshake_custom_token_param() -> None:
    query = {"hub.mode": "subscribe", "vt": TOKEN}
    assert isinstance(verifier(param="vt").verify(request(method="GET", query=query)), Accept)
    assert status(verifier(param="vt").verify(request(method="GET", query=HANDSHAKE))) == 401


def test_handshake_bad_token_and_wrong_mode_are_403() -> None:
    assert status(verifier().verify(request(method="GET", query=HANDSHAKE | {"hub.verify_token": "nope"}))) == 403
    assert status(verifier().verify(request(method="GET", query=HANDSHAKE | {"hub.mode": "unsubscribe"}))) == 403


@pytest.mark.parametrize("drop", ["hub.mode", "hub.verify_token"])
def test_handshake_missing_parameter_is_401(drop: str) -> None:
    query = {k: v for k, v in HANDSHAKE.items() if k != drop}
    assert status(verifier().verify(request(method="GET", query=query))) == 401


def test_handshake_without_stored_token_is_403() -> None:
    verdict = verifier(Secrets(whatsapp_app_secret=APP_SECRET)).verify(request(method="GET", query=HANDSHAKE))
    assert status(verdict) == 403


def test_post_good_signature_accepted() -> None:
    assert verifier().verify(request(BODY, meta_headers(APP_SECRET, BODY))) == Accept(validated=True)


def test_post_bad_signature_wrong_key_tampered_are_403() -> None:
    assert status(verifier().verify(request(BODY, meta_headers("other-secret", BODY)))) == 403
    assert status(verifier().verify(request(BODY + b"\n", meta_headers(APP_SECRET, BODY)))) == 403


@pytest.mark.parametrize("value", [None, "", "sha1=" + "a" * 40, "sha256=" + "a" * 63, "sha256=" + "x" * 64])
def test_post_missing_or_malformed_signature_is_401(value: str | None) -> None:
    headers = {} if value is None else {"X-Hub-Signature-256": value}
    assert status(verifier().verify(request(BODY, headers))) == 401


def test_post_without_stored_app_secret_is_403() -> None:
    verdict = verifier(Secrets(whatsapp_verify_token=TOKEN)).verify(request(BODY, meta_headers(APP_SECRET, BODY)))
    assert status(verdict) == 403


def test_other_methods_are_403() -> None:
    assert status(verifier().verify(request(BODY, meta_headers(APP_SECRET, BODY), method="PUT"))) == 403


def test_without_app_secret_posts_pass_unvalidated_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # The real IronClaw whatsapp file: verify token + verify_token_param, no app secret.
    spec = WebhookSpec(secret_header="X-Hub-Signature-256", secret_name="whatsapp_verify_token",
                       verify_token_param="hub.verify_token")
    store = Secrets(whatsapp_verify_token=TOKEN)
    with caplog.at_level(logging.WARNING, logger="airlock.inbound"):
        v = build_verifier(spec, store.lookup, channel="whatsapp")
    assert isinstance(v, MetaVerifier) and not v.verifies_posts
    assert any("NOT verified" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert v.verify(request(BODY, {})) == Accept(validated=False)
    # The handshake is still checked.
    assert v.verify(request(method="GET", query=HANDSHAKE)) == Accept(validated=True)
    assert status(v.verify(request(method="GET", query=HANDSHAKE | {"hub.verify_token": "x"}))) == 403
