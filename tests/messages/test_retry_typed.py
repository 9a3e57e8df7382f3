"""``messages.retry.classify``: a typed send error (world 0.2.0) decides before the platform's HTTP answers; an
unclassified one, or a 0.1.0 string error, is classified from the answers as before."""

from __future__ import annotations

import random

from airlock.errors import GuestReturnedError
from airlock.messages.retry import MAX_RETRY_AFTER_S, MAX_TRIES, PlatformAnswer, classify

RNG = random.Random(7)
BAD_REQUEST = [PlatformAnswer(400)]
OUTAGE = [PlatformAnswer(503)]
SLOW_DOWN = [PlatformAnswer(429, 30.0)]


def test_the_guests_class_beats_the_answers() -> None:
    assert classify(GuestReturnedError("x", "temporary"), BAD_REQUEST, 1, RNG).error_class == "temporary"
    assert classify(GuestReturnedError("x", "permanent"), OUTAGE, 1, RNG).error_class == "permanent"
    assert classify(GuestReturnedError("x", "permanent"), SLOW_DOWN, 1, RNG).error_class == "permanent"
    limited = classify(GuestReturnedError("x", "rate_limited", 4.0), BAD_REQUEST, 1, RNG)
    assert (limited.error_class, limited.delay_s) == ("rate_limited", 4.0)


def test_rate_limits_are_clamped_and_tries_still_end() -> None:
    assert classify(GuestReturnedError("x", "rate_limited", 0.0), [], 1, RNG).delay_s == 1.0
    assert classify(GuestReturnedError("x", "rate_limited", 10**9), [], 1, RNG).delay_s == MAX_RETRY_AFTER_S
    assert classify(GuestReturnedError("x", "temporary"), [], MAX_TRIES, RNG).error_class == "permanent"


def test_unclassified_errors_are_read_from_the_answers() -> None:
    assert classify(GuestReturnedError("x"), BAD_REQUEST, 1, RNG).error_class == "permanent"
    assert classify(GuestReturnedError("x"), OUTAGE, 1, RNG).error_class == "temporary"
    assert classify(GuestReturnedError("x"), SLOW_DOWN, 1, RNG).delay_s == 30.0
