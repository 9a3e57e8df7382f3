"""Group commit for the SQLite message log: concurrent durable writes share one transaction and one fsync.

Why: with ``synchronous=FULL`` every ``COMMIT`` fsyncs the WAL, and SQLite has one writer at a time, so N threads
committing at once would pay N fsyncs one after another (each channel's committer, every agent's reply), and
everything else that needs the connection (leases, acks, the outbox) would wait behind each fsync. Here the first
caller that finds no group being written becomes the *leader*: once it holds the write lock it takes every request
queued so far (at most :data:`MAX_GROUP`), runs each in a ``SAVEPOINT`` of one ``BEGIN IMMEDIATE`` transaction and
commits once; callers that arrive meanwhile wait, and one of them leads the next group. There is no thread of its
own: a leader is always a caller (leader/follower group commit, the shape database log writers use).

Early lock release: the group's ``COMMIT`` runs with ``synchronous=NORMAL`` (SQLite writes the WAL frames, no
fsync) and the leader then ``fdatasync``s the ``-wal`` file itself, after it released the write lock and handed the
lead on, so the next group is written while this one syncs. This is the durability ``synchronous=FULL`` gives in
WAL mode (SQLite's FULL is exactly a sync of the WAL at each commit): the WAL is append-only in commit order, so a
sync covers this group and every transaction committed before it; a WAL restart after a checkpoint only happens
once SQLite itself synced the WAL and the database (NORMAL's checkpoint rule), and a power loss during the sync
loses only groups whose callers were not answered yet. Until its sync returns a group is visible to other
transactions but not yet durable: another caller may read it (an agent may lease a message whose webhook is not
answered yet); whatever that caller writes durably is synced after it, so nothing durable can depend on a lost
write, and a message lost that way was never acknowledged to its platform (at-least-once allows the redelivery).

Several processes (``airlock serve --workers N``: every worker has its own committer on the same ``state.db``):
each group is one SQLite write transaction, so groups of different processes are serialised by SQLite's write lock
(queued on the ``<db>-writer`` gate, ``stores._sqlite.SqliteDb``); the WAL is shared and append-only in commit
order whatever the process, so a leader's ``fdatasync`` covers its group and everything committed before it, by any
process. A WAL restart by another process comes only after a checkpoint, which (``synchronous=NORMAL``) syncs the
WAL first, so a group committed but not yet synced by its leader is on disk before its frames can be overwritten;
the WAL file is removed only when the last connection of every process closes, and ``_WalFile`` reopens it if it
was (a new inode). Closing the ``-wal`` descriptor drops no lock: SQLite's WAL locks are on the ``-shm`` file and
the database. So the rules below hold per process, and a caller's return still means its writes are on disk.

Rules:
- A caller returns only after its group's WAL sync returned (with ``synchronous=NORMAL`` for the database, after
  its COMMIT: no sync at all, ``HostConfig.log_synchronous``).
- Requests run in the order they were queued; a caller's next request is queued only after its previous returned.
- An exception raised by one request (a constraint, ``KeyError`` / ``PermissionError`` of ``ack_and_append``) rolls
  back that request's savepoint only and is raised to its caller; the rest of the group commits.
- When the transaction itself fails (``COMMIT``, or an error that ends the transaction: I/O error, disk full),
  every request of the group gets that error and nothing of the group is written. When the WAL sync fails, every
  request of the group gets the ``OSError`` (written, but not known to be durable: its callers answer 5xx).
"""

from __future__ import annotations

import copy
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..stores._sqlite import SqliteDb

T = TypeVar("T")

MAX_GROUP = 256
"""Requests one transaction takes at most; a longer queue is committed in several groups (bounds how long the
write lock is held and how much one failed transaction takes down)."""


class _Request(Generic[T]):
    __slots__ = ("committed", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], T]) -> None:
        self.fn = fn
        self.committed = False
        """Its group's COMMIT returned (visible to other transactions; durable once ``done``)."""
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommitter:
    """Runs write transactions of a :class:`SqliteDb` in groups (module docstring). Thread-safe.

    Args:
        db: the database; with ``synchronous`` FULL each group is made durable by an fdatasync of the WAL after
            its COMMIT, outside the write lock (module docstring); with NORMAL, no fsync at all.
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
        self._fsync = db.synchronous == "FULL"
        self._wal = _WalFile(db.path)
        self.transactions = 0
        self.requests = 0

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside a grouped transaction and return its result once the group is durable.

        Raises: what ``fn`` raised (only ``fn``'s writes were rolled back), or a copy of the error that failed the
        whole group (``sqlite3.Error``: nothing of it was written; ``OSError`` from the WAL's fsync: written but
        not known durable)."""
        req: _Request[T] = _Request(fn)
        with self._cond:
            self._queue.append(req)
            while not req.done and (req.committed or self._leading):
                self._cond.wait()
            lead = not req.done and not req.committed
            if lead:
                self._leading = True
        if lead:
            self._lead(req)
        if req.error is not None:
            raise req.error
        return req.result  # type: ignore[return-value]  # set by the group that ran it (done, no error)

    def _lead(self, mine: _Request[Any]) -> None:
        """Commit groups until ``mine`` is committed (it may sit behind a full group), hand the lead on at once (the
        next group is written while this one syncs), then make the groups durable."""
        groups: list[list[_Request[Any]]] = []
        try:
            while not (mine.committed or mine.done):
                groups.append(self._commit())
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        for group in groups:
            self._make_durable(group)

    def _commit(self) -> list[_Request[Any]]:
        """One group: the requests queued by the time the write lock is ours (so those that arrived while the
        previous group was being written, or while another process held the database, join this one). Committed
        without an fsync of its own (``_make_durable`` follows, outside the lock)."""
        group: list[_Request[Any]] = []
        try:
            with self._db.transaction("NORMAL") as conn:
                with self._cond:
                    group = self._queue[:self._max]
                    del self._queue[:self._max]
                for req in group:
                    self._one(conn, req)
            self.transactions += 1
            self.requests += len(group)
            for req in group:
                req.committed = True
        except BaseException as exc:  # the transaction is gone: every request of the group failed
            if not group:  # it never began (BEGIN failed: another process held the lock past the busy timeout)
                with self._cond:
                    group = self._queue[:self._max]
                    del self._queue[:self._max]
            self._finish(group, exc)
        return group

    def _make_durable(self, group: list[_Request[Any]]) -> None:
        committed = [r for r in group if r.committed and not r.done]
        if not committed:
            return
        try:
            if self._fsync:
                self._wal.sync()
        except OSError as exc:
            self._finish(committed, exc)
            return
        self._finish(committed, None)

    def _finish(self, group: list[_Request[Any]], exc: BaseException | None) -> None:
        with self._cond:
            for req in group:
                if exc is not None:
                    req.result, req.error = None, _copy(exc)
                req.done = True
            self._cond.notify_all()

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

    def close(self) -> None:
        self._wal.close()


class _WalFile:
    """The database's ``-wal`` file, opened once for ``fdatasync``: SQLite writes a committed transaction's frames
    there (in commit order) and, in WAL mode, would fsync it at COMMIT under ``synchronous=FULL``; syncing the same
    file after a ``NORMAL`` COMMIT gives the same durability, for this transaction and every one before it."""

    def __init__(self, db_path: Path) -> None:
        self._path = db_path.with_name(db_path.name + "-wal")
        self._fd: int | None = None
        self._lock = threading.Lock()

    def sync(self) -> None:
        with self._lock:
            fd = self._fd
            if fd is None or os.fstat(fd).st_nlink == 0:  # first use, or the WAL was removed and made again
                if fd is not None:
                    os.close(fd)
                fd = self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
                _sync_dir(self._path.parent)  # the WAL's directory entry, once
        os.fdatasync(fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(exc: BaseException) -> BaseException:
    """One exception object per waiting thread (each raise writes its own traceback into the object)."""
    try:
        dup = copy.copy(exc)
    except Exception:  # an exception type that cannot be copied: share the original
        return exc
    dup.__cause__ = exc
    return dup
