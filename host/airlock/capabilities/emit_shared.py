"""A channel's emit rate limit held for the whole deployment: every worker of ``airlock serve --workers N`` and,
with PostgreSQL state, every node of the cluster (issue 12).

A guest's ``emit_rate_limit`` (messages per minute and per hour, ``capabilities.emit``) is a limit of the
deployment: with per-process windows, N workers gave a guest N times its limit. Here each process reserves a
callback's messages in one window shared by all, at the same point and with the same rule as the in-process window
(``EmitLimiter.reserve``: all of a callback's messages or none, before anything the callback did is applied; given
back when its commit fails).

The mechanism, and why:

- **A shared counter, not a fixed share per worker.** ``limit / N`` per worker needs no coordination, but
  webhooks do not spread evenly: the kernel spreads connections by a hash of the addresses (``SO_REUSEPORT``) and
  a platform often keeps one connection open, so a guest would get a fraction of its limit.
- **Reserved before the commit, not counted in the message log's transaction.** The refusal must come before the
  callback's commit is staged: a refused callback applies nothing and its input is offered again (429 to the
  platform). The log's group commit writes the staged commits of many callbacks in one transaction later, and
  later callbacks have already seen an earlier one's workspace writes (``capabilities.workspace``), so one
  commit cannot be refused inside that transaction without unwinding the others.
- **Where:** workers on SQLite share a file of its own, ``HOME/run/emit-windows.db`` (:class:`SqliteWindows`), not
  ``state.db``: a reservation is one short write transaction, and in ``state.db`` it would queue behind the log's
  writers (and their fsync) on every webhook. The windows need no durability (in one process they live in memory
  and start empty at each start), so the file is written without fsync and the supervisor removes it at each
  start. With PostgreSQL state the nodes share two ``UNLOGGED`` tables of the state database (:class:`PgWindows`,
  migration 14; no WAL: they may be emptied by a crash of the database, which only restarts the windows).

One SQL algorithm for both engines (``{p}`` is the placeholder). Rows are one reservation each (``channel``, ``at``,
``n``, ``in_minute``); the minute's and the hour's totals are kept per channel in ``emit_totals``, and each
reservation only touches the rows that leave a window (marked out of the minute once, deleted from the hour once):
a few indexed statements whatever the rate, never a scan of the window (``make bench``'s concern in
``capabilities.emit``). Times come from the caller's clock: ``time.monotonic()`` for the workers of one machine
(``CLOCK_MONOTONIC`` is one clock for all its processes), wall-clock seconds across nodes (kept in sync by NTP, as
leases already require). If the shared store cannot be used (a full disk, a lock held past
:data:`BUSY_TIMEOUT_S`, PostgreSQL unreachable), the process falls back to its own window for that call and logs it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import StateUnavailable
from .emit import SlidingWindowLimiter

if TYPE_CHECKING:
    from ..state.postgres import PgDb

__all__ = ["BUSY_TIMEOUT_S", "FILE_NAME", "GIVE_BACK_S", "SCHEMA", "PgWindows", "SharedWindow", "SharedWindows",
           "SqliteWindows", "open_windows", "windows_path"]

log = logging.getLogger("airlock.emit")

FILE_NAME = "emit-windows.db"
BUSY_TIMEOUT_S = 5.0
"""Longest wait for another worker's reservation to finish before falling back to this worker's own window."""
MINUTE_S, HOUR_S = 60.0, 3600.0
GIVE_BACK_S = MINUTE_S
"""A reservation older than this is not given back by ``release`` (a callback's commit fails within seconds; this
keeps the list of this process's reservations small at any rate). Not giving back only errs towards the limit."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS emit_events (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, at REAL NOT NULL,
                                        n INTEGER NOT NULL, in_minute INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS emit_events_by_time ON emit_events (channel, in_minute, at);
CREATE TABLE IF NOT EXISTS emit_totals (channel TEXT PRIMARY KEY, minute INTEGER NOT NULL, hour INTEGER NOT NULL);
"""
"""The SQLite tables (PostgreSQL: ``state.pg_schema``, migration 14, the same columns)."""

# The totals row is created if missing and locked (PostgreSQL: a row lock, so one channel's reservations from
# every node take turns; SQLite: the file's write lock is already held).
_TOTALS = ("INSERT INTO emit_totals (channel, minute, hour) VALUES ({p}, 0, 0) ON CONFLICT (channel) "
           "DO UPDATE SET channel = excluded.channel RETURNING minute, hour")
_OUT_OF_MINUTE = ("UPDATE emit_events SET in_minute = 0 WHERE channel = {p} AND in_minute = 1 AND at <= {p} "
                  "RETURNING n")
_OUT_OF_HOUR = ("DELETE FROM emit_events WHERE channel = {p} AND in_minute = 0 AND at <= {p} "  # out of the minute
                "RETURNING n")  # already: it left before the hour (just above, in the same transaction)
_INSERT = "INSERT INTO emit_events (channel, at, n, in_minute) VALUES ({p}, {p}, {p}, 1) RETURNING id"
_SET_TOTALS = "UPDATE emit_totals SET minute = {p}, hour = {p} WHERE channel = {p}"
_DROP = "DELETE FROM emit_events WHERE id = {p} RETURNING in_minute"
_SHRINK = "UPDATE emit_events SET n = n - {p} WHERE id = {p} RETURNING in_minute"
_ROWS = "SELECT at, n FROM emit_events WHERE channel = {p} AND at > {p} ORDER BY at"


class Cursor(Protocol):
    def execute(self, sql: str, params: tuple[Any, ...] = ...) -> Any: ...


class SharedWindows(abc.ABC):
    """A shared store of emit windows (:class:`SqliteWindows`, :class:`PgWindows`); ``window`` makes a channel's.
    Thread-safe: callbacks end on worker threads."""

    placeholder = "?"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    """What the store raises when it cannot be used (then the caller's own window decides). ``StateUnavailable``
    (PostgreSQL down) is not among them: it reaches the callback, which is then not applied (503), as its commit
    would not be either."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        # gives reservations back off the caller's thread (it may be the event loop: ``Channel.settled``)
        self.releases = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-emit-release")
        self.sql = {name: text.format(p=self.placeholder) for name, text in (
            ("totals", _TOTALS), ("out_of_minute", _OUT_OF_MINUTE), ("out_of_hour", _OUT_OF_HOUR),
            ("insert", _INSERT), ("set_totals", _SET_TOTALS), ("drop", _DROP), ("shrink", _SHRINK),
            ("rows", _ROWS))}

    @property
    def unusable(self) -> tuple[type[BaseException], ...]:
        """:attr:`errors` and ``StateUnavailable``: where giving back and waiting times fall back or give up."""
        return (*self.errors, StateUnavailable)

    def window(self, channel: str, per_minute: int, per_hour: int) -> SharedWindow:
        """Channel ``channel``'s window with its limits (``EmitLimiter``'s ``window``)."""
        return SharedWindow(self, channel, per_minute, per_hour)

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]:
        """One write transaction (committed at the end of the block, rolled back on an exception)."""

    def released(self) -> None:
        """Wait until every reservation given back so far (``SharedWindow.release``) is written."""
        self.releases.submit(lambda: None).result()

    def close(self) -> None:
        """Release what the store holds (idempotent): reservations being given back finish first."""
        self.releases.shutdown(wait=True)


class SqliteWindows(SharedWindows):
    """The workers of one machine: ``path`` (``HOME/run/emit-windows.db``), one connection per process."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        super().__init__(clock)
        self.lock = threading.Lock()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # module docstring: nothing here needs to survive a crash
        self.db.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        super().close()
        with self.lock:
            self.db.close()


class PgWindows(SharedWindows):
    """The nodes of a cluster (and their workers): the state database's ``emit_events`` / ``emit_totals``."""

    placeholder = "%s"

    def __init__(self, db: PgDb, clock: Callable[[], float] = time.time) -> None:
        import psycopg  # PostgreSQL state only: the embedded default never loads it

        super().__init__(clock)
        self.db = db
        self.errors = (psycopg.Error,)

    def transaction(self) -> AbstractContextManager[Cursor]:
        return self.db.transaction()


class SharedWindow:
    """The interface of ``emit.SlidingWindowLimiter`` (``try_acquire``, ``release``, ``retry_after``), counted in
    the shared store (module docstring). ``release`` gives back this process's latest reservations."""

    def __init__(self, shared: SharedWindows, channel: str, per_minute: int, per_hour: int) -> None:
        self.shared = shared
        self.channel = channel
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._mine: deque[tuple[int, int, float]] = deque()  # (row id, n, at) of this process's, newest last
        self._local = SlidingWindowLimiter(per_minute, per_hour)  # the fallback (module docstring)
        self._fell_back = False
        self._lock = threading.Lock()  # ``_mine``: reservations end on callback threads, releases anywhere

    def try_acquire(self, count: int = 1) -> bool:
        """Record ``count`` events and return True, or return False (nothing recorded) if they do not all fit in
        both windows (``SlidingWindowLimiter.try_acquire``'s rule, over every process)."""
        try:
            self._fell_back = False
            return self._acquire(count)
        except self.shared.errors as exc:
            log.warning("[%s] shared emit window unavailable (%s): this process's own window decides",
                        self.channel, exc)
            self._fell_back = True  # ``retry_after`` answers for the window that decided
            return self._local.try_acquire(count)

    def _acquire(self, count: int) -> bool:
        sql, ch = self.shared.sql, self.channel
        with self.shared.transaction() as tx:
            now = self.shared.clock()
            totals = tx.execute(sql["totals"], (ch,))
            out_of_minute = tx.execute(sql["out_of_minute"], (ch, now - MINUTE_S))
            out_of_hour = tx.execute(sql["out_of_hour"], (ch, now - HOUR_S))
            minute, hour = totals.fetchone()
            minute -= sum(n for (n,) in out_of_minute.fetchall())
            hour -= sum(n for (n,) in out_of_hour.fetchall())
            fits = _fits(minute, count, self.per_minute) and _fits(hour, count, self.per_hour)
            added = count if fits else 0
            inserted = tx.execute(sql["insert"], (ch, now, count)) if fits else None
            tx.execute(sql["set_totals"], (minute + added, hour + added, ch))  # what left stays out, refused or not
            rowid = int(inserted.fetchone()[0]) if inserted is not None else 0
        if not fits:
            return False
        with self._lock:
            mine = self._mine
            while mine and mine[0][2] <= now - GIVE_BACK_S:  # bounded: only recent reservations are given back
                mine.popleft()
            mine.append((rowid, count, now))
        return True

    def release(self, count: int) -> None:
        """Un-count the ``count`` most recent events this process reserved (a callback not applied after all). On a
        thread running an event loop (``Channel.settled``) it returns at once: the rows are picked now and the store
        is written on the store's release thread; elsewhere (a callback's thread, about to re-run it after a
        workspace conflict) the store is written before it returns."""
        picked: list[tuple[int, int, bool]] = []  # (row id, n to take, whole row)
        with self._lock:
            while count > 0 and self._mine:
                rowid, n, at = self._mine.pop()
                take = min(n, count)
                if take < n:
                    self._mine.append((rowid, n - take, at))
                picked.append((rowid, take, take == n))
                count -= take
        if not picked:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: write now, so a re-run is counted without this reservation
            self._give_back(picked)
            return
        self.shared.releases.submit(self._give_back, picked)

    def _give_back(self, picked: list[tuple[int, int, bool]]) -> None:
        try:
            self._release(picked)
        except self.shared.unusable as exc:
            log.warning("[%s] shared emit window unavailable (%s): %d reserved message(s) not given back",
                        self.channel, exc, sum(take for _, take, _ in picked))

    def _release(self, picked: list[tuple[int, int, bool]]) -> None:
        sql, ch = self.shared.sql, self.channel
        with self.shared.transaction() as tx:
            minute, hour = tx.execute(sql["totals"], (ch,)).fetchone()
            for rowid, take, whole in picked:
                row = tx.execute(sql["drop"] if whole else sql["shrink"], (rowid,) if whole else (take, rowid))
                found = row.fetchone()
                if found is None:  # left the hour already: counted nowhere any more
                    continue
                hour -= take
                minute -= take if found[0] else 0  # one already out of the minute's total stays out
            tx.execute(sql["set_totals"], (max(0, minute), max(0, hour), ch))

    def retry_after(self, count: int = 1) -> float:
        """Seconds until ``count`` more events would fit both windows (0.0 when they fit now)."""
        if self._fell_back:
            return self._local.retry_after(count)
        try:
            with self.shared.transaction() as tx:
                now = self.shared.clock()
                rows = tx.execute(self.shared.sql["rows"], (self.channel, now - HOUR_S)).fetchall()
        except self.shared.unusable:
            return self._local.retry_after(count)
        minute = [(at, n) for at, n in rows if at > now - MINUTE_S]
        return max(_wait(minute, MINUTE_S, self.per_minute, count, now), _wait(rows, HOUR_S, self.per_hour, count, now))


def open_windows(home: Path, worker: bool, db: PgDb | None) -> SharedWindows | None:
    """The emit windows a host shares: the state database's with PostgreSQL state (every node), the home's file
    for a worker of ``serve --workers N`` on SQLite, else None (one process: its own windows)."""
    if db is not None:
        return PgWindows(db)
    return SqliteWindows(windows_path(home)) if worker else None


def windows_path(home: Path) -> Path:
    """``HOME/run/emit-windows.db`` (the supervisor removes it at each start)."""
    return home / "run" / FILE_NAME


def _fits(used: int, count: int, limit: int) -> bool:
    """``SlidingWindowLimiter._fits``: within the limit, or a batch over the whole limit into an empty window."""
    return used + count <= limit or (used == 0 and count > limit)


def _wait(rows: list[tuple[float, int]], span: float, limit: int, count: int, now: float) -> float:
    """Seconds until enough of ``rows`` (oldest first) leave the window for ``count`` more to fit."""
    used = sum(n for _, n in rows)
    if _fits(used, count, limit):
        return 0.0
    for at, n in rows:
        used -= n
        if _fits(used, count, limit):
            return max(0.0, span - (now - at))
    return span
