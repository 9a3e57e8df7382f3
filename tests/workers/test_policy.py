"""``workers.policy``: the backoff doubles per death within the window, a crash loop after K deaths in T s."""

from __future__ import annotations

from airlock.workers.policy import BACKOFF_MAX_S, CRASH_LOOP_DEATHS, CRASH_WINDOW_S, RestartPolicy


def test_backoff_doubles_then_a_crash_loop_after_k_deaths_within_t() -> None:
    policy = RestartPolicy()
    waits = [policy.died(float(t)) for t in range(CRASH_LOOP_DEATHS)]
    assert waits[:-1] == [0.5, 1.0, 2.0, 4.0]
    assert waits[-1] is None


def test_deaths_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy()
    t = 0.0
    for _ in range(CRASH_LOOP_DEATHS - 1):
        assert policy.died(t) is not None
        t += 1
    # the next death comes after the window: a quiet period, back to the first backoff
    assert policy.died(t + CRASH_WINDOW_S) == 0.5


def test_backoff_is_capped() -> None:
    policy = RestartPolicy(deaths_for_loop=100, window_s=1e9)
    waits = [policy.died(float(t)) for t in range(20)]
    assert max(w for w in waits if w is not None) == BACKOFF_MAX_S
