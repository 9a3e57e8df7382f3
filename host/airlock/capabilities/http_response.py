"""What a guest gets back from ``http-request``: the response with every secret the request used removed.

Two layers, in this order (issue 13, defect 2):

1. ``Redactor`` replaces the secret's exact, common forms in place (raw, percent-encoded, form-encoded, as
   a JSON string and a JSON string inside a JSON string) by ``[REDACTED]``, so that the usual reflection
   (an API quoting the URL it was called with, ``/bot[REDACTED]/getMe``) keeps the response usable.
2. ``LeakScanner`` then decodes what is left in every way a reader could (``leakscan``: percent-encoding
   in any case, ``+``, JSON escapes, HTML references, base64/base64url, nested up to three deep) and
   looks for the secret again. What it finds there is a leak layer 1 could not cut out cleanly, so the
   whole value goes:

   - the body: the response is withheld; the guest gets ``err("response from HOST withheld: ...")``
     (``HttpRefused``) and the audit trail records it with the status that arrived;
   - a header value: the whole value becomes ``[REDACTED]``;
   - a header name: the header is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from .egress import EgressResponse
from .http_policy import HttpRefused
from .leakscan import LeakScanner

__all__ = ["PATH_SAFE", "REDACTED", "HttpResult", "Redactor", "guest_response"]

#: What a secret value is replaced with wherever the guest or the audit trail could see it.
REDACTED = "[REDACTED]"
#: Characters a secret may keep unescaped when it is put into a URL path segment (RFC 3986 pchar).
PATH_SAFE = "!$&'()*+,;=:@"


@dataclass(frozen=True)
class HttpResult:
    """The guest-visible response: ``status``; ``headers_json``, a JSON object of lower-cased header
    names to values (duplicates joined with ``", "``); ``body`` bytes (decoded if the server compressed
    it). Secret values used by the request are removed as the module docstring says."""

    status: int
    headers_json: str
    body: bytes


class Redactor:
    """Collects the secret values a request uses (``secrets``) and erases their common forms in place."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self.secrets: set[str] = set()

    def add(self, secret: str, *extra_forms: str) -> None:
        """Remember ``secret`` (and forms the caller built, e.g. a Basic credential's base64)."""
        if secret:
            self.secrets.add(secret)
        forms = {
            secret,
            quote(secret),
            quote(secret, safe=""),
            quote(secret, safe=PATH_SAFE),
            quote_plus(secret),
            *_json_forms(secret),
            *extra_forms,
        }
        self._forms.update(f for f in forms if f)

    def _ordered(self) -> list[str]:
        return sorted(self._forms, key=len, reverse=True)

    def text(self, value: str) -> str:
        for form in self._ordered():
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def data(self, value: bytes) -> bytes:
        for form in self._ordered():
            encoded = form.encode("utf-8")
            if encoded in value:  # one copy of the body per form actually present, not per form
                value = value.replace(encoded, REDACTED.encode("ascii"))
        return value


def _json_forms(secret: str) -> set[str]:
    """The secret as it appears inside a JSON string, ASCII-escaped or not, and inside a JSON string that
    itself holds JSON (a platform echoing a JSON request body in its JSON error): body secrets need both."""
    once = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    twice = {json.dumps(form, ensure_ascii=ascii)[1:-1] for form in once for ascii in (True, False)}
    return once | twice


def guest_response(response: EgressResponse, redactor: Redactor, host: str) -> HttpResult:
    """The ``HttpResult`` for ``response`` to a request to ``host``. Raises ``HttpRefused`` when the body
    still holds a secret after in-place redaction (module docstring)."""
    scanner = LeakScanner(redactor.secrets)
    body = redactor.data(response.body)
    if scanner.leaks(body):
        raise HttpRefused(
            f"response from {host} withheld: its body contains a credential this request used "
            f"(HTTP {response.status})"
        )
    merged: dict[str, str] = {}
    for name, value in response.headers:
        if scanner.leaks_text(name):  # before lower-casing: a lower-cased base64 name still leaks
            continue
        key = redactor.text(name.lower())
        value = redactor.text(value)
        if scanner.leaks_text(value):
            value = REDACTED
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    if body is not response.body and "content-length" in merged:
        merged["content-length"] = str(len(body))
    return HttpResult(status=response.status, headers_json=json.dumps(merged), body=body)
