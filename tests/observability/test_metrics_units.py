"""The metrics' own arithmetic, read back through prometheus-client's parser: histogram buckets (upper bounds
inclusive, cumulative, +Inf), outcome classification, counts per channel, the in-use gauge."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from airlock.capabilities.workspace import CommitFailed
from airlock.channels.channel import CallOutcome
from airlock.errors import EmitRateLimited, GuestReturnedError, GuestTrap, HostBug, SandboxBusy, StateUnavailable
from airlock.observability import CallObserver, outcome_of
from airlock.observability.metrics import DURATION_BUCKETS_S, OUTCOMES
from airlock.runtime.instance import CallStats


def samples(observer: CallObserver) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = observer.metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    obs = CallObserver()
    for elapsed in (0.0005, 0.0007, 0.001, 60.0):  # on a bound, between two, on the next, above all
        obs.record("c", CallOutcome("on-poll", elapsed_s=elapsed, stats=CallStats(fuel_used=1000, elapsed_s=elapsed)))
    m = samples(obs)

    def bucket(le: str) -> float:
        return m[("airlock_callback_duration_seconds_bucket", (("callback", "on-poll"), ("channel", "c"), ("le", le)))]

    assert [bucket("0.0005"), bucket("0.001"), bucket("30.0"), bucket("+Inf")] == [1, 3, 3, 4]
    assert len(DURATION_BUCKETS_S) + 1 == sum(1 for k in m if k[0] == "airlock_callback_duration_seconds_bucket")
    key = (("callback", "on-poll"), ("channel", "c"))
    assert m[("airlock_callback_duration_seconds_count", key)] == 4
    assert abs(m[("airlock_callback_duration_seconds_sum", key)] - 60.0022) < 1e-9
    assert m[("airlock_callback_fuel_bucket", (*key, ("le", "1000.0")))] == 4


def test_outcomes_and_counts_per_channel() -> None:
    errors = [None, GuestTrap("timeout", "x"), GuestTrap("fuel", "x"), GuestTrap("memory", "x"),
              GuestTrap("panic", "x"), GuestTrap("trap", "x"), GuestReturnedError("x"), HostBug("x"),
              SandboxBusy("x"), EmitRateLimited(1, 5), StateUnavailable("query failed: OperationalError"),
              CommitFailed("x")]
    assert [outcome_of(e) for e in errors] == ["ok", "timeout", "fuel", "memory", "panic", "guest_error",
                                                "guest_error", "host_bug", "busy", "rate_limited", "unavailable",
                                                "unavailable"]
    assert {outcome_of(e) for e in errors} <= set(OUTCOMES)
    obs = CallObserver()
    for e in errors:
        obs.record("a", CallOutcome("on-http-request", error=e))
    obs.record("a", CallOutcome("on-start"))
    obs.record("b", CallOutcome("on-start"))
    obs.busy("a", "on-http-request")
    assert obs.counts("a") == {"ok": 2, "timeout": 1, "fuel": 1, "memory": 1, "panic": 1, "guest_error": 2,
                               "host_bug": 1, "busy": 2, "rate_limited": 1, "unavailable": 2}
    assert obs.counts("b") == {"ok": 1} and obs.counts("nobody") == {}
    assert [e.trap for e in obs.recent.errors("a")][:4] == ["CommitFailed", "StateUnavailable", "EmitRateLimited",
                                                            "SandboxBusy"]


def test_in_use_gauge_under_threads() -> None:
    obs = CallObserver()

    def work() -> None:
        for _ in range(2000):
            obs.started()
            obs.finished()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    obs.started()
    assert samples(obs)[("airlock_pool_slots_in_use", ())] == 1


def test_successes_recorded_only_while_watched_failures_always() -> None:
    obs = CallObserver()
    obs.record("a", CallOutcome("on-poll"))
    obs.record("a", CallOutcome("on-poll", error=HostBug("x")))
    assert [r.outcome for r in obs.recent.calls("a")] == ["host_bug"]
    obs.recent.watch("a")
    obs.record("a", CallOutcome("on-poll"))
    obs.record("b", CallOutcome("on-poll"))  # another channel is not watched
    assert [r.outcome for r in obs.recent.calls("a")] == ["ok", "host_bug"]
    assert obs.recent.calls("b") == [] and obs.counts("b") == {"ok": 1}
    assert obs.counts("a") == {"ok": 2, "host_bug": 1}  # counted whether recorded or not
