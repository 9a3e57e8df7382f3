"""Feishu/Lark event subscription: verification token, X-Lark-Signature and AES-256-CBC decryption
(bodies encrypted in the test with `cryptography`, signatures with stdlib hashlib)."""

from __future__ import annotations

import base64
import json

import pytest
from webhook_signing import Secrets, feishu_encrypt, feishu_headers, feishu_v2_event, request

from airlock.inbound.verifiers import Accept, FeishuVerifier, Reject
from airlock.inbound.verifiers.base import Rejected
from airlock.inbound.verifiers.feishu import decrypt

TOKEN = "fCt8xobpWCxl7LeVNJXgUb4hSJ1iZzPJ"
KEY = "kudryavka-encrypt-key"
URL_CHECK = {"challenge": "1b6aef1a-401f-406a-be41-f48911eabcef", "token": TOKEN, "type": "url_verification"}


def verifier(secrets: Secrets | None = None, *, encrypted: bool = True) -> FeishuVerifier:
    store = secrets if secrets is not None else Secrets(feishu_verification_token=TOKEN, feishu_encrypt_key=KEY)
    return FeishuVerifier("feishu", store.lookup, token_name="feishu_verification_token",
                          encrypt_key_name="feishu_encrypt_key" if encrypted else None)


def status(verdict: object) -> int:
    assert isinstance(verdict, Reject), verdict
    return verdict.status


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_documented_decryption_vector() -> None:
    # Data: the Feishu open platform's decryption example (encrypt key "test key" -> "hello world").
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"
    with pytest.raises(Rejected) as err:
        decrypt("other key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
    assert err.value.status == 403


# ---- token only (no encrypt key) ------------------------------------------------------------------


def test_plain_v2_event_and_v1_url_verification_with_good_token() -> None:
    v = verifier(encrypted=False)
    assert v.verify(request(dumps(feishu_v2_event(TOKEN)))) == Accept(validated=True)
    assert v.verify(request(dumps(URL_CHECK))) == Accept(validated=True)
    v1_event = {"uuid": "u", "token": TOKEN, "type": "event_callback", "event": {}}
    assert v.verify(request(dumps(v1_event))) == Accept(validated=True)


def test_plain_bad_token_is_403_and_missing_token_is_401() -> None:
    v = verifier(encrypted=False)
    assert status(v.verify(request(dumps(feishu_v2_event("wrong"))))) == 403
    assert status(v.verify(request(dumps(URL_CHECK | {"token": "wrong"})))) == 403
    # A v2 event carries its token in header.token: a top-level token does not count.
    v2 = feishu_v2_event(TOKEN)
    del v2["header"]["token"]
    assert status(v.verify(request(dumps(v2 | {"token": TOKEN})))) == 401
    assert status(v.verify(request(dumps({"type": "url_verification", "challenge": "c"})))) == 401
    assert status(v.verify(request(dumps(URL_CHECK | {"token": 5})))) == 401


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b"\xff\xfe"])
def test_plain_body_not_a_json_object_is_401(body: bytes) -> None:
    assert status(verifier(encrypted=False).verify(request(body))) == 401


def test_missing_stored_token_is_403() -> None:
    assert status(verifier(Secrets(), encrypted=False).verify(request(dumps(URL_CHECK)))) == 403
    assert status(verifier(Secrets(feishu_verification_token=TOKEN)).verify(request(dumps(URL_CHECK)))) == 403


# ---- encrypt key set ------------------------------------------------------------------------------


def test_signed_encrypted_event_is_decrypted_for_the_guest() -> None:
    plain = dumps(feishu_v2_event(TOKEN, "hello"))
    body = feishu_encrypt(KEY, plain)
    assert verifier().verify(request(body, feishu_headers(KEY, body))) == Accept(validated=True, body=plain)


def test_unsigned_encrypted_url_verification_accepted() -> None:
    plain = dumps(URL_CHECK)
    body = feishu_encrypt(KEY, plain)
    assert verifier().verify(request(body, {})) == Accept(validated=True, body=plain)


def test_unsigned_encrypted_event_is_401() -> None:
    body = feishu_encrypt(KEY, dumps(feishu_v2_event(TOKEN)))
    verdict = verifier().verify(request(body, {}))
    assert status(verdict) == 401 and "X-Lark-Signature" in verdict.reason


def test_bad_signature_wrong_key_tampered_body_are_403() -> None:
    body = feishu_encrypt(KEY, dumps(feishu_v2_event(TOKEN)))
    assert status(verifier().verify(request(body, feishu_headers("other key", body)))) == 403
    headers = feishu_headers(KEY, body)
    assert status(verifier().verify(request(body.replace(b'"}', b'" }'), headers))) == 403
    assert status(verifier().verify(request(body, headers | {"X-Lark-Request-Nonce": "other"}))) == 403


def test_signed_but_encrypted_with_another_key_is_403() -> None:
    # Signed with the right key (so the signature passes) but the ciphertext was made with another key.
    body = feishu_encrypt("not the key", dumps(feishu_v2_event(TOKEN)))
    verdict = verifier().verify(request(body, feishu_headers(KEY, body)))
    assert status(verdict) == 403


def test_wrong_token_inside_encrypted_body_is_403() -> None:
    body = feishu_encrypt(KEY, dumps(feishu_v2_event("wrong")))
    assert status(verifier().verify(request(body, feishu_headers(KEY, body)))) == 403
    url_check = feishu_encrypt(KEY, dumps(URL_CHECK | {"token": "wrong"}))
    assert status(verifier().verify(request(url_check, {}))) == 403


@pytest.mark.parametrize("drop", ["X-Lark-Signature", "X-Lark-Request-Timestamp", "X-Lark-Request-Nonce"])
def test_incomplete_signature_headers_are_401(drop: str) -> None:
    body = feishu_encrypt(KEY, dumps(feishu_v2_event(TOKEN)))
    headers = feishu_headers(KEY, body)
    del headers[drop]
    assert status(verifier().verify(request(body, headers))) == 401


def test_malformed_signature_is_401() -> None:
    body = feishu_encrypt(KEY, dumps(feishu_v2_event(TOKEN)))
    assert status(verifier().verify(request(body, feishu_headers(KEY, body) | {"X-Lark-Signature": "zz"}))) == 401


def test_plaintext_body_refused_when_an_encrypt_key_is_set() -> None:
    body = dumps(URL_CHECK)
    assert status(verifier().verify(request(body, feishu_headers(KEY, body)))) == 401


@pytest.mark.parametrize("value", ["***", base64.b64encode(b"x" * 16).decode(), base64.b64encode(b"x" * 33).decode()])
def test_encrypt_field_not_iv_plus_blocks_is_401(value: str) -> None:
    body = dumps({"encrypt": value})
    assert status(verifier().verify(request(body, feishu_headers(KEY, body)))) == 401


def test_decrypted_garbage_is_403() -> None:
    body = feishu_encrypt(KEY, b"\x00\x01 not json")
    assert status(verifier().verify(request(body, feishu_headers(KEY, body)))) == 403


def test_missing_stored_encrypt_key_is_403() -> None:
    body = feishu_encrypt(KEY, dumps(URL_CHECK))
    assert status(verifier(Secrets(feishu_verification_token=TOKEN)).verify(request(body, {}))) == 403


def test_optional_encrypt_key_not_stored_means_token_only_until_stored() -> None:
    store = Secrets(feishu_verification_token=TOKEN)
    v = FeishuVerifier("feishu", store.lookup, token_name="feishu_verification_token",
                       encrypt_key_name="feishu_encrypt_key", encrypt_key_optional=True)
    plain = dumps(feishu_v2_event(TOKEN))
    encrypted = feishu_encrypt(KEY, plain)
    assert v.verify(request(plain)) == Accept(validated=True)
    assert status(v.verify(request(encrypted, feishu_headers(KEY, encrypted)))) == 401  # no plaintext token
    store["feishu_encrypt_key"] = KEY
    assert v.verify(request(encrypted, feishu_headers(KEY, encrypted))) == Accept(validated=True, body=plain)
    assert status(v.verify(request(plain, feishu_headers(KEY, plain)))) == 401  # now encryption is required
