"""A channel's emit rate limit held for all the workers of ``airlock serve --workers N`` together (issue 12).

A guest's ``emit_rate_limit`` (messages per minute and per hour, ``capabilities.emit``) is a limit of the
deployment: with per-process windows, N workers gave a guest N times its limit. Here each worker reserves a
callback's messages in one window shared by every worker, at the same point and with the same rule as the
in-process window (``EmitLimiter.reserve``: all of a callback's messages or none, before anything the callback did
is applied; given back when its commit fails).

The mechanism, and why:

- **A shared counter, not a fixed share per worker.** ``limit / N`` per worker needs no coordination, but
  webhooks do not spread evenly: the kernel spreads connections by a hash of the addresses (``SO_REUSEPORT``) and
  a platform often keeps one connection open, so a guest would get a fraction of its limit.
- **Reserved before the commit, not counted in the message log's transaction.** The refusal must come before the
  callback's commit is staged: a refused callback applies nothing and its input is offered again (429 to the
  platform). The log's group commit writes the staged commits of many callbacks in one transaction later, and
  later callbacks have already seen an earlier one's workspace writes (``capabilities.workspace``), so one
  commit cannot be refused inside that transaction without unwinding the others.
- **A SQLite file of its own, ``HOME/run/emit-windows.db``**, not ``state.db``: a reservation is one short write
  transaction; in ``state.db`` it would queue behind the log's writers (and their fsync) on every webhook. The
  windows need no durability (in one process they live in memory and start empty at each start), so the file is
  written without fsync (``synchronous=OFF``) and the supervisor removes it at each start.

Rows are one reservation each (``channel``, ``at``, ``n``); ``at`` is ``time.monotonic()``, one clock for every
process on a Linux machine (``CLOCK_MONOTONIC`` counts from boot), read under the write lock. The minute's and
the hour's totals are kept in ``totals``, and only the rows leaving a window are read to take them off: a
reservation is a few indexed statements whatever the rate (no scan of the window: ``make bench``'s concern in
``capabilities.emit``); about 50 us here. If the file cannot be used
(a full disk, a lock held past :data:`BUSY_TIMEOUT_S`), the worker falls back to its own window (the old
per-process limit) for that call and logs it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .emit import SlidingWindowLimiter

__all__ = ["BUSY_TIMEOUT_S", "FILE_NAME", "GIVE_BACK_S", "SharedWindow", "SharedWindows", "windows_path"]

log = logging.getLogger("airlock.emit")

FILE_NAME = "emit-windows.db"
BUSY_TIMEOUT_S = 5.0
"""Longest wait for another worker's reservation to finish before falling back to this worker's own window."""
MINUTE_S, HOUR_S = 60.0, 3600.0
GIVE_BACK_S = MINUTE_S
"""A reservation older than this is not given back by ``release`` (a callback's commit fails within seconds; this
keeps the list of this process's reservations small at any rate). Not giving back only errs towards the limit."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS emits (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, at REAL NOT NULL,
                                  n INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS emits_by_time ON emits (channel, at, n);
CREATE TABLE IF NOT EXISTS totals (channel TEXT PRIMARY KEY, minute INTEGER NOT NULL, hour INTEGER NOT NULL,
                                   minute_cut REAL NOT NULL);
"""


def windows_path(home: Path) -> Path:
    """``HOME/run/emit-windows.db`` (the supervisor removes it at each start)."""
    return home / "run" / FILE_NAME


class SharedWindows:
    """The shared file of one worker process: one connection for all its channels (``window`` makes each
    channel's). Thread-safe: callbacks end on worker threads."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.clock = clock
        self.lock = threading.Lock()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # module docstring: nothing here needs to survive a crash
        self.db.executescript(_SCHEMA)

    def window(self, channel: str, per_minute: int, per_hour: int) -> SharedWindow:
        """Channel ``channel``'s window with its limits (``EmitLimiter``'s ``window``)."""
        return SharedWindow(self, channel, per_minute, per_hour)

    def close(self) -> None:
        with self.lock:
            self.db.close()


class SharedWindow:
    """The interface of ``emit.SlidingWindowLimiter`` (``try_acquire``, ``release``, ``retry_after``), counted in
    the shared file (module docstring). ``release`` gives back this process's latest reservations."""

    def __init__(self, shared: SharedWindows, channel: str, per_minute: int, per_hour: int) -> None:
        self.shared = shared
        self.channel = channel
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._mine: deque[tuple[int, int, float]] = deque()  # (row id, n, at) of this process's, newest last
        self._local = SlidingWindowLimiter(per_minute, per_hour)  # the fallback (module docstring)
        self._fell_back = False

    def try_acquire(self, count: int = 1) -> bool:
        """Record ``count`` events and return True, or return False (nothing recorded) if they do not all fit in
        both windows (``SlidingWindowLimiter.try_acquire``'s rule, over every worker)."""
        try:
            with self.shared.lock:
                self._fell_back = False
                return self._acquire(count)
        except sqlite3.Error as exc:
            log.warning("[%s] shared emit window unavailable (%s): this worker's own window decides", self.channel,
                        exc)
            self._fell_back = True  # ``retry_after`` answers for the window that decided
            return self._local.try_acquire(count)

    def _acquire(self, count: int) -> bool:
        db = self.shared.db
        db.execute("BEGIN IMMEDIATE")
        try:
            now = self.shared.clock()  # read under the write lock: ``at`` never decreases from row to row
            minute, hour = self._expire(now)
            if not (_fits(minute, count, self.per_minute) and _fits(hour, count, self.per_hour)):
                db.execute("COMMIT")  # what expired stays expired
                return False
            row = db.execute("INSERT INTO emits (channel, at, n) VALUES (?, ?, ?)", (self.channel, now, count))
            db.execute("UPDATE totals SET minute = minute + ?, hour = hour + ? WHERE channel = ?",
                       (count, count, self.channel))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        mine = self._mine
        while mine and mine[0][2] <= now - GIVE_BACK_S:  # bounded: only recent reservations are ever given back
            mine.popleft()
        mine.append((int(row.lastrowid or 0), count, now))
        return True

    def _expire(self, now: float) -> tuple[int, int]:
        """Take the rows that left the minute off its total, delete those that left the hour (and take them off
        its total); the totals after that (in the open transaction). Since ``at`` never decreases, the rows
        leaving the minute are those between the last cut and this one: each is counted out once."""
        db, ch = self.shared.db, self.channel
        found = db.execute("SELECT minute, hour, minute_cut FROM totals WHERE channel = ?", (ch,)).fetchone()
        minute, hour, cut = found if found is not None else (0, 0, float("-inf"))
        new_cut = max(cut, now - MINUTE_S)
        minute -= db.execute("SELECT coalesce(sum(n), 0) FROM emits WHERE channel = ? AND at > ? AND at <= ?",
                             (ch, cut, new_cut)).fetchone()[0]
        gone = db.execute("SELECT coalesce(sum(n), 0) FROM emits WHERE channel = ? AND at <= ?",
                          (ch, now - HOUR_S)).fetchone()[0]
        if gone:
            db.execute("DELETE FROM emits WHERE channel = ? AND at <= ?", (ch, now - HOUR_S))
        hour -= gone
        db.execute("INSERT INTO totals (channel, minute, hour, minute_cut) VALUES (?, ?, ?, ?) ON CONFLICT (channel) "
                   "DO UPDATE SET minute = excluded.minute, hour = excluded.hour, minute_cut = excluded.minute_cut",
                   (ch, minute, hour, new_cut))
        return int(minute), int(hour)

    def release(self, count: int) -> None:
        """Un-count the ``count`` most recent events this process reserved (a callback not applied after all)."""
        try:
            with self.shared.lock:
                self._release(count)
        except sqlite3.Error as exc:
            log.warning("[%s] shared emit window unavailable (%s): %d reserved message(s) not given back",
                        self.channel, exc, count)

    def _release(self, count: int) -> None:
        db = self.shared.db
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("SELECT minute_cut FROM totals WHERE channel = ?", (self.channel,)).fetchone()
            cut = found[0] if found is not None else float("-inf")
            given = in_minute = 0
            while given < count and self._mine:
                rowid, n, at = self._mine.pop()
                take = min(n, count - given)
                if take == n:
                    db.execute("DELETE FROM emits WHERE id = ?", (rowid,))
                else:
                    db.execute("UPDATE emits SET n = n - ? WHERE id = ?", (take, rowid))
                    self._mine.append((rowid, n - take, at))
                given += take
                in_minute += take if at > cut else 0  # one already out of the minute's total stays out
            db.execute("UPDATE totals SET minute = max(0, minute - ?), hour = max(0, hour - ?) WHERE channel = ?",
                       (in_minute, given, self.channel))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def retry_after(self, count: int = 1) -> float:
        """Seconds until ``count`` more events would fit both windows (0.0 when they fit now)."""
        if self._fell_back:
            return self._local.retry_after(count)
        try:
            with self.shared.lock:
                now = self.shared.clock()
                rows = self.shared.db.execute("SELECT at, n FROM emits WHERE channel = ? AND at > ? ORDER BY at",
                                              (self.channel, now - HOUR_S)).fetchall()
        except sqlite3.Error:
            return self._local.retry_after(count)
        minute = [(at, n) for at, n in rows if at > now - MINUTE_S]
        return max(_wait(minute, MINUTE_S, self.per_minute, count, now), _wait(rows, HOUR_S, self.per_hour, count, now))


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
