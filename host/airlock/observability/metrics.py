"""Prometheus metrics of one host (``prometheus-client``; served as ``/metrics`` by ``admin``).

Every metric lives in the host's own ``CollectorRegistry`` (two hosts in one process, as in tests, do not
mix). Label values come from fixed sets: channel names (``^[a-z0-9][a-z0-9_-]{0,62}$``), WIT callback and
host-function names, ``OUTCOMES``, ``DROP_REASONS``, ``observability.reasons``; never from guest text.

Counted as things happen (``CallObserver``) into plain dictionaries under one lock, and turned into metric
families only when ``/metrics`` is scraped: prometheus-client's own counters and histograms take a lock and a
label lookup per increment, about 15 us per callback in all, 5 % of a small guest's webhook (``make bench``
keeps the webhook path with metrics within 3 % of a host without them):

- ``airlock_callbacks_total{channel,callback,outcome}``; ``outcome`` in ``OUTCOMES``
- ``airlock_callback_duration_seconds{channel,callback}`` and ``airlock_callback_fuel{channel,callback}``
- ``airlock_host_calls_total{channel,function,outcome}`` (``ok`` / ``error``) and
  ``airlock_egress_refusals_total{channel,reason}`` (``reasons.EGRESS_REASONS``)
- ``airlock_webhook_refused_total{channel,scheme,reason}`` (``reasons.WEBHOOK_REASONS``)
- ``airlock_messages_emitted_total{channel}``, ``airlock_messages_dropped_total{channel,reason}``
- ``airlock_pool_slots_in_use`` (callbacks holding an instance now)

Under ``airlock serve --workers N`` each worker copies these into prometheus-client's multiprocess files and worker
0's ``/metrics`` adds up every worker's (``observability.multiproc``). Read from the manager at scrape time
(``watch``): ``airlock_channel_active{channel}``,
``airlock_websocket_state{channel,state}`` (1 for the current state), ``airlock_websocket_connections_total``
and ``airlock_websocket_reconnects_total{channel}``, ``airlock_pool_slots`` (the pool's size, 0 without
pooling) and ``airlock_bus_queued``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..errors import StateUnavailable

if TYPE_CHECKING:
    from ..channels.manager import ChannelManager

__all__ = ["DROP_REASONS", "DURATION_BUCKETS_S", "FUEL_BUCKETS", "OUTCOMES", "SOCKET_STATES", "Metrics"]

OUTCOMES = ("ok", "guest_error", "timeout", "fuel", "memory", "panic", "host_bug", "busy", "rate_limited",
            "unavailable")
"""How a callback ended: ``busy`` means it never ran (no free instance slot, or a webhook refused with 503
because the agent lags); ``rate_limited``: it ran but its messages would pass the channel's emit rate, so
nothing was applied (``errors.EmitRateLimited``; the platform or the poller offers the input again); ``unavailable``:
it ran but the message log could not store what it did (the state database unreachable, ``errors.StateUnavailable``,
or another storage failure, ``CommitFailed``), so nothing was applied."""
DROP_REASONS = ("per_callback_limit", "too_large", "rate_limit", "callback_failed", "not_admitted")
"""Why an emitted message did not reach the agent from its callback: over ``emit.MAX_PER_CALLBACK``; content
or attachments over the limits; the channel's emit rate (the whole callback was held back, to be offered
again); its callback failed; not admitted to the message log (the host's ``dm_policy`` check, or a redelivery
the log already holds: ``messages.inbound``)."""
SOCKET_STATES = ("not-started", "connecting", "connected", "backoff", "stopped")
DURATION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Callback wall time, seconds: a small Rust guest takes ~0.15 ms, the Python Telegram guest ~3 ms, a call
waiting on the network up to the callback timeout (30 s by default)."""
FUEL_BUCKETS = (1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 1e8, 1e9, 5e9)
"""Fuel (about one unit per wasm instruction) up to the default 5e9 per callback."""

class Cell:
    """One channel's one callback: outcome counts, and the duration and fuel histograms (counts per bucket,
    not cumulative, the last slot above every bound, and the sums)."""

    __slots__ = ("duration", "duration_sum", "fuel", "fuel_sum", "outcomes")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.duration = [0] * (len(DURATION_BUCKETS_S) + 1)
        self.duration_sum = 0.0
        self.fuel = [0] * (len(FUEL_BUCKETS) + 1)
        self.fuel_sum = 0.0


class ChannelStats:
    """Everything counted for one channel, found with one dictionary lookup per callback: its callbacks'
    cells, host calls by (function, ok), egress refusals and dropped messages by reason, messages emitted,
    webhook refusals by (scheme, reason), and ``ring`` (the recent-call ring the observer keeps with it)."""

    __slots__ = ("cells", "dropped", "egress", "emitted", "host_calls", "refused", "ring")

    def __init__(self, ring: Any = None) -> None:
        self.cells: dict[str, Cell] = {}
        self.host_calls: dict[tuple[str, bool], int] = {}
        self.egress: dict[str, int] = {}
        self.emitted = 0
        self.dropped: dict[str, int] = {}
        self.refused: dict[tuple[str, str], int] = {}
        self.ring = ring

    def cell(self, callback: str) -> Cell:
        found = self.cells.get(callback)
        if found is None:
            found = self.cells[callback] = Cell()
        return found


class Metrics:
    """The host's metrics (module docstring). Thread-safe: callbacks end on worker threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.lock = threading.Lock()
        """Held while one event is counted (every ``ChannelStats``)."""
        self.channels: dict[str, ChannelStats] = {}
        self._local = threading.local()
        self._in_use: list[list[int]] = []  # one [taken - given] per thread that ran a callback
        self.registry.register(_Families(self))

    def channel(self, name: str, ring: Callable[[], Any] | None = None) -> ChannelStats:
        """``name``'s stats, made on first use with ``ring()`` as its ring (call with ``lock`` held)."""
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = ChannelStats(ring() if ring is not None else None)
        return found

    def started(self) -> None:
        """A sandbox run took an instance. Each thread counts in its own cell (only it writes there, so no
        lock and no lost update); ``in_use`` adds the cells up."""
        try:
            self._local.cell[0] += 1
        except AttributeError:
            with self.lock:
                self._local.cell = [1]
                self._in_use.append(self._local.cell)

    def finished(self) -> None:
        """A sandbox run gave its instance back (on the thread that took it)."""
        self._local.cell[0] -= 1

    @property
    def in_use(self) -> int:
        """Instances held now, over every thread."""
        return sum(cell[0] for cell in list(self._in_use))

    def watch(self, manager: ChannelManager, pool_slots: Callable[[], int]) -> None:
        """Report the manager's channels, websockets and queue, and the pool's size, at each scrape."""
        self.registry.register(_ManagerCollector(manager, pool_slots))

    def watch_workers(self, status: Callable[[], dict[str, Any] | None]) -> None:
        """Report the workers of ``airlock serve --workers N`` (``status``: the supervisor's status document,
        ``workers.supervisor.read_status``) at each scrape."""
        self.registry.register(_WorkersCollector(status))

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of every metric."""
        return generate_latest(self.registry)


def _histogram(name: str, doc: str, bounds: tuple[float, ...],
               rows: list[tuple[list[str], list[int], float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["channel", "callback"])
    labels = (*(repr(float(b)) for b in bounds), "+Inf")
    for key, counts, total in rows:
        running, buckets = 0, []
        for bound, n in zip(labels, counts, strict=True):
            running += n
            buckets.append((bound, float(running)))
        family.add_metric(key, buckets, sum_value=total)
    return family


class _Snapshot:
    """The counters of every channel, copied under the lock."""

    def __init__(self, m: Metrics) -> None:
        with m.lock:
            items = sorted(m.channels.items())
            self.cells = [([ch, cb], dict(c.outcomes), list(c.duration), c.duration_sum, list(c.fuel), c.fuel_sum)
                          for ch, st in items for cb, c in sorted(st.cells.items())]
            self.host_calls = [([ch, fn, "ok" if ok else "error"], n) for ch, st in items
                               for (fn, ok), n in sorted(st.host_calls.items())]
            self.egress = [([ch, r], n) for ch, st in items for r, n in sorted(st.egress.items())]
            self.refused = [([ch, sc, r], n) for ch, st in items for (sc, r), n in sorted(st.refused.items())]
            self.emitted = [([ch], st.emitted) for ch, st in items if st.emitted]
            self.dropped = [([ch, r], n) for ch, st in items for r, n in sorted(st.dropped.items())]


_COUNTERS = (
    ("host_calls", "airlock_host_calls", "Host function calls made by guests.", ("channel", "function", "outcome")),
    ("egress", "airlock_egress_refusals", "http-request calls refused or failed.", ("channel", "reason")),
    ("refused", "airlock_webhook_refused", "Webhooks refused by the host's verifier.", ("channel", "scheme", "reason")),
    ("emitted", "airlock_messages_emitted", "Messages guests emitted.", ("channel",)),
    ("dropped", "airlock_messages_dropped", "Emitted messages that did not reach the agent.", ("channel", "reason")),
)


class _Families(Collector):
    """The counted metrics as metric families, built at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        snap = _Snapshot(self._m)
        callbacks = CounterMetricFamily("airlock_callbacks", "Guest callbacks by channel, callback and outcome.",
                                        labels=["channel", "callback", "outcome"])
        for key, outcomes, *_ in snap.cells:
            for outcome, n in sorted(outcomes.items()):
                callbacks.add_metric([*key, outcome], float(n))
        yield callbacks
        for attr, name, doc, labels in _COUNTERS:
            family = CounterMetricFamily(name, doc, labels=list(labels))
            for key, n in getattr(snap, attr):
                family.add_metric(key, float(n))
            yield family
        yield _histogram("airlock_callback_duration_seconds", "Guest callback wall time.", DURATION_BUCKETS_S,
                         [(c[0], c[2], c[3]) for c in snap.cells])
        yield _histogram("airlock_callback_fuel", "Fuel a guest callback used.", FUEL_BUCKETS,
                         [(c[0], c[4], c[5]) for c in snap.cells if any(c[4])])
        yield GaugeMetricFamily("airlock_pool_slots_in_use", "Callbacks holding an instance now.",
                                value=self._m.in_use)


class _ManagerCollector(Collector):
    def __init__(self, manager: ChannelManager, pool_slots: Callable[[], int]) -> None:
        self._manager = manager
        self._pool_slots = pool_slots

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
        try:
            queued = float(self._manager.bus.qsize())
        except StateUnavailable:  # the state database is down: the scrape still answers, without this gauge
            return
        yield GaugeMetricFamily("airlock_bus_queued", "Messages waiting for the agent.", value=queued)


WORKER_STATES = ("starting", "ready", "restarting", "crash-loop", "stopped")


class _WorkersCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, Any] | None]) -> None:
        self._status = status

    def collect(self) -> Iterator[Any]:
        doc = self._status()
        if doc is None:
            return
        states = GaugeMetricFamily("airlock_workers", "Worker processes by state (--workers N).", labels=["state"])
        restarts = CounterMetricFamily("airlock_worker_restarts", "Restarts of a worker process after it died.",
                                       labels=["worker"])
        workers = doc.get("workers", [])
        for s in WORKER_STATES:
            states.add_metric([s], float(sum(1 for w in workers if w.get("state") == s)))
        for w in workers:
            restarts.add_metric([str(w.get("index"))], float(w.get("restarts", 0)))
        yield from (states, restarts)
