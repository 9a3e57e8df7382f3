"""Feishu / Lark event subscription. Source: Feishu open platform docs, "Receive events" (event subscription:
security verification and decryption) and "Configure the request URL" (url_verification).

Secrets: the Verification Token (``verification_token_secret_name``, else ``secret_name``) and, optionally, the
Encrypt Key (``encrypt_key_secret_name``). Exactly what is accepted:

Without an Encrypt Key: the body must be a UTF-8 JSON object whose token equals the Verification Token
(constant-time). The token is ``header.token`` when ``schema`` is ``"2.0"`` (v2 events), else the top-level
``token`` (v1 events and ``url_verification``). The body reaches the guest unchanged.

With an Encrypt Key, the body must be ``{"encrypt": "<base64>"}``:

1. If ``X-Lark-Signature`` is present, ``X-Lark-Request-Timestamp`` and ``X-Lark-Request-Nonce`` must be too, and
   the signature must equal hex SHA-256(timestamp + nonce + encrypt key + raw body) (constant-time).
2. The base64 data is IV (first 16 bytes) + AES-256-CBC ciphertext, key = SHA-256(encrypt key), PKCS#7 padding;
   the plaintext must be a UTF-8 JSON object with the right token (as above).
3. A request without a signature is accepted only when the plaintext's ``type`` is ``url_verification``: Feishu
   sends its URL check unsigned but encrypted and carrying the token. Any other unsigned request is refused.

When the Encrypt Key is declared optional in ``setup.required_secrets`` and is not stored, the token-only rules
apply (an operator may leave encryption off in Feishu); an encrypted body then fails them (no plaintext token).
A declared, non-optional Encrypt Key that is not stored refuses every request.

The guest then sees the decrypted JSON as the body (and secret-validated = true). There is no timestamp window:
Feishu's docs define none; a replayed signed event is left to the guest's ``event_id`` de-duplication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any, ClassVar, Literal

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .base import Accept, Rejected, SecretLookup, Verifier, WebhookRequest, forbidden, same, unauthorized

_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{64}$")
_SIGNATURE_HEADERS = ("X-Lark-Signature", "X-Lark-Request-Timestamp", "X-Lark-Request-Nonce")
_BLOCK = 16


def decrypt(encrypt_key: str, data_b64: str) -> bytes:
    """Decrypt a Feishu ``encrypt`` value: base64(IV + AES-256-CBC(PKCS#7(plaintext))), key = SHA-256(encrypt key).

    Raises :class:`Rejected`: 401 when the value is not base64 of at least two 16-byte blocks; 403 when the padding
    is wrong (a wrong key or a tampered ciphertext).
    """
    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized("encrypt is not base64") from None
    if len(data) < 2 * _BLOCK or len(data) % _BLOCK:
        raise unauthorized(f"encrypt is {len(data)} bytes, not IV + whole AES blocks")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:_BLOCK])).decryptor()
    padded = decryptor.update(data[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise forbidden("encrypt does not decrypt with the stored encrypt key") from None


def _json_object(raw: bytes, status_if_bad: Literal[401, 403], what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        raise Rejected(status_if_bad, f"{what} is not a JSON object")
    return doc


class FeishuVerifier(Verifier):
    """Rejects (see the module doc for what is accepted): 403 a needed secret not stored; 401 body not JSON / not
    ``{"encrypt": ...}`` when a key is set / token absent / signature headers incomplete or malformed / an unsigned
    request that is not ``url_verification``; 403 wrong signature, undecryptable body or wrong token."""

    scheme: ClassVar[str] = "feishu"

    def __init__(
        self, channel: str, lookup: SecretLookup, *, token_name: str, encrypt_key_name: str | None,
        encrypt_key_optional: bool = False,
    ) -> None:
        super().__init__(channel, lookup)
        self.token_name = token_name
        self.encrypt_key_name = encrypt_key_name
        self.encrypt_key_optional = encrypt_key_optional

    def check(self, req: WebhookRequest) -> Accept:
        token = self.secret(self.token_name, "verification token")
        key = self._encrypt_key()
        if key is None:
            self._check_token(_json_object(req.body, 401, "body"), token)
            return Accept(validated=True)
        signed = self._check_signature(req, key)
        envelope = _json_object(req.body, 401, "body")
        encrypted = envelope.get("encrypt")
        if not isinstance(encrypted, str):
            raise unauthorized("body has no encrypt field although an encrypt key is configured")
        plain = decrypt(key, encrypted)
        doc = _json_object(plain, 403, "decrypted body")
        self._check_token(doc, token)
        if not signed and doc.get("type") != "url_verification":
            raise unauthorized("event without X-Lark-Signature")
        return Accept(validated=True, body=plain)

    def _encrypt_key(self) -> str | None:
        """The stored Encrypt Key; None for token-only mode (none declared, or optional and not stored)."""
        if not self.encrypt_key_name:
            return None
        if self.encrypt_key_optional and not self._lookup(self.encrypt_key_name):
            return None
        return self.secret(self.encrypt_key_name, "encrypt key")

    @staticmethod
    def _check_signature(req: WebhookRequest, key: str) -> bool:
        """False when no signature header is present; True when the signature is right; raises otherwise."""
        signature, timestamp, nonce = (req.header(name) for name in _SIGNATURE_HEADERS)
        if signature is None and timestamp is None and nonce is None:
            return False
        if signature is None or timestamp is None or nonce is None:
            raise unauthorized("incomplete X-Lark-Signature / -Request-Timestamp / -Request-Nonce headers")
        if not _HEX_SIGNATURE.fullmatch(signature):
            raise unauthorized("X-Lark-Signature is not 64 hex characters")
        expected = hashlib.sha256((timestamp + nonce + key).encode() + req.body).hexdigest()
        if not same(expected, signature.lower()):
            raise forbidden("wrong X-Lark-Signature")
        return True

    @staticmethod
    def _check_token(doc: dict[str, Any], expected: str) -> None:
        holder: Any = doc.get("header") if doc.get("schema") == "2.0" else doc
        given = holder.get("token") if isinstance(holder, dict) else None
        if not isinstance(given, str):
            raise unauthorized("no verification token in the body")
        if not same(given, expected):
            raise forbidden("wrong verification token")
