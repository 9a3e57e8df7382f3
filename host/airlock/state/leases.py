"""Leases with fencing tokens: which process runs a channel instance's poller or websocket.

A lease is a row ``(name, holder, token, expires_at)`` in the state database (the same database as the message log:
``state.db`` for SQLite, the PostgreSQL database otherwise). Rules:

- ``acquire(name, holder, ttl_s, now)`` takes the lease when nobody holds it, when it expired (``expires_at <=
  now``), or when ``holder`` holds it already (then it is extended under the same token). Every change of holder,
  and every acquisition after an expiry, increments ``token``: the fencing token grows strictly for one name,
  across all holders and restarts (the row is never deleted; ``release`` only expires it).
- ``renew(lease, ttl_s, now)`` extends a lease still held under its token and not expired; else ``LeaseLost``.
- ``release(lease)`` expires it at once (when still held under its token) so another holder can take it now.
- ``check(fence, now)``: is it still held under that token and unexpired. Advisory only: between the check and a
  write another holder may take the lease. The write itself must be fenced: ``MessageLog.commit(..., fence=...)``
  checks the token in the commit's own transaction (``check_fence_sqlite`` / ``check_fence_pg``) and raises
  ``LeaseLost`` without applying anything. So two holders can never both commit a poll cursor: once B acquired
  (token n+1), every commit of A (token n) fails, and every commit of A that succeeded came before B's acquisition.

Holder ids must be unique per process incarnation (e.g. ``node/pid/random``): a restarted process must not find
its predecessor's lease "already held by it". Times are Unix seconds from the caller; ``expires_at`` comparisons
use the caller's clock, so nodes keep their clocks in sync (NTP) to well under ``ttl_s``; the tokens keep commits
safe whatever the clocks say.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import LeaseLost
from ..stores._sqlite import SqliteDb
from .postgres import PgConn, PgDb

__all__ = ["COMMIT_FENCE", "DEFAULT_TTL_S", "SCHEMA_SQLITE", "Fence", "FenceSource",
           "Lease", "Leases", "PostgresLeases", "SqliteLeases",
           "check_fence_pg", "check_fence_sqlite"]

DEFAULT_TTL_S = 15.0
"""Default lease time to live (issue 12: ``lease_ttl`` 15 s); holders renew every few seconds (a third of it)."""

SCHEMA_SQLITE = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL,
    acquired_at REAL NOT NULL
)"""
"""The SQLite lease table (also created by ``SqliteMessageLog``: fenced commits read it in ``state.db``)."""

# One statement for both engines (upsert with a condition, RETURNING: SQLite 3.35+, PostgreSQL 9.5+); {p} is the
# placeholder. A different holder may take the row only once it expired; the same holder extends its own lease.
_ACQUIRE = """
INSERT INTO leases (name, holder, token, expires_at, acquired_at) VALUES ({p}, {p}, 1, {p}, {p})
ON CONFLICT (name) DO UPDATE SET
    token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > {p} THEN leases.token
                 ELSE leases.token + 1 END,
    acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > {p} THEN leases.acquired_at
                       ELSE excluded.acquired_at END,
    holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.expires_at <= {p} OR leases.holder = excluded.holder
RETURNING name, holder, token, expires_at"""
_RENEW = ("UPDATE leases SET expires_at = {p} WHERE name = {p} AND token = {p} AND expires_at > {p} "
          "RETURNING name, holder, token, expires_at")
_RELEASE = "UPDATE leases SET expires_at = 0 WHERE name = {p} AND token = {p}"
_CHECK = "SELECT 1 FROM leases WHERE name = {p} AND token = {p} AND expires_at > {p}"
_GET = "SELECT name, holder, token, expires_at FROM leases WHERE name = {p}"


@dataclass(frozen=True)
class Fence:
    """What a fenced write checks: lease ``name`` still held under ``token``."""

    name: str
    token: int


@dataclass(frozen=True)
class Lease:
    """A lease held: ``token`` is the fencing token, ``expires_at`` Unix seconds."""

    name: str
    holder: str
    token: int
    expires_at: float

    @property
    def fence(self) -> Fence:
        return Fence(self.name, self.token)


class FenceSource(Protocol):
    """Something holding a lease: ``fence`` is the one to check now (it changes when the lease is re-taken)."""

    @property
    def fence(self) -> Fence: ...


COMMIT_FENCE: contextvars.ContextVar[FenceSource | None] = contextvars.ContextVar(
    "airlock_commit_fence", default=None)
"""The lease that fences the durable commits of the current task (``channels.poll_lease``: set in the task that
holds a poller's lease, inherited by the tasks and callback threads it starts); None: commits are not fenced."""


class Leases(Protocol):
    """The lease API (module docstring). Blocking and thread-safe; errors: the backend's (``StateUnavailable``)."""

    def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> Lease | None:
        """The lease, or None while another holder has it unexpired."""
        ...

    def renew(self, lease: Lease, ttl_s: float, now: float) -> Lease:
        """Extend to ``now + ttl_s``; raises ``LeaseLost`` when it expired or changed token."""
        ...

    def release(self, lease: Lease) -> bool:
        """Expire it now; False when it was not held under that token any more."""
        ...

    def check(self, fence: Fence, now: float) -> bool: ...

    def get(self, name: str) -> Lease | None:
        """The current row (possibly expired), None when the name was never leased."""
        ...

    def close(self) -> None: ...


def _lease(row: Sequence[Any] | None) -> Lease | None:
    if row is None:
        return None
    name, holder, token, expires_at = row
    return Lease(str(name), str(holder), int(token), float(expires_at))


def check_fence_sqlite(conn: sqlite3.Connection, fence: Fence, now: float) -> None:
    """Inside a write transaction: raise ``LeaseLost`` unless ``fence`` still holds (SQLite serialises writers, so
    no acquisition can come between this check and the commit)."""
    if conn.execute(_CHECK.format(p="?"), (fence.name, fence.token, now)).fetchone() is None:
        raise LeaseLost(fence.name, fence.token)


def check_fence_pg(conn: PgConn, fence: Fence, now: float) -> None:
    """Inside a transaction: raise ``LeaseLost`` unless ``fence`` still holds; ``FOR SHARE`` keeps the lease row
    from being taken over until this transaction ends (a concurrent ``acquire`` waits, then sees our commit)."""
    if conn.execute(_CHECK.format(p="%s") + " FOR SHARE", (fence.name, fence.token, now)).fetchone() is None:
        raise LeaseLost(fence.name, fence.token)


class _SqlLeases(abc.ABC):
    """The lease API on one SQL engine: the statements above, with the engine's placeholder ``_p``, its write
    transaction ``_writing`` and its read connection ``_reading`` (the subclasses below)."""

    _p = "?"

    @abc.abstractmethod
    def _writing(self) -> contextlib.AbstractContextManager[Any]:
        """A write transaction on the engine's connection (committed at the end of the block)."""

    @abc.abstractmethod
    def _reading(self) -> contextlib.AbstractContextManager[Any]:
        """A connection for reads."""

    def acquire(self, name: str, holder: str, ttl_s: float, now: float) -> Lease | None:
        with self._writing() as conn:
            row = conn.execute(_ACQUIRE.format(p=self._p), (name, holder, now + ttl_s, now, now, now, now)).fetchone()
        return _lease(row)

    def renew(self, lease: Lease, ttl_s: float, now: float) -> Lease:
        with self._writing() as conn:
            row = conn.execute(_RENEW.format(p=self._p), (now + ttl_s, lease.name, lease.token, now)).fetchone()
        renewed = _lease(row)
        if renewed is None:
            raise LeaseLost(lease.name, lease.token)
        return renewed

    def release(self, lease: Lease) -> bool:
        with self._writing() as conn:
            return bool(conn.execute(_RELEASE.format(p=self._p), (lease.name, lease.token)).rowcount == 1)

    def check(self, fence: Fence, now: float) -> bool:
        with self._reading() as conn:
            return conn.execute(_CHECK.format(p=self._p), (fence.name, fence.token, now)).fetchone() is not None

    def get(self, name: str) -> Lease | None:
        with self._reading() as conn:
            return _lease(conn.execute(_GET.format(p=self._p), (name,)).fetchone())


class SqliteLeases(_SqlLeases):
    """Leases in a SQLite file (``state.db``): for worker processes on one machine."""

    def __init__(self, db_path: Path) -> None:
        self._db = SqliteDb(db_path, SCHEMA_SQLITE, writer_gate=True)

    def _writing(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()

    def _reading(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.reading()

    def close(self) -> None:
        self._db.close()


class PostgresLeases(_SqlLeases):
    """Leases in the PostgreSQL state database (schema ``pg_schema``): for nodes of a cluster."""

    _p = "%s"

    def __init__(self, db: PgDb, *, owns_db: bool = False) -> None:
        self._db = db
        self._owns_db = owns_db

    def _writing(self) -> contextlib.AbstractContextManager[PgConn]:
        return self._db.transaction()

    def _reading(self) -> contextlib.AbstractContextManager[PgConn]:
        return self._db.connection()

    def close(self) -> None:
        if self._owns_db:
            self._db.close()
