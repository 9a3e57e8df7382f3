"""Same-host redirects of a guest's ``http-request``: which 3xx answers are followed, and the request that follows.

``HttpCapability`` sends each hop (with credentials re-applied and the hop audited) and stops after
``MAX_REDIRECTS``; this module only decides the next hop from the policy and the response. Apart from ``http``
because it is the one rule of step 5 that reads a response rather than the guest's request: a redirect to
another host, or to a method and URL the allow-list refuses, is not followed but returned to the guest as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from .egress import EgressResponse
from .http_policy import HttpPolicy, HttpRefused, TargetUrl, check_allowed, parse_https_url

#: The statuses that may be followed (with a ``Location`` on the same host).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Hop:
    """One request to send: ``headers`` are the guest's after placeholder substitution, before credentials."""

    method: str
    url: TargetUrl
    headers: list[tuple[str, str]]
    body: bytes | None


def next_hop(policy: HttpPolicy, hop: Hop, response: EgressResponse) -> Hop | None:
    """The request that follows ``response`` (a 3xx to ``hop``): the same-host redirect target, or ``None`` if the
    3xx goes back to the guest unfollowed (no or bad ``Location``, another host, or a method and URL the
    allow-list refuses). 303 (not for HEAD), and 301/302 after a POST, become a GET without body or
    ``Content-Type``, as browsers do (RFC 9110, 15.4.2-15.4.4); 307 and 308 keep the method and body."""
    location = next((v for n, v in response.headers if n.lower() == "location"), None)
    if location is None:
        return None
    try:
        target = parse_https_url(urljoin(hop.url.geturl(), location))
    except HttpRefused:
        return None
    if target.host != hop.url.host:
        return None
    method, body, headers = hop.method, hop.body, hop.headers
    to_get = response.status == 303 and method != "HEAD"
    if to_get or (response.status in (301, 302) and method == "POST"):
        method, body = "GET", None
        headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
    try:
        check_allowed(policy, method, target)
    except HttpRefused:
        return None
    return Hop(method, target, headers, body)
