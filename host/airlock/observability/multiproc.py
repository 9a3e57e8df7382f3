"""Metrics of every worker of ``airlock serve --workers N`` on worker 0's ``/metrics`` (issue 12), in
prometheus-client's own multiprocess mode.

The supervisor gives each start a fresh directory (``HOME/run/metrics``, emptied at start) and names it in
``PROMETHEUS_MULTIPROC_DIR`` for its workers; prometheus-client keeps one memory-mapped file per process and
metric type there (``counter_<pid>.db``...). Each worker counts as a single process does (``metrics.Metrics``:
dictionaries under one lock, cheap on the webhook path) and a :class:`Publisher` copies its totals into its files
every :data:`PUBLISH_EVERY_S` (and at stop), as prometheus-client values of the same names, types and labels that
``/metrics`` shows in one process. Worker 0's ``/metrics`` is then prometheus-client's ``MultiProcessCollector``
over the directory (it sums counters and histogram buckets over every file), plus what is read live there: the
message bus's depth (one log for all) and the supervisor's worker table (``metrics._WorkersCollector``).

A worker that dies keeps its files: its counts stay in the totals, and its successor (a new pid) starts its own
files from zero, so counters never go backwards. Its live gauges are dropped by the supervisor
(``prometheus_client.multiprocess.mark_process_dead``). Gauges and how workers combine:
``airlock_pool_slots_in_use`` and ``airlock_pool_slots``: the sum over live workers; ``airlock_channel_active``:
the minimum (1 only when the channel is active in every live worker); ``airlock_websocket_state``: the maximum,
published only by the worker holding the channel's lease (``channels.poll_lease``: the websocket runs there), so
a channel whose lease nobody holds (disabled, or between holders) has no state series.

Why copy totals instead of counting with prometheus-client's own counters: one of its multiprocess increments takes
a lock and writes the memory map; a callback updates 5 to 10 values, which is the 5 % of a small guest's webhook
that ``metrics`` already avoids in one process. A copy per second costs one write per changed value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.values import MultiProcessValue

from ..errors import StateUnavailable
from .metrics import _COUNTERS, DURATION_BUCKETS_S, FUEL_BUCKETS, SOCKET_STATES, _Snapshot

if TYPE_CHECKING:
    from ..channels.manager import ChannelManager
    from .metrics import Metrics

__all__ = ["ENV_DIR", "PUBLISH_EVERY_S", "Publisher", "metrics_dir", "share", "shared_registry"]

log = logging.getLogger("airlock.metrics")

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own variable: where the worker processes keep their metric files."""
PUBLISH_EVERY_S = 1.0
"""Seconds between two copies of a worker's totals to its files: how far behind ``/metrics`` may be for the
other workers (worker 0 copies its own at each scrape)."""

# prometheus-client's multiprocess functions carry no annotations: typed here once
_value_class_for_pid = cast(Callable[[], Callable[..., Any]], MultiProcessValue)
_files_collector = cast(Callable[..., Collector], MultiProcessCollector)

Key = tuple[str, str, str, tuple[str, ...], tuple[str, ...], str]
"""(type or ``gauge_<mode>``, metric name, sample name, label names, label values, help)."""


def metrics_dir(home: Path) -> Path:
    """``HOME/run/metrics``: this start's metric files (the supervisor empties it at start)."""
    return home / "run" / "metrics"


class Publisher:
    """Copies one worker's metrics into its prometheus-client multiprocess files (module docstring)."""

    def __init__(self, metrics: Metrics, manager: ChannelManager, pool_slots: Callable[[], int]) -> None:
        self.metrics = metrics
        self.manager = manager
        self.pool_slots = pool_slots
        self._value_class = _value_class_for_pid()  # this pid's files, in $PROMETHEUS_MULTIPROC_DIR
        self._values: dict[Key, Any] = {}
        self._written: dict[Key, float] = {}
        self._lock = threading.Lock()  # the periodic copy and a scrape (on the admin server's thread) may meet

    def publish(self) -> int:
        """Write every value that changed since the last call; returns how many were written."""
        with self._lock:
            return self._publish()

    def _publish(self) -> int:
        written = 0
        for key, value in self._samples():
            if self._written.get(key) == value:
                continue
            found = self._values.get(key)
            if found is None:
                typ, metric, sample, names, labels, doc = key
                mode = typ.removeprefix("gauge_") if typ.startswith("gauge_") else ""
                found = self._values[key] = self._value_class(typ.split("_")[0], metric, sample, list(names),
                                                              list(labels), doc, multiprocess_mode=mode)
            found.set(value)
            self._written[key] = value
            written += 1
        return written

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every :data:`PUBLISH_EVERY_S` until ``stop``, then once more."""
        while not stop.is_set():
            try:
                self.publish()
            except (OSError, ValueError) as exc:  # a full disk: metrics stay behind, callbacks go on
                log.warning("metrics not published: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PUBLISH_EVERY_S)
        self.publish()

    def _samples(self) -> Iterator[tuple[Key, float]]:
        snap = _Snapshot(self.metrics)
        doc = "Guest callbacks by channel, callback and outcome."
        for key, outcomes, *_ in snap.cells:
            for outcome, n in outcomes.items():
                yield ("counter", "airlock_callbacks", "airlock_callbacks_total", ("channel", "callback", "outcome"),
                       (*key, outcome), doc), float(n)
        for attr, name, doc, labels in _COUNTERS:
            for values, n in getattr(snap, attr):
                yield ("counter", name, f"{name}_total", labels, tuple(values), doc), float(n)
        yield from _histogram("airlock_callback_duration_seconds", "Guest callback wall time.", DURATION_BUCKETS_S,
                              [(c[0], c[2], c[3]) for c in snap.cells])
        yield from _histogram("airlock_callback_fuel", "Fuel a guest callback used.", FUEL_BUCKETS,
                              [(c[0], c[4], c[5]) for c in snap.cells if any(c[4])])
        yield (("gauge_livesum", "airlock_pool_slots_in_use", "airlock_pool_slots_in_use", (), (),
                "Callbacks holding an instance now."), float(self.metrics.in_use))
        yield (("gauge_livesum", "airlock_pool_slots", "airlock_pool_slots", (), (),
                "Instance slots of the pooling allocator (0: no pool)."), float(self.pool_slots()))
        yield from self._channels()

    def _channels(self) -> Iterator[tuple[Key, float]]:
        for name, slot in list(self.manager.slots.items()):
            yield (("gauge_livemin", "airlock_channel_active", "airlock_channel_active", ("channel",), (name,),
                    "1 if the channel is active."), 1.0 if slot.active else 0.0)
            if slot.socket is None:
                continue
            status = slot.socket.status
            opened = float(status.connections)
            yield (("counter", "airlock_websocket_connections", "airlock_websocket_connections_total", ("channel",),
                    (name,), "Websocket connections opened."), opened)
            yield (("counter", "airlock_websocket_reconnects", "airlock_websocket_reconnects_total", ("channel",),
                    (name,), "Websocket connections after the first."), max(0.0, opened - 1))
            if slot.lease is not None and not slot.lease.held():  # it runs in the lease's holder only
                continue
            for s in SOCKET_STATES:
                yield (("gauge_livemax", "airlock_websocket_state", "airlock_websocket_state", ("channel", "state"),
                        (name, s), "1 for the websocket's current state."), 1.0 if status.state == s else 0.0)


def _histogram(name: str, doc: str, bounds: tuple[float, ...],
               rows: list[tuple[list[str], list[int], float]]) -> Iterator[tuple[Key, float]]:
    """Per-bucket counts (not cumulative: ``MultiProcessCollector`` adds them up) and the sum."""
    les = (*(repr(float(b)) for b in bounds), "+Inf")
    for key, counts, total in rows:
        for le, n in zip(les, counts, strict=True):
            yield ("histogram", name, f"{name}_bucket", ("channel", "callback", "le"), (*key, le), doc), float(n)
        yield ("histogram", name, f"{name}_sum", ("channel", "callback"), tuple(key), doc), float(total)


class _BusCollector(Collector):
    """The agent's queue depth, read at scrape time from the one message log every worker shares."""

    def __init__(self, manager: ChannelManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Any]:
        try:
            queued = float(self._manager.bus.qsize())
        except StateUnavailable:
            return
        yield GaugeMetricFamily("airlock_bus_queued", "Messages waiting for the agent.", value=queued)


def shared_registry(path: Path, manager: ChannelManager, before: Callable[[], object]) -> CollectorRegistry:
    """Worker 0's registry: every worker's files (``MultiProcessCollector``), with ``before()`` (its own publish)
    run first at each scrape, and the bus depth."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fresh(_files_collector(None, path=os.fspath(path)), before))
    registry.register(_BusCollector(manager))
    return registry


class _Fresh(Collector):
    """``inner`` (the files of every worker), after ``before()`` (this worker's own copy, so it is current)."""

    def __init__(self, inner: Collector, before: Callable[[], object]) -> None:
        self._inner = inner
        self._before = before

    def collect(self) -> Iterator[Any]:
        self._before()
        yield from self._inner.collect()


def share(metrics: Metrics, manager: ChannelManager, pool_slots: Callable[[], int], agent_side: bool,
          workers: Callable[[], dict[str, Any] | None]) -> Publisher | None:
    """For a worker whose supervisor set :data:`ENV_DIR`: its :class:`Publisher` (to ``run``), and on the agent
    side ``metrics.registry`` becomes every worker's (:func:`shared_registry`, with the supervisor's worker table
    ``workers``). None without the variable: its own registry, with the worker table."""
    path = os.environ.get(ENV_DIR)
    if not path:
        metrics.watch_workers(workers)
        return None
    publisher = Publisher(metrics, manager, pool_slots)
    if agent_side:
        metrics.registry = shared_registry(Path(path), manager, publisher.publish)
        metrics.watch_workers(workers)
    return publisher
