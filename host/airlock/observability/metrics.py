"""Prometheus metrics of one host (``prometheus-client``; served as ``/metrics`` by ``admin``).

Every metric lives in the host's own ``CollectorRegistry`` (two hosts in one process, as in tests, do not
mix). Label values come from fixed sets: channel names (``^[a-z0-9][a-z0-9_-]{0,62}$``), WIT callback and
host-function names, ``OUTCOMES``, ``observability.reasons``; never from guest text.

Recorded as it happens (``CallObserver``, a few lock-protected increments per callback: the benchmark keeps
the webhook path within 3 % of a host without metrics):

- ``airlock_callbacks_total{channel,callback,outcome}``; ``outcome`` in ``OUTCOMES``
- ``airlock_callback_duration_seconds{channel,callback}`` and ``airlock_callback_fuel{channel,callback}``
- ``airlock_host_calls_total{channel,function,outcome}`` (``ok`` / ``error``) and
  ``airlock_egress_refusals_total{channel,reason}`` (``reasons.EGRESS_REASONS``)
- ``airlock_webhook_refused_total{channel,scheme,reason}`` (``reasons.WEBHOOK_REASONS``)
- ``airlock_messages_emitted_total{channel}``, ``airlock_messages_dropped_total{channel,reason}``
  (``DROP_REASONS``)
- ``airlock_pool_slots_in_use`` (callbacks holding an instance now)

Read at scrape time from the manager (``watch``): ``airlock_channel_active{channel}``,
``airlock_websocket_state{channel,state}`` (1 for the current state), ``airlock_websocket_connections_total``
and ``airlock_websocket_reconnects_total{channel}``, ``airlock_pool_slots`` (the pool's size, 0 without
pooling) and ``airlock_bus_queued``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics import MetricWrapperBase

    from ..channels.manager import ChannelManager

__all__ = ["DROP_REASONS", "DURATION_BUCKETS_S", "FUEL_BUCKETS", "OUTCOMES", "SOCKET_STATES", "Metrics"]

OUTCOMES = ("ok", "guest_error", "timeout", "fuel", "memory", "panic", "host_bug", "busy", "rate_limited")
"""How a callback ended: ``busy`` means it never ran (no free instance slot, or a webhook refused with 503
because the agent lags); ``rate_limited``: it ran but its messages would pass the channel's emit rate, so
nothing was applied (``errors.EmitRateLimited``; the platform or the poller offers the input again)."""
DROP_REASONS = ("per_callback_limit", "too_large", "rate_limit", "callback_failed", "dm_policy")
"""Why an emitted message did not reach the agent from its callback: over ``emit.MAX_PER_CALLBACK``; content
or attachments over the limits; the channel's emit rate (the whole callback was held back, to be offered
again); its callback failed; the host's ``dm_policy`` check."""
SOCKET_STATES = ("not-started", "connecting", "connected", "backoff", "stopped")
DURATION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Callback wall time, seconds: a small Rust guest takes ~0.15 ms, the Python Telegram guest ~3 ms, a call
waiting on the network up to the callback timeout (30 s by default)."""
FUEL_BUCKETS = (1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 1e8, 1e9, 5e9)
"""Fuel (about one unit per wasm instruction) up to the default 5e9 per callback."""


class Metrics:
    """The host's metrics (module docstring). Thread-safe: callbacks end on worker threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.callbacks = Counter("airlock_callbacks", "Guest callbacks by channel, callback and outcome.",
                                 ["channel", "callback", "outcome"], registry=r)
        self.duration = Histogram("airlock_callback_duration_seconds", "Guest callback wall time.",
                                  ["channel", "callback"], buckets=DURATION_BUCKETS_S, registry=r)
        self.fuel = Histogram("airlock_callback_fuel", "Fuel a guest callback used.", ["channel", "callback"],
                              buckets=FUEL_BUCKETS, registry=r)
        self.host_calls = Counter("airlock_host_calls", "Host function calls made by guests.",
                                  ["channel", "function", "outcome"], registry=r)
        self.egress_refusals = Counter("airlock_egress_refusals", "http-request calls refused or failed.",
                                       ["channel", "reason"], registry=r)
        self.webhook_refused = Counter("airlock_webhook_refused", "Webhooks refused by the host's verifier.",
                                       ["channel", "scheme", "reason"], registry=r)
        self.emitted = Counter("airlock_messages_emitted", "Messages guests emitted.", ["channel"], registry=r)
        self.dropped = Counter("airlock_messages_dropped", "Emitted messages that did not reach the agent.",
                               ["channel", "reason"], registry=r)
        self.slots_in_use = Gauge("airlock_pool_slots_in_use", "Callbacks holding an instance now.", registry=r)
        self._children: dict[tuple[str, ...], Any] = {}

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached (``labels`` takes a lock and builds a key on every call)."""
        key = (str(id(metric)), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch(self, manager: ChannelManager, pool_slots: Callable[[], int]) -> None:
        """Report the manager's channels, websockets and queue, and the pool's size, at each scrape."""
        self.registry.register(_ManagerCollector(manager, pool_slots))

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of every metric."""
        return generate_latest(self.registry)


class _ManagerCollector(Collector):
    def __init__(self, manager: ChannelManager, pool_slots: Callable[[], int]) -> None:
        self._manager = manager
        self._pool_slots = pool_slots

    def describe(self) -> list[Any]:
        return []  # collected on demand only: the set of channels changes at run time

    def collect(self) -> Iterator[Any]:
        active = GaugeMetricFamily("airlock_channel_active", "1 if the channel is active.", labels=["channel"])
        state = GaugeMetricFamily("airlock_websocket_state", "1 for the websocket's current state.",
                                  labels=["channel", "state"])
        conns = CounterMetricFamily("airlock_websocket_connections", "Websocket connections opened.",
                                    labels=["channel"])
        again = CounterMetricFamily("airlock_websocket_reconnects", "Websocket connections after the first.",
                                    labels=["channel"])
        for name, slot in list(self._manager.slots.items()):
            active.add_metric([name], 1.0 if slot.active else 0.0)
            if slot.socket is None:
                continue
            status = slot.socket.status
            for s in SOCKET_STATES:
                state.add_metric([name, s], 1.0 if status.state == s else 0.0)
            conns.add_metric([name], float(status.connections))
            again.add_metric([name], float(max(0, status.connections - 1)))
        yield from (active, state, conns, again)
        yield GaugeMetricFamily("airlock_pool_slots", "Instance slots of the pooling allocator (0: no pool).",
                                value=float(self._pool_slots()))
        yield GaugeMetricFamily("airlock_bus_queued", "Messages waiting for the agent.",
                                value=float(self._manager.bus.qsize()))
