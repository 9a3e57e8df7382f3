"""``CallObserver``: what the host tells metrics and the recent-call rings, from the places things happen.

Cheap on purpose (it runs once per callback, on the webhook path): one lock, a few dictionary updates, one
tuple for the recent-call ring; labels are classified and metric families built only at scrape time.

``Channel`` calls ``started``/``finished`` around every sandbox run (the pool-slot gauge) and ``record`` for
every callback that ended (not for an inline attempt that was dropped or is still pending:
``channels.channel``); the webhook server calls ``webhook_refused`` and ``busy``; the manager calls ``dropped``
when its ``dm_policy`` check refuses a message. ``HostConfig.metrics`` false gives the host no observer at all
(the benchmark's "metrics off").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import EmitRateLimited, GuestTrap, HostBug, SandboxBusy
from . import context
from .metrics import Metrics
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
    return "guest_error"


class CallObserver:
    """Feeds ``metrics`` and ``recent`` (module docstring). Thread-safe."""

    def __init__(self, metrics: Metrics | None = None, recent: RecentCalls | None = None) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.recent = recent if recent is not None else RecentCalls(lock=self.metrics.lock)
        self.started = self.metrics.started
        """Count an instance taken (a sandbox run begins)."""
        self.finished = self.metrics.finished
        """Count an instance given back."""

    def record(self, channel: str, out: CallOutcome) -> None:
        """Count one finished callback and keep its record."""
        m = self.metrics
        outcome = outcome_of(out.error)
        state = out.state
        stats = out.stats
        ctx = context.current()
        rec = record_of(out, outcome, ctx.trace_id if ctx is not None else None)
        with m.lock:
            m.cell(channel, out.callback).count(outcome, out.elapsed_s, stats.fuel_used if stats is not None else None)
            if state is not None:
                calls = m.host_calls
                for call in state.trace:
                    key = (channel, call.function, "ok" if call.ok else "error")
                    calls[key] = calls.get(key, 0) + 1
                    if not call.ok and call.function == "http-request":
                        _add(m.egress_refusals, (channel, egress_reason(call.error or "")))
                emits = state.emits
                if emits.messages or emits.dropped_over_cap or emits.dropped_too_large:
                    self._count_emits(channel, out)
            if self.recent.lock is m.lock:
                self.recent.add_locked(channel, rec)
        if self.recent.lock is not m.lock:
            self.recent.add(channel, rec)

    def _count_emits(self, channel: str, out: CallOutcome) -> None:
        assert out.state is not None
        emits = out.state.emits
        buffered = len(emits.messages)
        m = self.metrics
        _add(m.emitted, (channel,), buffered + emits.dropped_over_cap + emits.dropped_too_large)
        if out.error is None and not emits.dropped_over_cap and not emits.dropped_too_large:
            return
        limited = isinstance(out.error, EmitRateLimited)
        drops = (("per_callback_limit", emits.dropped_over_cap), ("too_large", emits.dropped_too_large),
                 ("rate_limit", buffered if limited else 0),
                 ("callback_failed", buffered if out.error is not None and not limited else 0))
        for reason, n in drops:
            if n:
                _add(m.dropped, (channel, reason), n)

    def counts(self, channel: str) -> dict[str, int]:
        """``channel``'s callbacks by outcome since start (``metrics.OUTCOMES`` values)."""
        m = self.metrics
        out: dict[str, int] = {}
        with m.lock:
            for (name, _callback), cell in m.cells.items():
                if name == channel:
                    for outcome, n in cell.outcomes.items():
                        out[outcome] = out.get(outcome, 0) + n
        return out

    def dropped(self, channel: str, reason: str, n: int = 1) -> None:
        """``n`` emitted messages of ``channel`` did not reach the agent (``metrics.DROP_REASONS``)."""
        m = self.metrics
        with m.lock:
            _add(m.dropped, (channel, reason), n)

    def webhook_refused(self, channel: str, scheme: str, reason: str) -> None:
        """The host's verifier refused a webhook; ``reason`` is the verifier's text (classified here)."""
        m = self.metrics
        with m.lock:
            _add(m.webhook_refused, (channel, scheme, webhook_reason(reason)))

    def busy(self, channel: str, callback: str) -> None:
        """A callback did not run because the host was busy (503 to the platform)."""
        m = self.metrics
        with m.lock:
            cell = m.cell(channel, callback)
            cell.outcomes["busy"] = cell.outcomes.get("busy", 0) + 1


def _add(table: dict[tuple[str, ...], int], key: tuple[str, ...], n: int = 1) -> None:
    table[key] = table.get(key, 0) + n
