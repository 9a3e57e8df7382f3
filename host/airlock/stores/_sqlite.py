"""Shared SQLite plumbing for the stores: one WAL connection guarded by a lock, explicit transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .files import private_dir, private_file, tighten

__all__ = ["SqliteDb"]


class SqliteDb:
    """One ``sqlite3`` connection usable from any thread, serialised by a :class:`threading.Lock`.

    The connection is in autocommit mode (``isolation_level=None``); :meth:`transaction` wraps a block in
    ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception). The database uses WAL journaling
    and a 5 s busy timeout so that another process (the CLI) can use the same file.

    Args:
        db_path: the database file, created mode 0600 (``stores.files``); its parent directory is created
            (mode 0700) if missing.
        schema: SQL script run once at open (``CREATE TABLE IF NOT EXISTS ...``).
        synchronous: SQLite's ``synchronous`` setting: ``NORMAL`` (default: a commit survives a process crash,
            the last ones may be lost on power loss) or ``FULL`` (fsync on every commit: survives power loss;
            the message log uses it).
    """

    def __init__(self, db_path: Path, schema: str, synchronous: str = "NORMAL") -> None:
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
        self._conn = sqlite3.connect(
            str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
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
            wanted = synchronous or self._synchronous
            if wanted != self._current:
                if wanted not in ("NORMAL", "FULL"):
                    raise ValueError("synchronous must be NORMAL or FULL")
                self._conn.execute(f"PRAGMA synchronous={wanted}")
                self._current = wanted
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                # A COMMIT that fails (a deferred constraint, SQLITE_BUSY) leaves the transaction open on this shared
                # connection, and every later BEGIN would fail: it is rolled back like any other failure.
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have ended it already (I/O error, disk full)
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for a read-only block (autocommit; each statement sees a consistent snapshot)."""
        with self._lock:
            yield self._conn

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()
