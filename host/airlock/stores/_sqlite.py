"""Shared SQLite plumbing for the stores: one WAL connection guarded by a lock, explicit transactions."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .files import private_dir, private_file, tighten

__all__ = ["SqliteDb", "WouldBlock"]

T = TypeVar("T")


BUSY_TIMEOUT_MS = 5000
"""How long a transaction waits for SQLite's write lock held by a connection outside the writer gate (the CLI)."""


class WouldBlock(Exception):
    """``SqliteDb.run_nowait``: the connection or the write lock is taken; nothing was done."""


class SqliteDb:
    """One ``sqlite3`` connection usable from any thread, serialised by a :class:`threading.Lock`.

    The connection is in autocommit mode (``isolation_level=None``); :meth:`transaction` wraps a block in
    ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception). The database uses WAL journaling
    and a 5 s busy timeout so that another process (the CLI) can use the same file.

    With ``writer_gate`` (the state database: ``airlock serve --workers N`` writes it from several processes),
    writers queue on an ``flock`` of ``<db>-writer`` before ``BEGIN IMMEDIATE``: the kernel wakes the next writer
    the moment the lock is released, where SQLite's busy handler, finding the write lock taken, sleeps 1 to 100 ms
    before trying again (measured: two workers committing webhooks reached 0.67x the commits per second of one;
    0.97x with the gate). The gate is held around one transaction only; a process that dies releases it with its
    file descriptors.

    Args:
        db_path: the database file, created mode 0600 (``stores.files``); its parent directory is created
            (mode 0700) if missing.
        schema: SQL script run once at open (``CREATE TABLE IF NOT EXISTS ...``).
        synchronous: SQLite's ``synchronous`` setting: ``NORMAL`` (default: a commit survives a process crash,
            the last ones may be lost on power loss) or ``FULL`` (fsync on every commit: survives power loss;
            the message log uses it).
        writer_gate: queue writers of every process on ``<db>-writer`` (above). Every ``SqliteDb`` of one file
            must say the same; a transaction must never open another gated transaction on the same file (the
            second ``flock`` would wait for the first forever).
    """

    def __init__(self, db_path: Path, schema: str, synchronous: str = "NORMAL", *, writer_gate: bool = False) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(db_path)
        private_dir(self.path.parent)
        # Created 0600 before SQLite opens it (SQLite would use 0644 less the umask); the -wal and -shm files
        # take the database's mode; leftovers of an older install are tightened.
        private_file(self.path)
        for suffix in ("-wal", "-shm", "-journal"):
            tighten(self.path.with_name(self.path.name + suffix))
        self._lock = threading.Lock()
        self._gate = -1
        if writer_gate:
            self._gate = os.open(self.path.with_name(self.path.name + "-writer"),
                                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._autocheckpoint = int(self._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        self._synchronous = self._current = synchronous
        with self.transaction() as conn:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @property
    def synchronous(self) -> str:
        """The database's own ``synchronous`` setting (``NORMAL`` or ``FULL``), as opened."""
        return self._synchronous

    @contextmanager
    def transaction(self, synchronous: str | None = None) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one ``BEGIN IMMEDIATE`` transaction.

        ``synchronous`` (``NORMAL`` or ``FULL``) overrides the database's setting for this transaction only. In WAL
        mode a ``NORMAL`` commit is not fsynced by itself, but the next ``FULL`` commit fsyncs the WAL with it: so a
        transaction whose loss on power failure is harmless (a lease, an ack: the message is offered again) can
        skip its fsync without weakening the ``FULL`` ones."""
        with self._lock:
            self._set_synchronous(synchronous)
            if self._gate >= 0:
                fcntl.flock(self._gate, fcntl.LOCK_EX)  # the writers of other processes (class docstring)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    # A COMMIT that fails (a deferred constraint, SQLITE_BUSY) leaves the transaction open on this
                    # shared connection, and every later BEGIN would fail: it is rolled back like any other failure.
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have ended it already (I/O error, disk full)
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                if self._gate >= 0:
                    fcntl.flock(self._gate, fcntl.LOCK_UN)

    def run_nowait(self, fn: Callable[[sqlite3.Connection], T], synchronous: str | None = None) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, as :meth:`transaction` does, but never wait:
        for a caller on the event loop (an agent's lease or ack: a hand-off to a worker thread and back cost
        about twice the transaction's own CPU, measured). Raises :class:`WouldBlock`, having done nothing, when
        this connection is in use, another process holds the writer gate, or SQLite's write lock is taken
        (busy timeout 0 for this transaction). Its ``COMMIT`` runs no automatic checkpoint (which syncs the WAL
        and the database file: milliseconds on the loop); the next commit of any other caller runs it.
        ``fn`` must be short: it runs on the caller's thread with the connection held."""
        if not self._lock.acquire(blocking=False):
            raise WouldBlock
        try:
            if self._gate >= 0:
                try:
                    fcntl.flock(self._gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise WouldBlock from None
            try:
                return self._nowait(fn, synchronous)
            finally:
                if self._gate >= 0:
                    fcntl.flock(self._gate, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _nowait(self, fn: Callable[[sqlite3.Connection], T], synchronous: str | None) -> T:
        """``run_nowait``'s transaction (the caller holds the lock and the gate)."""
        self._set_synchronous(synchronous)
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise WouldBlock from None
                raise
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        finally:
            conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _set_synchronous(self, synchronous: str | None) -> None:
        wanted = synchronous or self._synchronous
        if wanted != self._current:
            if wanted not in ("NORMAL", "FULL"):
                raise ValueError("synchronous must be NORMAL or FULL")
            self._conn.execute(f"PRAGMA synchronous={wanted}")
            self._current = wanted

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for a read-only block (autocommit; each statement sees a consistent snapshot)."""
        with self._lock:
            yield self._conn

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()
            if self._gate >= 0:
                os.close(self._gate)
                self._gate = -1
