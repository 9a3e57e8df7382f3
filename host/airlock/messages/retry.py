"""How a failed outbound callback is retried: the error class, taken from what the platform answered.

The host watches every HTTP answer a guest receives during ``on-respond`` / ``on-broadcast`` / ``on-status``
(``channels.callstate``) and classifies a failed callback by them:

- a 429 (or a ``retry_after`` hint) -> ``rate_limited``: wait the platform's ``Retry-After`` header or
  ``retry_after`` in the JSON body (Telegram: ``parameters.retry_after``, Discord: ``retry_after``), at least 1 s;
- a 5xx, a 408, a timeout or a connection error, or a guest trap with no answer at all -> ``temporary``:
  exponential backoff with jitter, 500 ms x 2^n capped at 30 s (``backoff``);
- any other 4xx -> ``permanent``: no retry (a dead letter).
A guest error with no platform answer (e.g. the reply's metadata is unusable) is permanent: trying again would
fail the same way; a trap, a busy sandbox or a channel that is not active is temporary. A callback gets
:data:`MAX_TRIES` tries in all, then it is a dead letter.

A typed error from Airlock's world 0.2.0 (``delivery`` / ``edits`` / ``reactions`` return ``send-error``; the
guest knows the platform's error codes best) takes precedence over all of the above: ``rate-limited`` waits the
guest's seconds (at least 1 s, at most :data:`MAX_RETRY_AFTER_S`), ``temporary`` backs off, ``permanent`` stops.
Its ``unclassified`` case, and every 0.1.0 / ``near:agent`` string error, are classified from the answers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import AirlockError, ConfigError, GuestReturnedError, GuestTrap, SandboxBusy

ErrorClass = Literal["rate_limited", "temporary", "permanent"]

MAX_TRIES = 6
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_RETRY_AFTER_S = 3600.0
"""A platform's Retry-After above this (one hour) is clamped: a bad hint must not park a reply for days."""


@dataclass(frozen=True)
class PlatformAnswer:
    """One HTTP exchange the guest made: ``status`` (None when no answer came: timeout, connection error) and the
    platform's retry hint in seconds, if any."""

    status: int | None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Verdict:
    """``error_class`` and, for retryable classes, ``delay_s`` before the next try."""

    error_class: ErrorClass
    delay_s: float = 0.0


def retry_hint(status: int, headers: dict[str, str], body: bytes) -> float | None:
    """The platform's own wait hint in seconds: the ``Retry-After`` header (seconds form) or ``retry_after`` /
    ``parameters.retry_after`` in a JSON body; None when there is none (or it is not a number >= 0)."""
    for name, header in headers.items():
        if name.lower() == "retry-after":
            hint = _seconds(header)
            if hint is not None:
                return hint
    if status != 429 and status < 500:
        return None
    try:
        doc = json.loads(body[:65536]) if body[:1] in (b"{", b" ") else None
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    params = doc.get("parameters")
    for value in (doc.get("retry_after"), params.get("retry_after") if isinstance(params, dict) else None):
        hint = _seconds(value)
        if hint is not None:
            return hint
    return None


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


def classify(error: AirlockError, answers: Sequence[PlatformAnswer], tries: int,
             rng: random.Random | None = None) -> Verdict:
    """The verdict for a failed callback after ``tries`` tries (1 for the first failure). Tries used up ->
    ``permanent``."""
    rng = rng or random.Random()
    verdict = _by_guest(error, tries, rng) or _by_answers(error, answers, tries, rng)
    if verdict.error_class != "permanent" and tries >= MAX_TRIES:
        return Verdict("permanent")
    return verdict


def _by_guest(error: AirlockError, tries: int, rng: random.Random) -> Verdict | None:
    """The verdict of a typed send error (world 0.2.0), or None when the guest did not classify its error."""
    if not isinstance(error, GuestReturnedError) or error.send_class is None:
        return None
    if error.send_class == "rate_limited":
        return Verdict("rate_limited", min(max(error.retry_after_s or 1.0, 1.0), MAX_RETRY_AFTER_S))
    if error.send_class == "temporary":
        return Verdict("temporary", backoff(tries, rng))
    return Verdict("permanent")


def _by_answers(error: AirlockError, answers: Sequence[PlatformAnswer], tries: int, rng: random.Random) -> Verdict:
    hints = [a.retry_after_s for a in answers if a.retry_after_s is not None]
    if any(a.status == 429 for a in answers) or hints:
        return Verdict("rate_limited", min(max(max(hints, default=1.0), 1.0), MAX_RETRY_AFTER_S))
    last = answers[-1] if answers else None
    if last is not None and (last.status is None or last.status >= 500 or last.status == 408):
        return Verdict("temporary", backoff(tries, rng))
    if last is not None and last.status is not None and 400 <= last.status < 500:
        return Verdict("permanent")
    if isinstance(error, GuestTrap | SandboxBusy | ConfigError):
        # a trap, no sandbox slot, or the channel not active (yet): the platform saw nothing, worth another try
        return Verdict("temporary", backoff(tries, rng))
    return Verdict("permanent")


def backoff(tries: int, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": d = min(cap, base x 2^(tries-1)), then uniform in [d/2, d], so
    retries of many replies spread out yet each still waits at least half its step."""
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** max(tries - 1, 0)))
    return rng.uniform(step / 2, step)
