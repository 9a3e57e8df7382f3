"""WeCom (企业微信) callback mode of a self-built app. Source: WeCom developer docs, "加解密方案说明"
(https://developer.work.weixin.qq.com/document/path/90968: msg_signature, the AES scheme and its test vector) and
"回调配置" (https://developer.work.weixin.qq.com/document/path/90930: the GET URL check with ``echostr``).

Secrets: the callback Token (``verification_token_secret_name``, else ``secret_name``), the 43-character
EncodingAESKey (``encrypt_key_secret_name``) and, optionally, the Corp ID the plaintext must end with
(``receive_id_secret_name``). Exactly what is accepted:

1. The query carries ``msg_signature``, ``timestamp`` and ``nonce`` (each once); ``timestamp`` is within
   :data:`~.base.TIMESTAMP_WINDOW_S` of the host's clock (WeCom's docs define no window; this bounds replays).
2. The encrypted value is the ``echostr`` query parameter for a GET (the URL check) and the ``<Encrypt>`` element
   of the XML body for a POST. ``msg_signature`` must equal hex SHA-1 of the concatenation of the sorted strings
   token, timestamp, nonce and the encrypted value (constant-time).
3. The value is base64 of AES-256-CBC ciphertext; key = base64 of the EncodingAESKey + ``"="`` (32 bytes), IV = the
   key's first 16 bytes; PKCS#7 padding to 32-byte blocks (WeCom's block size, not AES's 16). The plaintext is 16
   random bytes, the message length (4 bytes, big-endian), the message, then the receive id.
4. When the Corp ID is stored, the receive id must equal it (constant-time). A receive-id secret declared
   ``optional`` in ``setup`` and not stored skips this check; a non-optional one refuses every request.

The guest gets the message as the body and secret-validated = true: for a GET that is the decrypted ``echostr``,
which the channel answers with verbatim (WeCom's URL check); for a POST the decrypted XML message.
Other methods are refused (403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import ClassVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .base import (
    Accept,
    SecretLookup,
    Verifier,
    WebhookRequest,
    forbidden,
    fresh_timestamp,
    same,
    unauthorized,
)

#: WeCom pads plaintexts (PKCS#7) to multiples of this many bytes.
PAD_BLOCK = 32
#: Length of an EncodingAESKey (43 base64 characters: 32 bytes without the final "=").
AES_KEY_CHARS = 43
_RANDOM_BYTES = 16
_LENGTH_BYTES = 4
_SIGNATURE = re.compile(r"^[0-9a-fA-F]{40}$")
# The POST body is a flat XML document; only its Encrypt element matters and that is base64, so one strict pattern
# finds it without an XML parser (no entity expansion, no DTD): a body whose Encrypt is absent, repeated or not
# base64 is refused.
_ENCRYPT = re.compile(rb"<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=]+)\]\]>|([A-Za-z0-9+/=]+))\s*</Encrypt>")


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Hex SHA-1 of the sorted, concatenated strings (WeCom's ``msg_signature``)."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypted))).encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of an EncodingAESKey; 403 when the stored key is not 43 base64 characters."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(encoding_aes_key) != AES_KEY_CHARS or len(key) != 32:
        raise forbidden(f"the stored EncodingAESKey is not {AES_KEY_CHARS} base64 characters")
    return key


def decrypt(encoding_aes_key: str, encrypted: str) -> tuple[bytes, bytes]:
    """``(message, receive_id)`` of a WeCom encrypted value (see the module doc, step 3).

    Raises :class:`~.base.Rejected`: 401 when the value is not base64 of whole AES blocks; 403 when the key is
    malformed or the padding or length fields are wrong (a wrong key or a tampered ciphertext).
    """
    key = aes_key(encoding_aes_key)
    try:
        data = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized("the encrypted value is not base64") from None
    if not data or len(data) % 16:
        raise unauthorized(f"the encrypted value is {len(data)} bytes, not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= PAD_BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise forbidden("the encrypted value does not decrypt with the stored EncodingAESKey (padding)")
    plain = padded[:-pad]
    start = _RANDOM_BYTES + _LENGTH_BYTES
    if len(plain) < start:
        raise forbidden("the decrypted value is shorter than its header")
    length = int.from_bytes(plain[_RANDOM_BYTES:start], "big")
    if length > len(plain) - start:
        raise forbidden("the decrypted message length is larger than the plaintext")
    return plain[start:start + length], plain[start + length:]


class WecomVerifier(Verifier):
    """Rejects (see the module doc): 403 a needed secret not stored; 401 query parameters missing or repeated,
    ``msg_signature`` not 40 hex characters, no (single) base64 ``<Encrypt>`` in a POST body, a GET without
    ``echostr``; 403 stale timestamp, wrong signature, undecryptable value, wrong receive id, other methods."""

    scheme: ClassVar[str] = "wecom"

    def __init__(
        self, channel: str, lookup: SecretLookup, *, token_name: str, aes_key_name: str,
        receive_id_name: str | None = None, receive_id_optional: bool = False,
    ) -> None:
        super().__init__(channel, lookup)
        self.token_name = token_name
        self.aes_key_name = aes_key_name
        self.receive_id_name = receive_id_name
        self.receive_id_optional = receive_id_optional

    def check(self, req: WebhookRequest) -> Accept:
        if req.method not in ("GET", "POST"):
            raise forbidden(f"{req.method} has no WeCom verification")
        token = self.secret(self.token_name, "callback token")
        key = self.secret(self.aes_key_name, "EncodingAESKey")
        given, timestamp, nonce = (req.query_value(n) for n in ("msg_signature", "timestamp", "nonce"))
        if given is None or timestamp is None or nonce is None:
            raise unauthorized("query without msg_signature, timestamp or nonce")
        if not _SIGNATURE.fullmatch(given):
            raise unauthorized("msg_signature is not 40 hex characters")
        fresh_timestamp(timestamp, req.now, "timestamp")
        encrypted = self._encrypted(req)
        if not same(signature(token, timestamp, nonce, encrypted), given.lower()):
            raise forbidden("wrong msg_signature")
        message, receive_id = decrypt(key, encrypted)
        self._check_receive_id(receive_id)
        return Accept(validated=True, body=message)

    @staticmethod
    def _encrypted(req: WebhookRequest) -> str:
        if req.method == "GET":
            echo = req.query_value("echostr")
            if echo is None:
                raise unauthorized("URL check without echostr")
            return echo
        found = _ENCRYPT.findall(req.body)
        if len(found) != 1:
            raise unauthorized(f"body has {len(found)} base64 <Encrypt> elements, not one")
        cdata, bare = found[0]
        value: bytes = cdata or bare
        return value.decode("ascii")

    def _check_receive_id(self, receive_id: bytes) -> None:
        if not self.receive_id_name:
            return
        if self.receive_id_optional and not self._lookup(self.receive_id_name):
            return
        expected = self.secret(self.receive_id_name, "corp id")
        if not same(receive_id, expected.encode("utf-8")):
            raise forbidden("the decrypted receive id is not the stored corp id")
