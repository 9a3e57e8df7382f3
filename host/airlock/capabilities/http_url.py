"""Guest URLs for ``http-request``: parsing and validating an ``https`` URL (or a redirect target) into a
:class:`TargetUrl`. Pure; every refusal is an ``HttpRefused`` whose message names only what the guest sent."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ..errors import HttpRefused

__all__ = ["MAX_URL_CHARS", "TargetUrl", "check_path_segments", "parse_https_url"]

#: At most this many characters in a guest URL (16 KiB).
MAX_URL_CHARS = 16384

_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# Characters left as they are when a guest URL's path or query is re-encoded: printable ASCII except space.
# Everything else (non-ASCII text, space, controls) is percent-encoded as UTF-8; existing escapes stay.
_URL_KEEP = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class TargetUrl:
    """A parsed, validated ``https`` URL: lower-case ASCII ``host`` (IPv6 without brackets, no trailing
    dot), percent-encoded ``path`` (starts with ``/``) and ``query`` (without ``?``). Port is always 443;
    the fragment is dropped."""

    host: str
    path: str
    query: str = ""

    def geturl(self) -> str:
        """The URL as it is sent: ``https://host/path?query``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}{self.path}" + (f"?{self.query}" if self.query else "")


def parse_https_url(url: str) -> TargetUrl:
    """Parse and validate a guest URL (or a redirect target).

    Rules (spec: "HTTPS only"; hardening against allow-list bypasses): scheme ``https``; no userinfo; port
    absent or 443; a valid DNS name (IDNA-encoded) or IP literal; at most ``MAX_URL_CHARS`` characters; no
    space, control character or backslash; no ``.`` or ``..`` path segment, literal or percent-encoded
    (``%2e%2e``, ``%252e%252e``, ``..%2f``). Non-ASCII text in the path and query is percent-encoded.

    Raises ``HttpRefused``.
    """
    if len(url) > MAX_URL_CHARS:
        raise HttpRefused(f"URL is longer than {MAX_URL_CHARS} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise HttpRefused("URL contains whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise HttpRefused("URL cannot be parsed") from None
    if parts.scheme.lower() != "https":
        raise HttpRefused("only https URLs are allowed")
    if "@" in parts.netloc:
        raise HttpRefused("credentials (userinfo) in the URL are not allowed")
    try:
        port = parts.port
    except ValueError:
        raise HttpRefused("URL has an invalid port") from None
    if port not in (None, 443):
        raise HttpRefused("only the default https port (443) is allowed")
    host = _normalize_host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
    path = quote(parts.path or "/", safe=_URL_KEEP)
    if not path.startswith("/"):
        raise HttpRefused("URL path must start with /")
    check_path_segments(path)
    return TargetUrl(host=host, path=path, query=quote(parts.query, safe=_URL_KEEP))


def _normalize_host(host: str, *, bracketed: bool) -> str:
    if not host:
        raise HttpRefused("URL has no host")
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise HttpRefused("URL has an invalid IPv6 host") from None
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise HttpRefused("URL has an invalid host name") from None
    host = host.lower()
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise HttpRefused("URL has an invalid host name")
    return host


def check_path_segments(path: str) -> None:
    """Refuse ``.``/``..`` segments in ``path`` or in any of up to three percent-decodings of it."""
    current = path
    for _ in range(4):
        if "\\" in current or any(seg in (".", "..") for seg in current.split("/")):
            raise HttpRefused("URL path may not contain '.' or '..' segments (plain or percent-encoded)")
        decoded = unquote(current)
        if decoded == current:
            return
        current = decoded
    raise HttpRefused("URL path is percent-encoded too many times")
