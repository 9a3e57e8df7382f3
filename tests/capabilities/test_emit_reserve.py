"""EmitLimiter.reserve: a callback's messages fit all together or not at all (issue 13, "accepted, then
dropped"), with an injected clock."""

from __future__ import annotations

from airlock.capabilities.emit import EmitLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reserve_is_all_or_nothing_and_says_how_long_to_wait() -> None:
    clock = Clock()
    lim = EmitLimiter("c", per_minute=3, per_hour=100, clock=clock)
    assert lim.reserve(2) == 0.0
    clock.now += 10
    assert lim.reserve(2) == 50.0  # only 1 left in the minute: nothing counted, wait for the oldest to leave
    assert lim.refused == 2
    assert lim.reserve(1) == 0.0  # the refused batch took nothing
    clock.now += 50
    assert lim.reserve(2) == 0.0


def test_reserve_zero_always_fits_and_release_gives_back() -> None:
    clock = Clock()
    lim = EmitLimiter("c", per_minute=2, per_hour=100, clock=clock)
    assert lim.reserve(2) == 0.0
    assert lim.reserve(0) == 0.0
    assert lim.reserve(1) > 0
    lim.release(2)
    assert lim.reserve(2) == 0.0


def test_a_batch_over_the_whole_limit_fits_only_an_empty_window() -> None:
    clock = Clock()
    lim = EmitLimiter("c", per_minute=3, per_hour=100, clock=clock)
    assert lim.reserve(5) == 0.0  # never refused forever
    assert lim.reserve(1) >= 1.0
    clock.now += 60
    assert lim.reserve(1) == 0.0


def test_the_hour_window_counts_too() -> None:
    clock = Clock()
    lim = EmitLimiter("c", per_minute=100, per_hour=4, clock=clock)
    assert lim.reserve(4) == 0.0
    clock.now += 120
    wait = lim.reserve(1)
    assert 3400 < wait <= 3480
