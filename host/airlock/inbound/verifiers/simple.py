"""The two simplest checks: no host verification at all, and a shared secret in a header."""

from __future__ import annotations

from typing import ClassVar

from .base import Accept, SecretLookup, Verifier, WebhookRequest, forbidden, same, unauthorized


class Unverified(Verifier):
    """The host does not check (no ``webhook`` block, nothing to infer a scheme from, or
    ``managed_by_host: false``): every request passes with secret-validated = false and the guest decides.

    ``declared`` is True when the file names a secret that the guest checks itself (``managed_by_host: false``).
    """

    scheme: ClassVar[str] = "none"

    def __init__(self, channel: str, lookup: SecretLookup, *, declared: bool) -> None:
        super().__init__(channel, lookup)
        self.declared = declared

    def check(self, req: WebhookRequest) -> Accept:
        return Accept(validated=False)


class HeaderVerifier(Verifier):
    """A shared secret sent verbatim in a header (e.g. Telegram's ``X-Telegram-Bot-Api-Secret-Token``), compared
    in constant time with the stored secret ``secret_name``.

    Rejects: 403 secret not stored; 401 header absent (or repeated); 403 header differs.
    """

    scheme: ClassVar[str] = "header"

    def __init__(self, channel: str, lookup: SecretLookup, *, header: str, secret_name: str) -> None:
        super().__init__(channel, lookup)
        self.header_name = header
        self.secret_name = secret_name
        self.secret_headers = frozenset({header.lower()})

    def check(self, req: WebhookRequest) -> Accept:
        expected = self.secret(self.secret_name, "webhook")
        given = req.header(self.header_name)
        if given is None:
            raise unauthorized(f"no {self.header_name} header")
        if not same(given, expected):
            raise forbidden(f"wrong {self.header_name}")
        return Accept(validated=True)
