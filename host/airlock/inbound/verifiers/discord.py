"""Discord interactions (source: Discord developer docs, Interactions, "Security and Authorization").

``X-Signature-Ed25519`` (hex, 64 bytes) is an Ed25519 signature of ``X-Signature-Timestamp + raw body`` made
with the application's key; the public key (64 hex characters) is the stored secret named by
``signature_key_secret_name``. The host also refuses a timestamp more than 300 s off the host's clock and a
signature it already accepted within that window (Ed25519 signatures are deterministic, so a replay repeats it).

Every rejection is **401**: Discord's docs require 401 when validation fails, and Discord probes endpoints with
bad signatures and removes an interactions URL that answers otherwise.
"""

from __future__ import annotations

import re
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .base import (
    TIMESTAMP_WINDOW_S,
    Accept,
    Reject,
    ReplayCache,
    ReplayGuard,
    SecretLookup,
    Verdict,
    Verifier,
    WebhookRequest,
    forbidden,
    fresh_timestamp,
    unauthorized,
)

_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{128}$")
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


class DiscordVerifier(Verifier):
    """Rejects (all 401, see the module doc): public key not stored or not 64 hex characters; signature or
    timestamp header missing or malformed; timestamp off by more than ``window_s``; bad signature; replay."""

    scheme: ClassVar[str] = "discord"

    def __init__(
        self, channel: str, lookup: SecretLookup, *, key_name: str, window_s: int = TIMESTAMP_WINDOW_S,
        replay: ReplayGuard | None = None,
    ) -> None:
        super().__init__(channel, lookup)
        self.key_name = key_name
        self.window_s = window_s
        self.replay: ReplayGuard = replay if replay is not None else ReplayCache()

    def verify(self, req: WebhookRequest) -> Verdict:
        verdict = super().verify(req)
        return Reject(401, verdict.reason) if isinstance(verdict, Reject) else verdict

    def check(self, req: WebhookRequest) -> Accept:
        key_hex = self.secret(self.key_name, "public key").strip()
        if not _HEX_KEY.fullmatch(key_hex):
            raise forbidden(f"stored {self.key_name} is not 64 hex characters")
        signature = req.header("X-Signature-Ed25519")
        timestamp = req.header("X-Signature-Timestamp")
        if signature is None or timestamp is None:
            raise unauthorized("no X-Signature-Ed25519 or X-Signature-Timestamp header")
        if not _HEX_SIGNATURE.fullmatch(signature):
            raise unauthorized("X-Signature-Ed25519 is not 128 hex characters")
        when = fresh_timestamp(timestamp, req.now, "X-Signature-Timestamp", self.window_s)
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
        except ValueError:
            raise forbidden(f"stored {self.key_name} is not an Ed25519 public key") from None
        try:
            public.verify(bytes.fromhex(signature), timestamp.encode() + req.body)
        except InvalidSignature:
            raise forbidden("bad X-Signature-Ed25519") from None
        if self.replay.seen(signature.lower(), when + self.window_s, req.now):
            raise forbidden("replayed X-Signature-Ed25519")
        return Accept(validated=True)
