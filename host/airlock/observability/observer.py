"""``CallObserver``: what the host tells metrics and the recent-call rings, from the places things happen.

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
        self.recent = recent if recent is not None else RecentCalls()
        self._in_use = self.metrics.slots_in_use

    def started(self) -> None:
        self._in_use.inc()

    def finished(self) -> None:
        self._in_use.dec()

    def record(self, channel: str, out: CallOutcome) -> None:
        """Count one finished callback and keep its record."""
        m = self.metrics
        outcome = outcome_of(out.error)
        m.child(m.callbacks, channel, out.callback, outcome).inc()
        m.child(m.duration, channel, out.callback).observe(out.elapsed_s)
        if out.stats is not None:
            m.child(m.fuel, channel, out.callback).observe(out.stats.fuel_used)
        state = out.state
        if state is not None:
            for call in state.trace:
                m.child(m.host_calls, channel, call.function, "ok" if call.ok else "error").inc()
                if not call.ok and call.function == "http-request":
                    m.child(m.egress_refusals, channel, egress_reason(call.error or "")).inc()
            self._count_emits(channel, out)
        ctx = context.current()
        self.recent.add(channel, record_of(out, outcome, ctx.trace_id if ctx is not None else None))

    def _count_emits(self, channel: str, out: CallOutcome) -> None:
        assert out.state is not None
        emits = out.state.emits
        buffered = len(emits.messages)
        total = buffered + emits.dropped_over_cap + emits.dropped_too_large
        if not total:
            return
        m = self.metrics
        m.child(m.emitted, channel).inc(total)
        limited = isinstance(out.error, EmitRateLimited)
        drops = (("per_callback_limit", emits.dropped_over_cap), ("too_large", emits.dropped_too_large),
                 ("rate_limit", buffered if limited else 0),
                 ("callback_failed", buffered if not out.ok and not limited else 0))
        for reason, n in drops:
            if n:
                m.child(m.dropped, channel, reason).inc(n)

    def dropped(self, channel: str, reason: str, n: int = 1) -> None:
        """``n`` emitted messages of ``channel`` did not reach the agent (``metrics.DROP_REASONS``)."""
        m = self.metrics
        m.child(m.dropped, channel, reason).inc(n)

    def webhook_refused(self, channel: str, scheme: str, reason: str) -> None:
        """The host's verifier refused a webhook; ``reason`` is the verifier's text (classified here)."""
        m = self.metrics
        m.child(m.webhook_refused, channel, scheme, webhook_reason(reason)).inc()

    def busy(self, channel: str, callback: str) -> None:
        """A callback did not run because the host was busy (503 to the platform)."""
        m = self.metrics
        m.child(m.callbacks, channel, callback, "busy").inc()
        self.recent.count(channel, "busy")
