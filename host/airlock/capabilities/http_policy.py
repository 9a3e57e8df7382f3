"""The HTTP policy of one channel and the pure checks behind the ``http-request`` host function.

Nothing in this module does I/O. It holds:

- the policy dataclasses (``HttpPolicy``, ``AllowRule``, ``CredentialRule``), built by the integrator from
  the ``capabilities.http`` section of a channel's capabilities file (see
  ``/work/shared/spec/capabilities-file.md``);
- ``HttpRefused`` (``airlock.errors``, re-exported), the one error the ``http-request`` host function reports to the
  guest;
- URL parsing (``parse_https_url``, in ``http_url``, re-exported), the allow-list check (``check_allowed``),
  credential selection (``select_credentials``), guest header parsing (``parse_headers_json``), the host binding
  of secret placeholders (``check_placeholder_host``) and the body-placeholder opt-in (``take_body_secret_names``).

Every ``HttpRefused`` raised here carries a message that is safe to hand to the guest: it names only what
the guest itself sent (host, path, method, header names), never a secret value, a host path or a trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from airlock.errors import ConfigError, HttpRefused

from .http_url import MAX_URL_CHARS, TargetUrl, check_path_segments, parse_https_url

__all__ = [
    "ALLOWED_METHODS",
    "BODY_SECRETS_HEADER",
    "HOST_SET_HEADERS",
    "MAX_BODY_PLACEHOLDERS",
    "MAX_GUEST_HEADERS",
    "MAX_URL_CHARS",
    "PLACEHOLDER_RE",
    "AllowRule",
    "CredentialLocation",
    "CredentialRule",
    "HttpPolicy",
    "HttpRefused",
    "TargetUrl",
    "check_allowed",
    "check_path_segments",
    "check_placeholder_host",
    "check_query_placeholder",
    "host_matches",
    "parse_headers_json",
    "parse_https_url",
    "select_credentials",
    "take_body_secret_names",
]


CredentialLocation = Literal["bearer", "basic", "header", "query_param", "url_path"]
_LOCATIONS: frozenset[str] = frozenset({"bearer", "basic", "header", "query_param", "url_path"})

#: Methods a guest may use. CONNECT and TRACE are never allowed (tunnels, header reflection).
ALLOWED_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Headers the host sets itself; a guest-supplied value is dropped. Lower-case.
HOST_SET_HEADERS: frozenset[str] = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "accept-encoding",
    }
)

#: At most this many entries in a guest's ``headers_json``.
MAX_GUEST_HEADERS = 100
#: At most this many characters in a guest's ``headers_json`` (64 KiB).
MAX_HEADERS_JSON_CHARS = 65536

#: A secret placeholder in a URL or header value: ``{UPPER_SNAKE_NAME}`` -> secret ``upper_snake_name``.
PLACEHOLDER_RE = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")

#: Request header (any case) by which a guest names the placeholders the host fills in its request BODY,
#: e.g. ``X-Airlock-Body-Secrets: FEISHU_APP_ID, FEISHU_APP_SECRET``. The host removes it before sending.
#: Bodies are opt-in, unlike URLs and headers, because bodies carry user text: an agent tricked into
#: replying "{DISCORD_BOT_TOKEN}" must not have the host post the token into the chat.
BODY_SECRETS_HEADER = "x-airlock-body-secrets"
#: At most this many names in ``BODY_SECRETS_HEADER``.
MAX_BODY_PLACEHOLDERS = 8
_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class AllowRule:
    """One allow-list entry (``capabilities.http.allowlist[]``).

    ``host``: exact name (case-insensitive) or ``*.example.com`` (any subdomain, not the apex).
    ``path_prefix``: plain string prefix of the request path (``/bot`` allows ``/bot123:abc/getMe``).
    ``methods``: upper-case method names, or ``None`` for every method in ``ALLOWED_METHODS``.
    """

    host: str
    path_prefix: str = "/"
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CredentialRule:
    """One credential the host injects (``capabilities.http.credentials{id: ...}``).

    ``secret_name``: the secret store name whose value is injected.
    ``location``: ``bearer`` (``Authorization: Bearer v``), ``basic`` (``Authorization: Basic
    base64(username:v)``), ``header`` (``name: prefix+v``), ``query_param`` (``name=v`` appended to the
    query) or ``url_path`` (``placeholder`` in the URL replaced by ``v``).
    ``host_patterns``: hosts the rule applies to (same syntax as ``AllowRule.host``).
    ``path_patterns``: if non-empty, path prefixes the rule is limited to.
    ``optional``: if true, a missing secret skips the rule instead of refusing the request.
    ``username`` (basic), ``name`` (header / query_param), ``prefix`` (header), ``placeholder`` (url_path,
    including the braces, e.g. ``{TELEGRAM_BOT_TOKEN}``). ``id`` is the credential's key, for logs only.

    Raises ``ConfigError`` if a location lacks the field it needs.
    """

    secret_name: str
    location: CredentialLocation
    host_patterns: tuple[str, ...]
    path_patterns: tuple[str, ...] = ()
    optional: bool = False
    username: str = ""
    name: str = ""
    prefix: str = ""
    placeholder: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        where = f"credential {self.id or self.secret_name}"
        if self.location not in _LOCATIONS:
            raise ConfigError(f"{where}: unknown location type {self.location!r}")
        if not self.secret_name:
            raise ConfigError(f"{where}: empty secret_name")
        if self.location == "header":
            if not _TOKEN_RE.match(self.name):
                raise ConfigError(f"{where}: header location needs a valid header name")
            if self.name.lower() in HOST_SET_HEADERS:
                raise ConfigError(f"{where}: header {self.name} is set by the host")
        if self.location == "query_param" and not self.name:
            raise ConfigError(f"{where}: query_param location needs a name")
        if self.location == "url_path" and not self.placeholder:
            raise ConfigError(f"{where}: url_path location needs a placeholder")
        if any(c in self.prefix + self.username for c in "\r\n\0"):
            raise ConfigError(f"{where}: control characters in prefix or username")

    @property
    def slot(self) -> tuple[str, str]:
        """What the rule writes: a header, a query parameter or a URL placeholder. One rule per slot wins."""
        if self.location in ("bearer", "basic"):
            return ("header", "authorization")
        if self.location == "header":
            return ("header", self.name.lower())
        if self.location == "query_param":
            return ("query", self.name)
        return ("url_path", self.placeholder)


@dataclass(frozen=True)
class HttpPolicy:
    """A channel's ``capabilities.http`` section, with the spec's defaults.

    ``allowlist``/``credentials``: see ``AllowRule`` / ``CredentialRule``; an empty allow-list refuses all.
    ``requests_per_minute`` / ``requests_per_hour``: sliding-window limits on requests that pass the policy.
    ``max_request_bytes`` (default 1 MiB) bounds the request body; ``max_response_bytes`` (default 10 MiB)
    the (decoded) response body; ``timeout_secs`` (default 30 s) is the request timeout when the guest
    gives none.
    """

    allowlist: tuple[AllowRule, ...] = ()
    credentials: tuple[CredentialRule, ...] = ()
    requests_per_minute: int = 60
    requests_per_hour: int = 1000
    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 10 * 1024 * 1024
    timeout_secs: float = 30.0


def host_matches(pattern: str, host: str) -> bool:
    """``pattern`` is an exact host (case-insensitive) or ``*.suffix`` (subdomains of suffix, not suffix)."""
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def _path_has_prefix(url: TargetUrl, prefix: str) -> bool:
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    # Both the path as sent and its decoding must match, so an escape cannot dodge the prefix.
    return url.path.startswith(prefix) and unquote(url.path).startswith(prefix)


def check_allowed(policy: HttpPolicy, method: str, url: TargetUrl) -> AllowRule:
    """Return the first allow-list rule that admits ``method`` (upper-case) on ``url``.

    Source: ``capabilities.http.allowlist`` (host, path_prefix, methods). Raises ``HttpRefused`` naming the
    first thing that failed: host, then path, then method.
    """
    by_host = [r for r in policy.allowlist if host_matches(r.host, url.host)]
    if not by_host:
        raise HttpRefused(f"host {url.host} is not in the channel's HTTP allow-list")
    by_path = [r for r in by_host if _path_has_prefix(url, r.path_prefix)]
    if not by_path:
        shown = url.path if len(url.path) <= 200 else url.path[:200] + "..."
        raise HttpRefused(f"path {shown} is not allowed for host {url.host}")
    for rule in by_path:
        if rule.methods is None or method in {m.upper() for m in rule.methods}:
            return rule
    raise HttpRefused(f"method {method} is not allowed for host {url.host} on this path")


def _specificity(rule: CredentialRule, url: TargetUrl) -> tuple[int, int, int] | None:
    best: tuple[int, int] | None = None
    for pattern in rule.host_patterns:
        if host_matches(pattern, url.host):
            key = (0 if pattern.startswith("*.") else 1, len(pattern))
            best = key if best is None or key > best else best
    if best is None:
        return None
    path_len = 0
    if rule.path_patterns:
        matching = [len(p) for p in rule.path_patterns if _path_has_prefix(url, p)]
        if not matching:
            return None
        path_len = 1 + max(matching)
    return (best[0], best[1], path_len)


def select_credentials(policy: HttpPolicy, url: TargetUrl) -> list[CredentialRule]:
    """The credential rules that apply to ``url``: one per slot (header name, query parameter, URL
    placeholder), the most specific match winning: exact host beats wildcard, then the longer host pattern,
    then the longer matching path pattern (a rule with path patterns beats one without); ties go to the
    rule declared first. Source: ``capabilities.http.credentials`` ("the most specific match wins")."""
    best: dict[tuple[str, str], tuple[tuple[int, int, int], CredentialRule]] = {}
    for rule in policy.credentials:
        spec = _specificity(rule, url)
        if spec is None:
            continue
        held = best.get(rule.slot)
        if held is None or spec > held[0]:
            best[rule.slot] = (spec, rule)
    return [rule for _, rule in best.values()]


def parse_headers_json(headers_json: str) -> list[tuple[str, str]]:
    """Parse the guest's ``headers_json``: a JSON object of string -> string (an empty string means ``{}``).

    Limits: at most ``MAX_GUEST_HEADERS`` entries and ``MAX_HEADERS_JSON_CHARS`` characters; names must be
    RFC 9110 tokens; values may not contain CR, LF or NUL. Headers in ``HOST_SET_HEADERS`` are dropped (the
    host sets them). Raises ``HttpRefused``.
    """
    if not headers_json.strip():
        return []
    if len(headers_json) > MAX_HEADERS_JSON_CHARS:
        raise HttpRefused(f"headers_json is longer than {MAX_HEADERS_JSON_CHARS} characters")
    try:
        raw = json.loads(headers_json)
    except (ValueError, RecursionError):
        raise HttpRefused("headers_json is not valid JSON") from None
    if not isinstance(raw, dict):
        raise HttpRefused("headers_json must be a JSON object of string to string")
    if len(raw) > MAX_GUEST_HEADERS:
        raise HttpRefused(f"too many headers ({len(raw)}; at most {MAX_GUEST_HEADERS})")
    headers: list[tuple[str, str]] = []
    for name, value in raw.items():
        if not isinstance(value, str):
            raise HttpRefused("headers_json must be a JSON object of string to string")
        if not _TOKEN_RE.match(name):
            raise HttpRefused("invalid header name in headers_json")
        if any(c in value for c in "\r\n\0"):
            raise HttpRefused(f"header {name} contains CR, LF or NUL")
        if name.lower() not in HOST_SET_HEADERS:
            headers.append((name, value))
    return headers


def take_body_secret_names(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    """Split ``BODY_SECRETS_HEADER`` off the guest's headers.

    Returns the remaining headers and the placeholder names listed (comma and/or space separated,
    ``UPPER_SNAKE`` like the placeholders themselves, duplicates dropped, order kept). At most
    ``MAX_BODY_PLACEHOLDERS`` names. Raises ``HttpRefused`` for a malformed name or too many names.
    """
    kept: list[tuple[str, str]] = []
    names: list[str] = []
    for name, value in headers:
        if name.lower() != BODY_SECRETS_HEADER:
            kept.append((name, value))
            continue
        for item in re.split(r"[,\s]+", value.strip()):
            if not item:
                continue
            if not _NAME_RE.match(item) or len(item) > 128:
                raise HttpRefused(f"{BODY_SECRETS_HEADER} lists an invalid placeholder name")
            if item not in names:
                names.append(item)
    if len(names) > MAX_BODY_PLACEHOLDERS:
        raise HttpRefused(f"{BODY_SECRETS_HEADER} lists {len(names)} names; at most {MAX_BODY_PLACEHOLDERS}")
    return kept, tuple(names)


def check_placeholder_host(policy: HttpPolicy, secret_name: str, url: TargetUrl) -> None:
    """A secret that a credential rule binds to hosts (``host_patterns``) may be sent by placeholder only to
    those hosts, even if the allow-list admits others. Secrets named by no credential rule are limited by
    the allow-list alone. Raises ``HttpRefused`` naming the placeholder and the host, never the value."""
    bound = [r for r in policy.credentials if r.secret_name == secret_name]
    if bound and not any(host_matches(p, url.host) for r in bound for p in r.host_patterns):
        raise HttpRefused(f"secret placeholder {{{secret_name.upper()}}} may not be sent to host {url.host}")


def check_query_placeholder(policy: HttpPolicy, secret_name: str, url: TargetUrl) -> None:
    """A secret placeholder in the URL's query string is filled only where the capabilities file puts that
    secret in the query for this host: a ``query_param`` credential naming the secret whose host patterns
    match. Query strings are what upstreams echo, log and redirect with (issue 13: a reflected query
    leaked a token), so a secret bound to headers or the path, or to no credential, stays out of them.
    Raises ``HttpRefused`` naming the placeholder and the host, never the value."""
    for rule in policy.credentials:
        if rule.secret_name == secret_name and rule.location == "query_param" and any(
            host_matches(p, url.host) for p in rule.host_patterns
        ):
            return
    raise HttpRefused(
        f"secret placeholder {{{secret_name.upper()}}} may not be sent in the query string to host {url.host}: "
        "no query_param credential for this host names it"
    )
