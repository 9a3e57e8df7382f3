"""Group commit for the SQLite message log: concurrent durable writes share one transaction and one fsync.

Why: with ``synchronous=FULL`` every ``COMMIT`` fsyncs the WAL, and SQLite has one writer at a time, so N threads
committing at once would pay N fsyncs one after another (each channel's committer, every agent's reply). Here the
first caller that finds no group running becomes the *leader*: it takes every request queued so far (at most
:data:`MAX_GROUP`), runs each in a ``SAVEPOINT`` of one ``BEGIN IMMEDIATE`` transaction, commits once (one fsync)
and hands every caller its own result; callers that arrive meanwhile wait, and one of them leads the next group.
There is no thread of its own: a leader is always a caller (leader/follower group commit, the shape database log
writers use).

Rules:
- A caller returns only after the ``COMMIT`` of its group returned: with ``synchronous=FULL`` its writes are on
  disk, exactly as if it had committed alone.
- Requests run in the order they were queued; a caller's next request is queued only after its previous returned.
- An exception raised by one request (a constraint, ``KeyError`` / ``PermissionError`` of ``ack_and_append``) rolls
  back that request's savepoint only and is raised to its caller; the rest of the group commits.
- When the transaction itself fails (``COMMIT``, or an error that ends the transaction: I/O error, disk full),
  every request of the group gets that error and nothing of the group is written.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..stores._sqlite import SqliteDb

T = TypeVar("T")

MAX_GROUP = 256
"""Requests one transaction takes at most; a longer queue is committed in several groups (bounds how long the
write lock is held and how much one failed transaction takes down)."""


class _Request(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], T]) -> None:
        self.fn = fn
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommitter:
    """Runs write transactions of a :class:`SqliteDb` in groups (module docstring). Thread-safe.

    Args:
        db: the database; its default ``synchronous`` applies to every group.
        max_group: requests per transaction at most (>= 1; default :data:`MAX_GROUP`).

    Attributes ``transactions`` and ``requests`` count the groups committed and the requests they held (requests /
    transactions = the average group size).
    """

    def __init__(self, db: SqliteDb, max_group: int = MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._db = db
        self._max = max_group
        self._cond = threading.Condition()
        self._queue: list[_Request[Any]] = []
        self._leading = False
        self.transactions = 0
        self.requests = 0

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside a grouped transaction and return its result once the group is committed.

        Raises: what ``fn`` raised (only ``fn``'s writes were rolled back), or a copy of the error that failed the
        whole transaction (``sqlite3.Error``; nothing of the group was written)."""
        req: _Request[T] = _Request(fn)
        with self._cond:
            self._queue.append(req)
            while not req.done and self._leading:
                self._cond.wait()
            lead = not req.done
            if lead:
                self._leading = True
        if lead:
            self._lead(req)
        if req.error is not None:
            raise req.error
        return req.result  # type: ignore[return-value]  # set by the group that ran it (done, no error)

    def _lead(self, mine: _Request[Any]) -> None:
        """Commit groups until ``mine`` is done (it may sit behind a full group), then hand the lead on."""
        try:
            while not mine.done:
                self._commit()
                with self._cond:
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()

    def _commit(self) -> None:
        """One group: the requests queued by the time the write lock is ours (so those that arrived while the
        previous group was being written, or while another process held the database, join this one)."""
        group: list[_Request[Any]] = []
        try:
            with self._db.transaction() as conn:
                with self._cond:
                    group = self._queue[:self._max]
                    del self._queue[:self._max]
                for req in group:
                    self._one(conn, req)
            self.transactions += 1
            self.requests += len(group)
        except BaseException as exc:  # the transaction is gone: every request of the group failed
            if not group:  # it never began (BEGIN failed: another process held the lock past the busy timeout)
                with self._cond:
                    group = self._queue[:self._max]
                    del self._queue[:self._max]
            for req in group:
                req.result = None
                req.error = _copy(exc)
        finally:
            for req in group:
                req.done = True

    @staticmethod
    def _one(conn: sqlite3.Connection, req: _Request[Any]) -> None:
        conn.execute("SAVEPOINT grouped")
        try:
            req.result = req.fn(conn)
        except Exception as exc:
            if not conn.in_transaction:  # SQLite ended the whole transaction (I/O error, disk full): fail the group
                raise
            conn.execute("ROLLBACK TO grouped")
            req.error = exc
        conn.execute("RELEASE grouped")


def _copy(exc: BaseException) -> BaseException:
    """One exception object per waiting thread (each raise writes its own traceback into the object)."""
    try:
        dup = copy.copy(exc)
    except Exception:  # an exception type that cannot be copied: share the original
        return exc
    dup.__cause__ = exc
    return dup
