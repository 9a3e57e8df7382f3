"""Host-side webhook verification: each platform's signature / token check, run before any guest code.

One verifier per channel, built at registration by :func:`build_verifier` from the capabilities file's
``channel.webhook`` block (``scheme`` declared or inferred, see :class:`airlock.manifest.WebhookSpec`):

========  =====================================================================================================
header    shared secret in a header, constant-time compare (Telegram)
slack     ``X-Slack-Signature`` HMAC-SHA256 of ``v0:{ts}:{body}``, 300 s window, replay cache (Slack)
discord   Ed25519 over ``timestamp + body``, 300 s window, replay cache; every rejection 401 (Discord)
meta      GET ``hub.mode``/``hub.verify_token`` handshake; POST ``X-Hub-Signature-256`` (WhatsApp Cloud API)
feishu    verification token, ``X-Lark-Signature``, AES-256-CBC decryption of ``{"encrypt": ...}`` (Feishu/Lark)
wecom     ``msg_signature`` SHA-1, AES-256-CBC decryption of ``echostr`` (GET) / ``<Encrypt>`` (POST) (WeCom app)
none      no host check (no block, or ``managed_by_host: false``): secret-validated = false
========  =====================================================================================================

``verifier.verify(WebhookRequest.build(method, path, headers, query, body, now))`` returns :class:`Accept`
(the guest gets secret-validated = ``accept.validated`` and ``accept.body`` if it replaces the raw body) or
:class:`Reject` (401/403, a log-only reason). All comparisons of secrets and MACs are constant-time.
"""

from __future__ import annotations

from .base import (
    MAX_REPLAY_ENTRIES,
    TIMESTAMP_WINDOW_S,
    Accept,
    Reject,
    ReplayCache,
    SecretLookup,
    Verdict,
    Verifier,
    WebhookRequest,
)
from .discord import DiscordVerifier
from .factory import build_verifier, verifier_for
from .feishu import FeishuVerifier
from .meta import MetaVerifier
from .simple import HeaderVerifier, Unverified
from .slack import SlackVerifier
from .wecom import WecomVerifier

__all__ = [
    "MAX_REPLAY_ENTRIES",
    "TIMESTAMP_WINDOW_S",
    "Accept",
    "DiscordVerifier",
    "FeishuVerifier",
    "HeaderVerifier",
    "MetaVerifier",
    "Reject",
    "ReplayCache",
    "SecretLookup",
    "SlackVerifier",
    "Unverified",
    "Verdict",
    "Verifier",
    "WebhookRequest",
    "WecomVerifier",
    "build_verifier",
    "verifier_for",
]
