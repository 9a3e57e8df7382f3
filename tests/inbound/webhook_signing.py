"""Signed webhook requests for tests, made by real libraries rather than by the code under test:
slack_sdk's SignatureVerifier (Slack), PyNaCl (Discord Ed25519), stdlib hmac/hashlib (Meta, Feishu signature:
the reference constructions), `cryptography` (Feishu AES-256-CBC encryption)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl.signing import SigningKey
from slack_sdk.signature import SignatureVerifier

from airlock.inbound.verifiers import WebhookRequest

NOW = 1_750_000_000.0


class Secrets(dict[str, str]):
    """A secret store stand-in: ``lookup`` is what a verifier is given; names looked up are recorded."""

    def __init__(self, **values: str) -> None:
        super().__init__(values)
        self.asked: list[str] = []

    def lookup(self, name: str) -> str | None:
        self.asked.append(name)
        return self.get(name)


def request(
    body: bytes = b"", headers: dict[str, str] | list[tuple[str, str]] | None = None, *, method: str = "POST",
    query: dict[str, str] | None = None, now: float = NOW, path: str = "/webhook/x",
) -> WebhookRequest:
    return WebhookRequest.build(method, path, headers or {}, query or {}, body, now)


def slack_headers(secret: str, body: bytes, timestamp: int | str) -> dict[str, str]:
    sig = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert sig is not None
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": sig}


def discord_headers(key: SigningKey, body: bytes, timestamp: int | str) -> dict[str, str]:
    signed = key.sign(str(timestamp).encode() + body)
    return {"X-Signature-Ed25519": signed.signature.hex(), "X-Signature-Timestamp": str(timestamp)}


def discord_public_hex(key: SigningKey) -> str:
    return bytes(key.verify_key).hex()


def meta_headers(app_secret: str, body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()}


def feishu_encrypt(encrypt_key: str, plaintext: bytes, iv: bytes | None = None) -> bytes:
    """``{"encrypt": base64(IV + AES-256-CBC(PKCS#7(plaintext)))}`` with key SHA-256(encrypt key)."""
    iv = iv if iv is not None else os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(hashlib.sha256(encrypt_key.encode()).digest()), modes.CBC(iv)).encryptor()
    data = iv + enc.update(padded) + enc.finalize()
    return json.dumps({"encrypt": base64.b64encode(data).decode()}).encode()


def feishu_headers(
    encrypt_key: str, body: bytes, timestamp: str = "1750000000", nonce: str = "n0nce"
) -> dict[str, str]:
    sig = hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()
    return {"X-Lark-Signature": sig, "X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce}


def feishu_v2_event(token: str, text: str = "hi") -> dict[str, Any]:
    """An ``im.message.receive_v1`` event (v2 schema), shape as in Feishu's event docs, abridged."""
    return {
        "schema": "2.0",
        "header": {"event_id": "5e3702a84e847582be8db7fb73283c02", "event_type": "im.message.receive_v1",
                   "create_time": "1608725989000", "token": token, "app_id": "cli_a1b2", "tenant_key": "t1"},
        "event": {"sender": {"sender_id": {"open_id": "ou_1"}, "sender_type": "user"},
                  "message": {"message_id": "om_1", "chat_type": "p2p", "message_type": "text",
                              "content": json.dumps({"text": text})}},
    }
