"""Discord interactions: Ed25519 signatures made with PyNaCl; every rejection is 401 (Discord's rule)."""

from __future__ import annotations

import json

import pytest
from nacl.signing import SigningKey
from webhook_signing import NOW, Secrets, discord_headers, discord_public_hex, request

from airlock.inbound.verifiers import Accept, DiscordVerifier, Reject

KEY = SigningKey(bytes(range(32)))
BODY = json.dumps({"type": 1, "id": "1234", "application_id": "99", "token": "t"}).encode()
TS = int(NOW)


def verifier(secrets: Secrets | None = None) -> DiscordVerifier:
    store = secrets if secrets is not None else Secrets(discord_public_key=discord_public_hex(KEY))
    return DiscordVerifier("discord", store.lookup, key_name="discord_public_key")


def rejected(verdict: object) -> Reject:
    assert isinstance(verdict, Reject), verdict
    assert verdict.status == 401
    return verdict


def test_good_signature_accepted() -> None:
    assert verifier().verify(request(BODY, discord_headers(KEY, BODY, TS))) == Accept(validated=True)


def test_uppercase_stored_key_and_signature_accepted() -> None:
    store = Secrets(discord_public_key=discord_public_hex(KEY).upper())
    headers = discord_headers(KEY, BODY, TS)
    headers["X-Signature-Ed25519"] = headers["X-Signature-Ed25519"].upper()
    assert isinstance(verifier(store).verify(request(BODY, headers)), Accept)


def test_signature_by_another_key_rejected() -> None:
    other = SigningKey(bytes(range(1, 33)))
    rejected(verifier().verify(request(BODY, discord_headers(other, BODY, TS))))


def test_tampered_body_and_changed_timestamp_rejected() -> None:
    headers = discord_headers(KEY, BODY, TS)
    rejected(verifier().verify(request(BODY.replace(b'"type": 1', b'"type": 2'), headers)))
    rejected(verifier().verify(request(BODY, headers | {"X-Signature-Timestamp": str(TS - 1)})))


@pytest.mark.parametrize("drop", ["X-Signature-Ed25519", "X-Signature-Timestamp"])
def test_missing_header_rejected(drop: str) -> None:
    headers = discord_headers(KEY, BODY, TS)
    del headers[drop]
    rejected(verifier().verify(request(BODY, headers)))


@pytest.mark.parametrize("sig", ["", "zz" * 64, "ab" * 63, "ab" * 65])
def test_malformed_signature_rejected(sig: str) -> None:
    rejected(verifier().verify(request(BODY, discord_headers(KEY, BODY, TS) | {"X-Signature-Ed25519": sig})))


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_or_future_timestamp_rejected(offset: int) -> None:
    verdict = rejected(verifier().verify(request(BODY, discord_headers(KEY, BODY, TS + offset))))
    assert "window" in verdict.reason


def test_replay_rejected() -> None:
    v = verifier()
    headers = discord_headers(KEY, BODY, TS)
    assert isinstance(v.verify(request(BODY, headers)), Accept)
    assert "replay" in rejected(v.verify(request(BODY, headers, now=NOW + 1))).reason


def test_missing_or_malformed_stored_key_rejected() -> None:
    headers = discord_headers(KEY, BODY, TS)
    assert "not stored" in rejected(verifier(Secrets()).verify(request(BODY, headers))).reason
    for bad in ("abc", "g" * 64, discord_public_hex(KEY)[:-2]):
        verdict = rejected(verifier(Secrets(discord_public_key=bad)).verify(request(BODY, headers)))
        assert bad not in verdict.reason
