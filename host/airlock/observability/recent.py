"""Recent callbacks and last errors per channel, for the admin API and console.

A finished callback may leave a ``CallRecord``: references to what its ``CallState`` already holds (host-call
trace, logs, HTTP audit, emitted messages, workspace writes), never attachment bytes. A channel keeps its last
``RECENT_CALLS`` records and its last ``LAST_ERRORS`` failures (time, callback, trap class, message, trace id).

Which callbacks are recorded: every failure, always; successes only while someone watches the channel (asked
for its recent calls within the last ``WATCH_S`` seconds: the console's calls page refreshes well within
that). Keeping a record of every success costs a few microseconds per webhook (building it, and freeing what
it holds cache-cold 50 callbacks later), which ``make bench`` sees on a small guest's webhook path; a watched
channel pays it, the others do not.

``call_doc`` turns a record into the document ``airlock invoke --json`` prints (same keys for what a running
host knows: callback, ok, error {class, message}, value, host_calls, logs, http, emitted, workspace, fuel_used,
elapsed_ms, attempts; plus ``at`` and ``trace_id``), and ``redact`` erases stored secret values from it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .docs import MAX_SHOWN, json_or_text, jsonable, redact, safe, trap_class

if TYPE_CHECKING:
    from ..capabilities.http import HttpAudit
    from ..channels.callstate import HostCall
    from ..channels.channel import CallOutcome
    from ..errors import AirlockError
    from ..runtime.values import EmittedMessage

__all__ = ["LAST_ERRORS", "RECENT_CALLS", "WATCH_S", "CallRecord", "ErrorRecord", "RecentCalls", "Ring", "call_doc",
           "redact"]

RECENT_CALLS = 50
"""Callbacks kept per channel (the oldest goes first)."""
WATCH_S = 300.0
"""How long (seconds) successes are recorded after someone last asked for a channel's recent calls."""
LAST_ERRORS = 10
"""Failed callbacks kept per channel for "last errors"."""


class CallRecord(NamedTuple):
    """One finished callback (module docstring). ``at``: Unix seconds when it ended; ``value``: the callback's
    value (an ``OutgoingHttpResponse``, a ``ChannelConfig``, or None)."""

    at: float
    trace_id: str | None
    callback: str
    outcome: str
    error: AirlockError | None
    value: Any
    fuel_used: int | None
    elapsed_s: float
    attempts: int
    trace: Sequence[HostCall]
    logs: Sequence[tuple[str, str]]
    http: Sequence[HttpAudit]
    emitted: Sequence[EmittedMessage]
    admitted: int
    writes: dict[str, str]
    reads: Mapping[str, int]
    """Workspace paths read (with the versions seen)."""


class ErrorRecord(NamedTuple):
    """A failed callback: ``at`` (Unix seconds), callback, ``trap`` (``docs.trap_class``), message."""

    at: float
    callback: str
    trap: str | None
    message: str
    trace_id: str | None


_new_record = tuple.__new__  # builds the named tuple without its Python-level __new__ (~3x faster)


def record_of(out: CallOutcome, outcome: str, trace_id: str | None) -> CallRecord:
    """The record of ``out`` (which finished just now): references only, nothing copied."""
    state = out.state
    stats = out.stats
    fuel = stats.fuel_used if stats is not None else None
    if state is None:
        fields: tuple[Any, ...] = (time.time(), trace_id, out.callback, outcome, out.error, None, fuel,
                                   out.elapsed_s, out.attempts, (), (), (), (), 0, {}, {})
    else:
        fields = (time.time(), trace_id, out.callback, outcome, out.error, out.value if out.ok else None, fuel,
                  out.elapsed_s, out.attempts, state.trace, state.logs.entries, state.http_audit,
                  state.emits.messages, len(out.messages), state.workspace.writes, state.workspace.reads)
    record: CallRecord = _new_record(CallRecord, fields)
    return record


class Ring:
    """One channel's recent records and last errors (append with the owner's lock held). ``watched_until``:
    ``time.monotonic()`` until which successes are recorded too (module docstring)."""

    __slots__ = ("calls", "errors", "watched_since", "watched_until")

    def __init__(self, keep: int, keep_errors: int) -> None:
        self.calls: deque[CallRecord] = deque(maxlen=keep)
        self.errors: deque[ErrorRecord] = deque(maxlen=keep_errors)
        self.watched_until = 0.0
        self.watched_since = 0.0

    def add(self, record: CallRecord) -> None:
        self.calls.append(record)
        if record.error is not None:
            self.errors.append(ErrorRecord(record.at, record.callback, trap_class(record.error), str(record.error),
                                           record.trace_id))


class RecentCalls:
    """Per-channel rings of ``CallRecord`` and ``ErrorRecord``. Thread-safe: every method takes ``lock``
    (by default its own; ``CallObserver`` shares the metrics' lock, keeps each channel's ``ring`` with its
    counters and appends to it while holding that lock, so a callback costs one lock acquisition in all)."""

    def __init__(self, keep: int = RECENT_CALLS, keep_errors: int = LAST_ERRORS,
                 lock: threading.Lock | None = None) -> None:
        self._keep, self._keep_errors = keep, keep_errors
        self._rings: dict[str, Ring] = {}
        self.lock = lock if lock is not None else threading.Lock()

    def ring(self, channel: str) -> Ring:
        """``channel``'s ring, made on first use (the caller holds ``lock``)."""
        found = self._rings.get(channel)
        if found is None:
            found = self._rings[channel] = Ring(self._keep, self._keep_errors)
        return found

    def add(self, channel: str, record: CallRecord) -> None:
        with self.lock:
            self.ring(channel).add(record)

    def watch(self, channel: str) -> float:
        """Record ``channel``'s successes for the next ``WATCH_S`` seconds; returns since when (Unix seconds)
        successes have been recorded without a gap in this watch."""
        now = time.monotonic()
        with self.lock:
            ring = self.ring(channel)
            if ring.watched_until <= now:
                ring.watched_since = time.time()
            ring.watched_until = now + WATCH_S
            return ring.watched_since

    def calls(self, channel: str) -> list[CallRecord]:
        """The channel's recent records, newest first."""
        with self.lock:
            ring = self._rings.get(channel)
            return list(reversed(ring.calls)) if ring is not None else []

    def errors(self, channel: str) -> list[ErrorRecord]:
        """The channel's last failures, newest first."""
        with self.lock:
            ring = self._rings.get(channel)
            return list(reversed(ring.errors)) if ring is not None else []


def _message_doc(msg: EmittedMessage, admitted: bool) -> dict[str, Any]:
    return {"user_id": msg.user_id, "user_name": msg.user_name, "content": safe(msg.content, MAX_SHOWN),
            "thread_id": msg.thread_id, "metadata": json_or_text(msg.metadata_json), "admitted": admitted}


def _value_doc(value: Any) -> Any:
    """A callback's value as JSON: a webhook response with its headers parsed, on-start's channel config."""
    doc = jsonable(value)
    if isinstance(doc, dict) and "headers_json" in doc and "body" in doc:  # an outgoing-http-response
        doc = {"status": doc.get("status"), "headers": json_or_text(str(doc["headers_json"])), "body": doc["body"]}
    return doc


def call_doc(channel: str, record: CallRecord, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The ``invoke``-shaped document of ``record`` (module docstring), every value of ``secrets``
    (name -> value) replaced by ``[REDACTED:name]``."""
    value = _value_doc(record.value)
    trap = trap_class(record.error)
    doc = {
        "at": record.at, "trace_id": record.trace_id, "channel": channel, "callback": record.callback,
        "outcome": record.outcome, "ok": record.error is None,
        "error": None if record.error is None else {"class": trap, "message": str(record.error)},
        "value": value,
        "host_calls": [{"function": c.function, "ok": c.ok, "error": c.error, "detail": jsonable(c.detail)}
                       for c in record.trace],
        "logs": [{"level": lvl, "message": msg} for lvl, msg in record.logs],
        "http": [jsonable(a) for a in record.http],
        "emitted": [_message_doc(m, i < record.admitted) for i, m in enumerate(record.emitted)],
        "workspace": {"reads": sorted(record.reads),
                      "writes": {k: safe(v, MAX_SHOWN) for k, v in record.writes.items()},
                      "applied": record.error is None},
        "fuel_used": record.fuel_used, "elapsed_ms": round(record.elapsed_s * 1000, 3),
        "attempts": record.attempts,
    }
    cleaned: dict[str, Any] = redact(doc, secrets)
    return cleaned
