"""The ``http-request`` host function: policy checks, secret injection, redaction, rate limits, redirects.

``HttpCapability.request`` is what the runtime calls (from a worker thread, while a wasm callback runs)
for ``http-request(method, url, headers-json, body, timeout-ms) -> result<http-response, string>``
(``wit/channel.wit``). The order of the rules, and where each comes from:

1. method, URL, headers and body are validated (``http_policy``; the WIT says "Outbound HTTPS to the
   allow-list");
2. the allow-list is checked on the URL exactly as the guest sent it (``capabilities.http.allowlist``);
3. credentials are injected after that check (``capabilities.http.credentials`` and the spec's
   ``{UPPER_SNAKE_NAME}`` placeholders, allowed by ``capabilities.secrets.allowed_names``, and sent only
   to the hosts of a credential rule naming the same secret, if there is one). A header or query credential
   whose secret is not stored is skipped, and the guest's own header or parameter stays (IronClaw,
   ``resolve_channel_host_credentials``: its Feishu file declares a bearer token the guest fetches itself);
   a ``url_path`` credential fills the path only, and one that cannot be filled refuses the request. A
   secret goes into the query string only through a ``query_param`` credential for the host
   (``check_query_placeholder``). Placeholders in the BODY are filled only when the guest lists them in
   ``X-Airlock-Body-Secrets`` (``http_policy``), encoded for the body's content type (JSON string escapes,
   form encoding, or raw);
4. the per-channel rate limit is applied (``capabilities.http.rate_limit``);
5. ``Egress`` applies upstream overrides and the SSRF check and sends; same-host redirects are followed
   here, at most ``MAX_REDIRECTS`` times, re-checking the allow-list on every hop;
6. every secret value used is removed from what the guest gets back (``http_response``: exact forms
   redacted in place, then every decoding of the rest scanned; a body that still holds one is withheld)
   and from the audit trail.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, quote_plus

from .egress import Egress
from .http_policy import (
    ALLOWED_METHODS,
    PLACEHOLDER_RE,
    AllowRule,
    CredentialRule,
    HttpPolicy,
    HttpRefused,
    TargetUrl,
    check_allowed,
    check_path_segments,
    check_placeholder_host,
    check_query_placeholder,
    parse_headers_json,
    parse_https_url,
    select_credentials,
    take_body_secret_names,
)
from .http_redirect import REDIRECT_STATUSES, Hop, next_hop
from .http_response import PATH_SAFE, REDACTED, HttpResult, Redactor, guest_response

__all__ = [
    "MAX_REDIRECTS",
    "REDACTED",
    "AllowRule",
    "CredentialRule",
    "HttpAudit",
    "HttpCapability",
    "HttpPolicy",
    "HttpRefused",
    "HttpResult",
]

logger = logging.getLogger("airlock.http")

#: Same-host redirects followed per request; the next 3xx is refused as "too many redirects".
MAX_REDIRECTS = 5

_AUDIT_URL_CHARS = 2048


@dataclass(frozen=True)
class HttpAudit:
    """One outbound attempt, for the host's audit log. ``url`` is redacted; ``allowed`` is false when the
    policy refused the request before any network traffic; ``status`` is the HTTP status if a response
    arrived; ``error`` the guest-visible refusal message; ``elapsed_s`` wall seconds for this attempt."""

    method: str
    url: str
    allowed: bool
    status: int | None
    error: str | None
    elapsed_s: float


class _RateLimiter:
    """Sliding one-minute and one-hour windows over the instants of admitted requests."""

    def __init__(self, per_minute: int, per_hour: int, clock: Callable[[], float]) -> None:
        self._per_minute = per_minute
        self._per_hour = per_hour
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> None:
        with self._lock:
            now = self._clock()
            while self._stamps and self._stamps[0] <= now - 3600.0:
                self._stamps.popleft()
            in_minute = sum(1 for t in self._stamps if t > now - 60.0)
            if in_minute >= self._per_minute:
                raise HttpRefused(f"rate limit exceeded ({self._per_minute} requests per minute)")
            if len(self._stamps) >= self._per_hour:
                raise HttpRefused(f"rate limit exceeded ({self._per_hour} requests per hour)")
            self._stamps.append(now)


class HttpCapability:
    """``http-request`` for one channel; holds the channel's rate-limit windows across callbacks.

    ``secrets(name)`` returns a secret value or ``None`` if none is stored; ``secret_allowed(name)`` says
    whether ``capabilities.secrets.allowed_names`` admits the name for placeholders. ``clock`` (seconds,
    monotonic) drives the rate limiter only. Thread-safe.
    """

    def __init__(
        self,
        channel: str,
        policy: HttpPolicy,
        secrets: Callable[[str], str | None],
        secret_allowed: Callable[[str], bool],
        egress: Egress,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self._policy = policy
        self._secrets = secrets
        self._secret_allowed = secret_allowed
        self._egress = egress
        self._limiter = _RateLimiter(policy.requests_per_minute, policy.requests_per_hour, clock)
        self._skipped: set[str] = set()  # secret names already logged as missing

    def request(
        self,
        method: str,
        url: str,
        headers_json: str,
        body: bytes | None,
        timeout_ms: int | None,
        *,
        deadline: float,
        audit: list[HttpAudit],
    ) -> HttpResult:
        """Perform one guest ``http-request``; blocks until the response is read.

        ``method``: any case, one of ``ALLOWED_METHODS``. ``url``: ``https`` only (see
        ``parse_https_url``). ``headers_json``: JSON object string -> string, at most 100 entries.
        ``body``: at most ``policy.max_request_bytes``. ``timeout_ms``: per-request timeout in milliseconds
        (``None`` or 0: ``policy.timeout_secs``), further capped by ``deadline`` (a ``time.monotonic()``
        instant: the callback's deadline) and covering every redirect hop. One ``HttpAudit`` is appended
        to ``audit`` per attempt (a refusal before the network, or each hop sent).

        Returns an ``HttpResult``; a cross-host redirect (or one the allow-list refuses) is returned as
        the 3xx response itself. Raises ``HttpRefused`` (guest-safe message, secrets redacted) for a
        policy refusal, a missing secret, the rate limit, an SSRF-blocked address, a connection error,
        an over-size response, more than ``MAX_REDIRECTS`` redirects, or "timed out after N ms".
        """
        started = time.monotonic()
        redactor = Redactor()
        method = method.upper()
        audit_url = url
        try:
            hop = self._prepare(method, url, headers_json, body, redactor)
            audit_url = hop.url.geturl()
            first = self._with_credentials(hop, redactor)
            self._limiter.admit()  # counted only once the request passed every policy check
        except HttpRefused as exc:
            refused = HttpRefused(redactor.text(str(exc)))
            audit.append(self._audit(method, redactor.text(audit_url), False, None, str(refused), started))
            raise refused from None
        return self._send_hops(hop, first, redactor, timeout_ms, deadline, audit)

    # -- policy ---------------------------------------------------------------------------------------

    def _prepare(
        self, method: str, url: str, headers_json: str, body: bytes | None, redactor: Redactor
    ) -> Hop:
        if method not in ALLOWED_METHODS:
            raise HttpRefused(f"method {method[:16]} is not allowed")
        target = parse_https_url(url)
        headers, body_names = take_body_secret_names(parse_headers_json(headers_json))
        self._check_body_size(body)
        check_allowed(self._policy, method, target)
        # Credentials only after the allow-list admitted the URL as the guest wrote it.
        path, query = target.path, target.query
        for rule in select_credentials(self._policy, target):
            if rule.location != "url_path" or rule.placeholder not in path:
                continue  # a url_path credential fills the path; in the query it is a plain placeholder
            value = self._credential_value(rule, target, redactor, required=True)
            if value is not None:
                path = path.replace(rule.placeholder, quote(value, safe=PATH_SAFE))

        def in_path(m: re.Match[str]) -> str:
            return quote(self._placeholder(m.group(1), target, redactor), safe=PATH_SAFE)

        def in_query(m: re.Match[str]) -> str:
            value = self._placeholder(m.group(1), target, redactor)
            check_query_placeholder(self._policy, m.group(1).lower(), target)
            return quote(value, safe="")

        path = PLACEHOLDER_RE.sub(in_path, path)
        query = PLACEHOLDER_RE.sub(in_query, query)
        filled: list[tuple[str, str]] = []
        for name, value in headers:
            value = PLACEHOLDER_RE.sub(lambda m: self._placeholder(m.group(1), target, redactor), value)
            if any(c in value for c in "\r\n\0"):
                raise HttpRefused(f"a secret used in header {name} contains CR, LF or NUL")
            filled.append((name, value))
        check_path_segments(path)
        if body is not None and body_names:
            body = self._fill_body(body, body_names, _content_type(filled), target, redactor)
        return Hop(method, TargetUrl(target.host, path, query), filled, body)

    def _check_body_size(self, body: bytes | None) -> None:
        if body is not None and len(body) > self._policy.max_request_bytes:
            raise HttpRefused(
                f"request body is {len(body)} bytes; max_request_bytes is {self._policy.max_request_bytes}"
            )

    def _placeholder(self, name: str, target: TargetUrl, redactor: Redactor) -> str:
        secret_name = name.lower()
        value = self._secrets(secret_name) if self._secret_allowed(secret_name) else None
        if value is None:
            raise HttpRefused(f"http-request may not use secret placeholder {{{name}}}")
        check_placeholder_host(self._policy, secret_name, target)
        redactor.add(value)
        return value

    def _fill_body(
        self, body: bytes, names: tuple[str, ...], content_type: str, target: TargetUrl, redactor: Redactor
    ) -> bytes:
        """Replace ``{NAME}`` for each opted-in name, escaped so the value cannot break out of its place:
        inside a JSON string (``application/json``, ``*+json``), as a form value
        (``application/x-www-form-urlencoded``), else as raw UTF-8. Every name is checked first, so a
        refused name never leaves a half-filled body behind; the filled body must still fit
        ``max_request_bytes``."""
        values = {name: self._placeholder(name, target, redactor) for name in names}
        for name, value in values.items():
            if content_type == "application/json" or content_type.endswith("+json"):
                encoded = json.dumps(value)[1:-1]
            elif content_type == "application/x-www-form-urlencoded":
                encoded = quote_plus(value)
            else:
                encoded = value
            body = body.replace(f"{{{name}}}".encode("ascii"), encoded.encode("utf-8"))
        self._check_body_size(body)
        return body

    def _credential_value(
        self, rule: CredentialRule, url: TargetUrl, redactor: Redactor, *, required: bool = False
    ) -> str | None:
        """The secret of ``rule``; ``None`` when it is not stored (logged once per rule unless ``optional``), or
        ``HttpRefused`` when ``required`` (a URL placeholder that cannot be left in place)."""
        value = self._secrets(rule.secret_name)
        if value is None:
            if required and not rule.optional:
                raise HttpRefused(f"a credential required for host {url.host} is not configured")
            if not rule.optional and rule.secret_name not in self._skipped:
                self._skipped.add(rule.secret_name)
                logger.warning("channel %s: credential %s is declared but secret %s is not stored: not injected "
                               "(the guest's own value is kept)", self.channel, rule.id or "?", rule.secret_name)
            return None
        redactor.add(value)
        return value

    def _with_credentials(self, hop: Hop, redactor: Redactor) -> tuple[str, list[tuple[str, str]]]:
        """The URL and headers to send: header and query credentials applied over the guest's values (a
        credential whose secret is not stored leaves the guest's value alone)."""
        rules = [r for r in select_credentials(self._policy, hop.url) if r.location != "url_path"]
        resolved = [(r, v) for r in rules if (v := self._credential_value(r, hop.url, redactor)) is not None]
        taken = {r.slot[1] for r, _ in resolved if r.slot[0] == "header"}
        headers = [(n, v) for n, v in hop.headers if n.lower() not in taken]
        query = hop.url.query
        for rule, value in resolved:
            if rule.location == "bearer":
                headers.append(("Authorization", f"Bearer {value}"))
            elif rule.location == "basic":
                encoded = base64.b64encode(f"{rule.username}:{value}".encode()).decode("ascii")
                redactor.add(value, encoded)
                headers.append(("Authorization", f"Basic {encoded}"))
            elif rule.location == "header":
                headers.append((rule.name, rule.prefix + value))
            else:  # query_param: the guest's own values for that name are dropped
                kept = [p for p in query.split("&") if p and _query_name(p) != rule.name]
                kept.append(f"{quote(rule.name, safe='')}={quote(value, safe='')}")
                query = "&".join(kept)
        if any(c in v for _, v in headers for c in "\r\n\0"):
            raise HttpRefused(f"a credential for host {hop.url.host} contains CR, LF or NUL")
        return TargetUrl(hop.url.host, hop.url.path, query).geturl(), headers

    # -- network --------------------------------------------------------------------------------------

    def _send_hops(
        self,
        hop: Hop,
        first: tuple[str, list[tuple[str, str]]],
        redactor: Redactor,
        timeout_ms: int | None,
        deadline: float,
        audit: list[HttpAudit],
    ) -> HttpResult:
        requested = timeout_ms / 1000.0 if timeout_ms else self._policy.timeout_secs
        timeout_s = min(requested, deadline - time.monotonic())
        timeout_text = f"timed out after {max(0, round(timeout_s * 1000))} ms"
        end = time.monotonic() + timeout_s
        for redirects in range(MAX_REDIRECTS + 1):
            started = time.monotonic()
            if redirects == 0:
                url, headers = first
            else:
                try:
                    url, headers = self._with_credentials(hop, redactor)
                except HttpRefused as exc:
                    refused = HttpRefused(redactor.text(str(exc)))
                    shown = redactor.text(hop.url.geturl())
                    audit.append(self._audit(hop.method, shown, False, None, str(refused), started))
                    raise refused from None
            shown_url = redactor.text(url)
            try:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                response = self._egress.fetch(
                    hop.method,
                    url,
                    headers,
                    hop.body,
                    max_response_bytes=self._policy.max_response_bytes,
                    timeout_s=remaining,
                    redact=redactor.text,
                )
            except TimeoutError:
                audit.append(self._audit(hop.method, shown_url, True, None, timeout_text, started))
                raise HttpRefused(timeout_text) from None
            except HttpRefused as exc:
                refused = HttpRefused(redactor.text(str(exc)))
                audit.append(self._audit(hop.method, shown_url, True, None, str(refused), started))
                raise refused from None
            audit.append(self._audit(hop.method, shown_url, True, response.status, None, started))
            following = next_hop(self._policy, hop, response) if response.status in REDIRECT_STATUSES else None
            if following is None:
                try:
                    return guest_response(response, redactor, hop.url.host)
                except HttpRefused as exc:  # withheld: the audit entry of this hop says why
                    audit[-1] = replace(audit[-1], error=str(exc))
                    raise
            if redirects == MAX_REDIRECTS:
                break
            hop = following
        raise HttpRefused(f"too many redirects (more than {MAX_REDIRECTS})")

    def _audit(
        self, method: str, url: str, allowed: bool, status: int | None, error: str | None, started: float
    ) -> HttpAudit:
        if len(url) > _AUDIT_URL_CHARS:
            url = url[:_AUDIT_URL_CHARS] + "..."
        return HttpAudit(method[:16], url, allowed, status, error, time.monotonic() - started)


def _content_type(headers: list[tuple[str, str]]) -> str:
    """The media type of the guest's ``Content-Type`` header, lower-case, without parameters."""
    value = next((v for n, v in headers if n.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower()


def _query_name(pair: str) -> str:
    parsed = parse_qsl(pair, keep_blank_values=True)
    return parsed[0][0] if parsed else pair.split("=", 1)[0]
