"""Meta webhooks (WhatsApp Cloud API, Messenger, Instagram). Source: Meta for Developers, Graph API
"Webhooks: Getting Started" (verification requests and event notifications).

* GET (subscription handshake): ``hub.mode`` must be ``subscribe`` and the verify token (query parameter
  ``verify_token_param``, default ``hub.verify_token``) must equal, in constant time, the stored secret named by
  ``secret_name``. The guest then answers with ``hub.challenge``.
* POST (event notification): ``X-Hub-Signature-256`` = ``sha256=`` + hex HMAC-SHA256(app secret, raw body), the
  app secret being the stored secret named by ``app_secret_name``.

A file without ``app_secret_name`` (IronClaw's whatsapp file, for one) gives the host nothing to check POSTs
with: they pass with secret-validated = **false** and a warning is logged once, at registration. The host never
claims a verification it did not do. Other methods are refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import ClassVar

from .base import Accept, SecretLookup, Verifier, WebhookRequest, forbidden, same, unauthorized

_SIGNATURE = re.compile(r"^sha256=[0-9a-fA-F]{64}$")


class MetaVerifier(Verifier):
    """Rejects: GET: 403 verify token not stored; 401 ``hub.mode`` or the verify token missing; 403 mode not
    ``subscribe`` or wrong token. POST (with an app secret): 403 app secret not stored; 401 signature missing or
    not ``sha256=<64 hex>``; 403 wrong signature. Any other method: 403."""

    scheme: ClassVar[str] = "meta"

    def __init__(
        self, channel: str, lookup: SecretLookup, *, verify_token_name: str | None, token_param: str,
        app_secret_name: str | None,
    ) -> None:
        super().__init__(channel, lookup)
        self.verify_token_name = verify_token_name
        self.token_param = token_param
        self.app_secret_name = app_secret_name
        self.secret_query = frozenset({token_param})

    @property
    def verifies_posts(self) -> bool:
        """False when the file names no app secret (POSTs then pass unverified, see the module doc)."""
        return bool(self.app_secret_name)

    def check(self, req: WebhookRequest) -> Accept:
        if req.method == "GET":
            return self._handshake(req)
        if req.method == "POST":
            return self._notification(req)
        raise forbidden(f"{req.method} has no Meta verification")

    def _handshake(self, req: WebhookRequest) -> Accept:
        expected = self.secret(self.verify_token_name, "verify token")
        mode = req.query_value("hub.mode")
        given = req.query_value(self.token_param)
        if mode is None or given is None:
            raise unauthorized(f"handshake without hub.mode or {self.token_param}")
        if mode != "subscribe":
            raise forbidden("handshake hub.mode is not subscribe")
        if not same(given, expected):
            raise forbidden(f"wrong {self.token_param}")
        return Accept(validated=True)

    def _notification(self, req: WebhookRequest) -> Accept:
        if not self.app_secret_name:
            return Accept(validated=False)
        key = self.secret(self.app_secret_name, "app")
        signature = req.header("X-Hub-Signature-256")
        if signature is None:
            raise unauthorized("no X-Hub-Signature-256 header")
        if not _SIGNATURE.fullmatch(signature):
            raise unauthorized("X-Hub-Signature-256 is not sha256=<64 hex>")
        expected = "sha256=" + hmac.new(key.encode(), req.body, hashlib.sha256).hexdigest()
        if not same(expected, signature.lower()):
            raise forbidden("wrong X-Hub-Signature-256")
        return Accept(validated=True)
