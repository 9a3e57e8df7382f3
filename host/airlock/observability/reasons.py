"""Bounded reason labels for metrics, read from the host's own refusal messages.

The messages (``HttpRefused`` from ``capabilities.http``/``http_policy``/``egress``, and the ``Reject.reason`` of
``inbound.verifiers``) carry numbers and names (a host, a skew in seconds), so they cannot be metric labels
as they are: a label's values must be a small fixed set, or every distinct message becomes a new time series.
Each function maps a message to one of its ``*_REASONS`` by the first rule whose words it contains, and to
``"other"`` when none does (tests/observability/test_reasons.py drives each rule with the real message).
"""

from __future__ import annotations

__all__ = ["EGRESS_REASONS", "WEBHOOK_REASONS", "egress_reason", "webhook_reason"]

_EGRESS_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rate-limit", ("rate limit exceeded",)),
    ("private-address", ("non-public address",)),
    ("allowlist", ("allow-list", "is not allowed for host")),
    ("credentials", ("credential", "secret placeholder", "a secret used in header")),
    ("size", ("max_response_bytes", "max_request_bytes")),
    ("timeout", ("timed out",)),
    ("redirects", ("too many redirects",)),
    ("network", ("connection to", "could not resolve host")),
    ("shutdown", ("shut down", "shutting down")),
    ("no-capability", ("no http capability",)),
    ("invalid-request", ("url", "header", "only https", "only the default https port", "method",
                         "credentials (userinfo)")),
)
EGRESS_REASONS: tuple[str, ...] = (*(name for name, _ in _EGRESS_RULES), "other")
"""Label values of ``airlock_egress_refusals_total{reason}``."""

_WEBHOOK_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("replayed", ("replayed",)),
    ("stale", ("(window",)),
    ("secret-missing", ("is not stored", "secret is named", "requires a secret")),
    ("wrong", ("wrong ", "bad ", "does not decrypt", "is not subscribe", "has no meta verification")),
    ("missing", ("no ", "without ", "incomplete ", "has no ")),
    ("malformed", ("is not ", "given ", " bytes, not ")),
)
WEBHOOK_REASONS: tuple[str, ...] = (*(name for name, _ in _WEBHOOK_RULES), "other")
"""Label values of ``airlock_webhook_refused_total{reason}``."""


def _classify(message: str, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    text = message.lower()
    for name, words in rules:
        if any(w in text for w in words):
            return name
    return "other"


def egress_reason(message: str) -> str:
    """The reason label (one of ``EGRESS_REASONS``) of an ``http-request`` refusal message."""
    return _classify(message, _EGRESS_RULES)


def webhook_reason(message: str) -> str:
    """The reason label (one of ``WEBHOOK_REASONS``) of a webhook verifier's ``Reject.reason``."""
    return _classify(message, _WEBHOOK_RULES)
