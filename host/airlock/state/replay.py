"""Webhook replay caches shared by every process on one state database (Slack and Discord signatures,
``inbound.verifiers``): a signed request replayed to *another* node or worker within its timestamp window is
refused as it is on the node that accepted it first.

``SharedReplayCache.seen(key, expires_at, now)`` has the in-memory ``ReplayCache``'s contract: True when ``key`` was
recorded (by any process) and has not expired; otherwise record it until ``expires_at`` and return False. One
statement decides, atomically across processes: insert the key, or take over an expired row; a live row of
another request makes it "seen". A local ``ReplayCache`` answers repeats this process saw itself without a round
trip. Rows are ``replay_seen (scope, key, expires_at)`` (``scope``: the channel); expired rows are deleted every
:data:`PRUNE_EVERY` records.

Errors: ``StateUnavailable`` when PostgreSQL cannot be reached (the webhook is answered 503, not accepted); for
:data:`DOWN_PAUSE_S` after such a failure it is raised at once. ``seen`` is called on the event loop (verifiers are
synchronous): one round trip per signed webhook that this process has not seen itself.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import StateUnavailable
from ..inbound.verifiers.base import ReplayCache
from ..stores._sql import PgQmarkDb, SqlDb
from ..stores._sqlite import SqliteDb
from .postgres import PgDb

__all__ = ["DOWN_PAUSE_S", "PRUNE_EVERY", "SCHEMA_SQLITE", "SharedReplayCache"]

DOWN_PAUSE_S = 2.0
"""After a failed database call, seconds during which ``seen`` fails at once (``StateUnavailable``) instead of
waiting for a connection again: verifiers run on the event loop, which must not stall on every request."""
PRUNE_EVERY = 1000
"""Records between deletions of the scope's expired rows (bounds the table to about one window of traffic)."""

SCHEMA_SQLITE = """
CREATE TABLE IF NOT EXISTS replay_seen (
    scope TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (scope, key)
)"""

_RECORD = ("INSERT INTO replay_seen (scope, key, expires_at) VALUES (?, ?, ?) "
           "ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at "
           "WHERE replay_seen.expires_at <= ? RETURNING 1")


class SharedReplayCache:
    """The replay cache of one ``scope`` (a channel) on a shared database (module docstring). Thread-safe.

    Args:
        db: ``PgDb`` (the PostgreSQL state database), a SQLite file path (workers on one machine), or a ``SqlDb``.
        scope: the channel name.
        local: the in-memory front cache (default: a new ``ReplayCache``).
    """

    def __init__(self, db: PgDb | Path | SqlDb, scope: str, local: ReplayCache | None = None) -> None:
        if isinstance(db, PgDb):
            self._db: SqlDb = PgQmarkDb(db)
        elif isinstance(db, Path):
            self._db = SqliteDb(db, SCHEMA_SQLITE)
        else:
            self._db = db
        self.scope = scope
        self._local = local if local is not None else ReplayCache()
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._down_until = 0.0

    def seen(self, key: str, expires_at: float, now: float) -> bool:
        with self._lock:
            if self._local.known(key, now):
                return True
        if time.monotonic() < self._down_until:  # failed just now: do not hold the event loop again
            raise StateUnavailable("replay cache: database down", retry_after=int(DOWN_PAUSE_S) + 1)
        try:
            with self._db.transaction() as conn:
                recorded: Any = conn.execute(_RECORD, (self.scope, key, expires_at, now)).fetchone()
                if next(self._count) % PRUNE_EVERY == 0:
                    conn.execute("DELETE FROM replay_seen WHERE scope = ? AND expires_at <= ?", (self.scope, now))
        except StateUnavailable:
            self._down_until = time.monotonic() + DOWN_PAUSE_S
            raise
        with self._lock:  # only once the database has it: a request refused with 503 may come again
            self._local.seen(key, expires_at, now)
        return recorded is None

    def close(self) -> None:
        self._db.close()
