"""Slack request signing (source: Slack API docs, "Verifying requests from Slack").

``X-Slack-Signature`` = ``v0=`` + hex HMAC-SHA256(signing secret, ``v0:{X-Slack-Request-Timestamp}:{raw body}``).
The timestamp (Unix seconds) must be within 300 s of the host's clock, past or future. A signature accepted
once is refused again while its timestamp is inside the window (per-channel :class:`ReplayCache`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import ClassVar

from .base import (
    TIMESTAMP_WINDOW_S,
    Accept,
    ReplayCache,
    ReplayGuard,
    SecretLookup,
    Verifier,
    WebhookRequest,
    forbidden,
    fresh_timestamp,
    same,
    unauthorized,
)

_SIGNATURE = re.compile(r"^v0=[0-9a-fA-F]{64}$")


class SlackVerifier(Verifier):
    """Rejects: 403 signing secret not stored; 401 timestamp or signature header missing, or not of the form
    ``v0=<64 hex>`` / Unix seconds; 403 stale or future timestamp (> ``window_s``), wrong signature, replay."""

    scheme: ClassVar[str] = "slack"

    def __init__(
        self, channel: str, lookup: SecretLookup, *, secret_name: str, window_s: int = TIMESTAMP_WINDOW_S,
        replay: ReplayGuard | None = None,
    ) -> None:
        super().__init__(channel, lookup)
        self.secret_name = secret_name
        self.window_s = window_s
        self.replay: ReplayGuard = replay if replay is not None else ReplayCache()

    def check(self, req: WebhookRequest) -> Accept:
        key = self.secret(self.secret_name, "signing")
        timestamp = req.header("X-Slack-Request-Timestamp")
        signature = req.header("X-Slack-Signature")
        if timestamp is None or signature is None:
            raise unauthorized("no X-Slack-Request-Timestamp or X-Slack-Signature header")
        if not _SIGNATURE.fullmatch(signature):
            raise unauthorized("X-Slack-Signature is not v0=<64 hex>")
        when = fresh_timestamp(timestamp, req.now, "X-Slack-Request-Timestamp", self.window_s)
        base = b"v0:" + timestamp.encode() + b":" + req.body
        expected = "v0=" + hmac.new(key.encode(), base, hashlib.sha256).hexdigest()
        given = signature.lower()
        if not same(expected, given):
            raise forbidden("wrong X-Slack-Signature")
        if self.replay.seen(given, when + self.window_s, req.now):
            raise forbidden("replayed X-Slack-Signature")
        return Accept(validated=True)
