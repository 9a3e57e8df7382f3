"""``CallObserver``: what the host tells metrics and the recent-call rings, from the places things happen.

Cheap on purpose (it runs once per callback, on the webhook path): one lock and a few dictionary updates; a
record for the recent-call ring only for a failure or a watched channel (``recent``); labels are classified
and metric families built only at scrape time.

``Channel`` calls ``started``/``finished`` around every sandbox run (the pool-slot gauge) and ``record`` for
every callback that ended (not for an inline attempt that was dropped or is still pending:
``channels.channel``); the webhook server calls ``webhook_refused`` and ``busy``. Messages the log did not admit
(``dm_policy``, redeliveries) are the callback's emitted messages minus those it appended. ``HostConfig.metrics``
false gives the host no observer at all (the benchmark's "metrics off").
"""

from __future__ import annotations

from bisect import bisect_left
from time import monotonic
from typing import TYPE_CHECKING

from ..capabilities.workspace import CommitFailed
from ..errors import EmitRateLimited, GuestTrap, HostBug, SandboxBusy, StateUnavailable
from . import context
from .metrics import DURATION_BUCKETS_S, FUEL_BUCKETS, ChannelStats, Metrics
from .reasons import egress_reason, webhook_reason
from .recent import RecentCalls, record_of

if TYPE_CHECKING:
    from ..channels.channel import CallOutcome
    from ..errors import AirlockError

__all__ = ["CallObserver", "outcome_of"]

_TRAP_OUTCOMES = {"timeout": "timeout", "fuel": "fuel", "memory": "memory", "panic": "panic"}


def outcome_of(error: AirlockError | None) -> str:
    """The ``metrics.OUTCOMES`` value of a callback that ended with ``error`` (None: ``ok``). A trap of kind
    ``trap`` (any other wasm trap), a returned error and any other guest fault are ``guest_error``."""
    if error is None:
        return "ok"
    if isinstance(error, GuestTrap):
        return _TRAP_OUTCOMES.get(error.kind, "guest_error")
    if isinstance(error, HostBug):
        return "host_bug"
    if isinstance(error, SandboxBusy):
        return "busy"
    if isinstance(error, EmitRateLimited):
        return "rate_limited"
    if isinstance(error, StateUnavailable | CommitFailed):
        return "unavailable"
    return "guest_error"


class CallObserver:
    """Feeds ``metrics`` and ``recent`` (module docstring). Thread-safe."""

    def __init__(self, metrics: Metrics | None = None, recent: RecentCalls | None = None) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.recent = recent if recent is not None else RecentCalls(lock=self.metrics.lock)
        if self.recent.lock is not self.metrics.lock:
            raise ValueError("the recent-call rings must share the metrics' lock")
        self.started = self.metrics.started
        """Count an instance taken (a sandbox run begins)."""
        self.finished = self.metrics.finished
        """Count an instance given back."""

    def _stats(self, channel: str) -> ChannelStats:
        return self.metrics.channel(channel, lambda: self.recent.ring(channel))

    def record(self, channel: str, out: CallOutcome) -> None:
        """Count one finished callback and keep its record (one lock, a few dictionary updates)."""
        error = out.error
        outcome = "ok" if error is None else outcome_of(error)
        state, stats, elapsed = out.state, out.stats, out.elapsed_s
        m = self.metrics
        with m.lock:
            ch = m.channels.get(channel) or self._stats(channel)
            cell = ch.cells.get(out.callback) or ch.cell(out.callback)
            outcomes = cell.outcomes
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            cell.duration[bisect_left(DURATION_BUCKETS_S, elapsed)] += 1
            cell.duration_sum += elapsed
            if stats is not None:
                cell.fuel[bisect_left(FUEL_BUCKETS, stats.fuel_used)] += 1
                cell.fuel_sum += stats.fuel_used
            if state is not None:
                calls = ch.host_calls
                for call in state.trace:
                    key = (call.function, call.ok)
                    calls[key] = calls.get(key, 0) + 1
                    if not call.ok and call.function == "http-request":
                        reason = egress_reason(call.error or "")
                        ch.egress[reason] = ch.egress.get(reason, 0) + 1
                emits = state.emits
                emitted = len(emits.messages) + emits.dropped_over_cap + emits.dropped_too_large
                if emitted:
                    ch.emitted += emitted
                    if error is not None or emits.dropped_over_cap or emits.dropped_too_large or \
                            len(out.messages) < len(emits.messages):
                        _count_drops(ch, out)
            ring = ch.ring
            if error is not None or ring.watched_until > monotonic():  # recent.py: what is recorded
                ctx = context.current()
                ring.add(record_of(out, outcome, ctx.trace_id if ctx is not None else None))

    def counts(self, channel: str) -> dict[str, int]:
        """``channel``'s callbacks by outcome since start (``metrics.OUTCOMES`` values)."""
        out: dict[str, int] = {}
        with self.metrics.lock:
            stats = self.metrics.channels.get(channel)
            for cell in stats.cells.values() if stats is not None else ():
                for outcome, n in cell.outcomes.items():
                    out[outcome] = out.get(outcome, 0) + n
        return out

    def webhook_refused(self, channel: str, scheme: str, reason: str) -> None:
        """The host's verifier refused a webhook; ``reason`` is the verifier's text (classified here)."""
        label = webhook_reason(reason)
        with self.metrics.lock:
            refused = self._stats(channel).refused
            refused[(scheme, label)] = refused.get((scheme, label), 0) + 1

    def busy(self, channel: str, callback: str) -> None:
        """A callback did not run because the host was busy (503 to the platform)."""
        with self.metrics.lock:
            _add(self._stats(channel).cell(callback).outcomes, "busy")


def _count_drops(ch: ChannelStats, out: CallOutcome) -> None:
    """Emitted messages of ``out`` that did not reach the agent, by reason (``metrics.DROP_REASONS``)."""
    assert out.state is not None
    emits = out.state.emits
    buffered = len(emits.messages)
    limited = isinstance(out.error, EmitRateLimited)
    for reason, n in (("per_callback_limit", emits.dropped_over_cap), ("too_large", emits.dropped_too_large),
                      ("rate_limit", buffered if limited else 0),
                      ("callback_failed", buffered if out.error is not None and not limited else 0),
                      ("not_admitted", buffered - len(out.messages) if out.error is None else 0)):
        if n:
            _add(ch.dropped, reason, n)


def _add(table: dict[str, int], key: str, n: int = 1) -> None:
    table[key] = table.get(key, 0) + n
