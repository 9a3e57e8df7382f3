"""``InlineGuard``: the per-channel switch that keeps inline attempts on the event loop rare when they abort."""

from __future__ import annotations

from airlock.channels import inline
from airlock.channels.channel import INLINE_DEADLINE
from airlock.channels.inline import InlineGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_completed_attempts_keep_inline_on_and_are_counted() -> None:
    guard = InlineGuard(clock=Clock())
    for _ in range(100):
        assert guard.should_try()
        guard.record(None)
    assert (guard.hits, guard.trips, dict(guard.aborts)) == (100, 0, {})


def test_mostly_aborting_channel_is_switched_off_then_retried_after_the_cooldown() -> None:
    clock = Clock()
    guard = InlineGuard(clock=clock)
    for _ in range(inline.MIN_SAMPLES - 1):  # below MIN_SAMPLES the ratio does not count yet
        guard.record("http-request")
        assert guard.should_try()
    guard.record("http-request")
    assert not guard.should_try() and guard.trips == 1
    assert guard.as_dict()["off_for_s"] == inline.COOLDOWN_S
    clock.now += inline.COOLDOWN_S - 0.1
    assert not guard.should_try()
    clock.now += 0.2
    assert guard.should_try()
    assert guard.aborts["http-request"] == inline.MIN_SAMPLES


def test_abort_ratio_threshold_is_more_than_half() -> None:
    guard = InlineGuard(clock=Clock())
    for i in range(inline.WINDOW):  # alternate: exactly half abort, never more
        guard.record("pairing-upsert-request" if i % 2 else None)
    assert guard.trips == 0 and guard.should_try()
    guard.record("pairing-upsert-request")  # 17 of the last 32
    assert guard.trips == 1 and not guard.should_try()


def test_deadline_hits_trip_sooner_and_cooldown_doubles_up_to_the_cap() -> None:
    clock = Clock()
    guard = InlineGuard(clock=clock)
    cooldowns = []
    for _ in range(8):
        for _ in range(inline.MAX_DEADLINE_HITS):
            assert guard.should_try()
            guard.record(INLINE_DEADLINE)
        cooldowns.append(guard.off_for_s)
        clock.now += guard.off_for_s + 0.01
    assert cooldowns[:3] == [inline.COOLDOWN_S, 2 * inline.COOLDOWN_S, 4 * inline.COOLDOWN_S]
    assert cooldowns[-1] == inline.MAX_COOLDOWN_S
    assert guard.trips == 8


def test_a_healthy_full_window_resets_the_cooldown() -> None:
    clock = Clock()
    guard = InlineGuard(clock=clock)
    for _ in range(2):
        for _ in range(inline.MAX_DEADLINE_HITS):
            guard.record(INLINE_DEADLINE)
        clock.now += guard.off_for_s + 0.01
    for _ in range(inline.WINDOW):
        guard.record(None)
    for _ in range(inline.MAX_DEADLINE_HITS):
        guard.record(INLINE_DEADLINE)
    assert guard.off_for_s == inline.COOLDOWN_S


def test_switched_off_by_the_host_never_tries() -> None:
    guard = InlineGuard(enabled=False)
    assert not guard.should_try()
    assert guard.as_dict()["enabled"] is False


def warm(guard: InlineGuard) -> InlineGuard:
    """Past the channel's first attempts, which are never judged slow."""
    for _ in range(inline.WARMUP_ATTEMPTS):
        guard.record(None, cpu_s=inline.SLOW_S / 10)
    return guard


def test_mostly_slow_inline_runs_switch_inline_off() -> None:
    guard = warm(InlineGuard(clock=Clock()))
    slow = inline.WINDOW // 2 + 1  # more than half of the window (which holds the warm-up's fast ones)
    for _ in range(slow):
        assert guard.should_try()
        guard.record(None, cpu_s=inline.SLOW_S * 3)
    assert (guard.hits, guard.slow, guard.trips) == (inline.WARMUP_ATTEMPTS + slow, slow, 1)
    assert not guard.should_try()
    fast = warm(InlineGuard(clock=Clock()))
    for i in range(inline.WINDOW):  # an occasional slow run (a preempted one) changes nothing
        fast.record(None, cpu_s=inline.SLOW_S * 3 if i % 4 == 0 else inline.SLOW_S / 10)
    assert fast.trips == 0 and fast.should_try()


def test_slow_means_cpu_time_over_slow_s() -> None:
    guard = warm(InlineGuard(clock=Clock()))
    for _ in range(inline.WINDOW):
        guard.record(None, cpu_s=inline.SLOW_S / 2)
    assert (guard.slow, guard.trips) == (0, 0)
    for _ in range(inline.WINDOW // 2 + 1):
        guard.record(None, cpu_s=inline.SLOW_S * 2)
    assert guard.slow == inline.WINDOW // 2 + 1 and guard.trips == 1


def test_a_deadline_hit_that_barely_ran_was_descheduled_not_a_deadline_hit() -> None:
    guard = InlineGuard(clock=Clock())
    for _ in range(inline.MAX_DEADLINE_HITS + 1):  # each used little CPU: the machine was busy, not the guest
        guard.record(INLINE_DEADLINE, cpu_s=inline.PREEMPTED_CPU_S / 10)
    assert guard.trips == 0 and guard.aborts[INLINE_DEADLINE] == inline.MAX_DEADLINE_HITS + 1
    for _ in range(inline.MIN_SAMPLES):  # still aborts: a window of mostly those switches inline off
        guard.record(INLINE_DEADLINE, cpu_s=0.0)
    assert guard.trips == 1


def test_a_deadline_hit_that_ran_the_whole_time_counts_as_one() -> None:
    guard = InlineGuard(clock=Clock())
    for _ in range(inline.MAX_DEADLINE_HITS):
        guard.record(INLINE_DEADLINE, cpu_s=inline.PREEMPTED_CPU_S * 2)
    assert guard.trips == 1


def test_a_cold_channel_s_first_attempts_are_not_judged_slow() -> None:
    guard = InlineGuard(clock=Clock())
    for _ in range(inline.WARMUP_ATTEMPTS):  # a freshly loaded guest: its first runs are slow
        guard.record(None, cpu_s=inline.SLOW_S * 3)
    assert (guard.hits, guard.slow, guard.trips) == (inline.WARMUP_ATTEMPTS, 0, 0) and guard.should_try()
    for _ in range(inline.WINDOW // 2 + 1):  # after that, slow runs count again
        guard.record(None, cpu_s=inline.SLOW_S * 3)
    assert guard.slow == inline.WINDOW // 2 + 1 and guard.trips == 1
