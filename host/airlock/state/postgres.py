"""``PgDb``: a PostgreSQL state database shared by the state backends of one process (message log, leases,
pairing, secrets, replay caches): a psycopg 3 connection pool, the schema brought up to date at open
(``migrations``), explicit transactions, and connection failures turned into :class:`StateUnavailable`.

Why the sync API and a pool: the backends' protocols (``messages.log.MessageLog``) are blocking and thread-safe,
called from worker threads (``asyncio.to_thread``); each call borrows a connection for one transaction. A pooled
connection is checked on borrow (an empty query, one round trip) when it was idle for more than ``CHECK_IDLE_S`` or
its socket has something to read while idle (the server's goodbye when it shut down or was restarted, or the end
of the stream), so after a database restart the first callers do not fail on dead connections. A connection used
within that time with a quiet socket is lent without a round trip: the check on every borrow cost one per
transaction under load (measured ~0.1 ms of wall time each).
"""

from __future__ import annotations

import select
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from ..errors import StateUnavailable
from .migrations import migrate
from .pg_schema import MIGRATIONS

__all__ = ["APPENDED_CHANNEL", "CLUSTER_CHANNEL", "CONNECT_WAIT_S", "POOL_MAX", "PgConn", "PgDb"]

PgConn = psycopg.Connection[tuple[Any, ...]]

CLUSTER_CHANNEL = "airlock_cluster"
"""The LISTEN/NOTIFY channel on which a node tells the others of a change (``state.cluster``)."""
APPENDED_CHANNEL = "airlock_appended"
"""The LISTEN/NOTIFY channel on which a commit tells every node which agents got new entries
(``messages.wakeup``), so agents waiting on another node lease them at once."""
POOL_MAX = 16
"""Connections one process holds at most (the worker threads that touch state at once; the rest wait)."""
CONNECT_WAIT_S = 3.0
"""Seconds a call waits for a pooled connection (and a new connection for its handshake) before it fails with
StateUnavailable: a webhook is answered 503 well within the platforms' timeouts (Slack's: 3 s)."""
RECONNECT_WINDOW_S = 5.0
"""Seconds the pool keeps retrying a failed connection with its backoff (1 s, 2 s, ...) before it gives that attempt
up; the next caller starts a fresh attempt at once. It bounds how long the gateway keeps answering 503 after the
database is back (psycopg_pool's default, 300 s, lets the backoff grow to minutes during a long outage)."""
CHECK_IDLE_S = 1.0
"""A pooled connection returned more than this many seconds ago is checked (an empty query) before it is lent
again. One used more recently is checked only if its socket is readable (module docstring); a connection that died
without a word within that second (a network partition) fails its one transaction with StateUnavailable (a webhook
answered 503, which the platform retries) and the pool drops it."""
_TRANSIENT: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # server gone, connection refused/lost, admin shutdown, pool timeout
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


class PgDb:
    """A pool on ``dsn`` with the schema migrated (module docstring).

    Raises (constructor): StateUnavailable when the database cannot be reached within ``connect_wait_s``;
    ``ConfigError`` when its schema is newer than this Airlock.
    """

    def __init__(self, dsn: str, *, max_size: int = POOL_MAX, connect_wait_s: float = CONNECT_WAIT_S,
                 schema_target: int | None = None) -> None:
        self._idle = _IdleCheck(CHECK_IDLE_S)
        self.pool: psycopg_pool.ConnectionPool[PgConn] = psycopg_pool.ConnectionPool(
            dsn, min_size=1, max_size=max_size, open=False, timeout=connect_wait_s, name="airlock-state",
            reconnect_timeout=RECONNECT_WINDOW_S,
            kwargs={"autocommit": True, "connect_timeout": max(2, int(connect_wait_s))},
            check=self._idle.check, reset=self._idle.returned)
        try:
            with _transient("connect"):
                self.pool.open(wait=True, timeout=connect_wait_s)
            with self.connection() as conn:
                migrate(conn, MIGRATIONS, schema_target)
        except BaseException:
            self.pool.close()
            raise

    @contextmanager
    def connection(self) -> Iterator[PgConn]:
        """A pooled connection in autocommit mode (each statement its own transaction)."""
        with _transient("query"), self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[PgConn]:
        """A pooled connection inside one transaction: committed when the block ends, rolled back on any
        exception (a lost connection: StateUnavailable, nothing applied)."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close every connection (idempotent)."""
        self.pool.close()


@contextmanager
def _transient(what: str) -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as exc:
        # the class name only: libpq's text can carry the server's address, never shown to a platform
        raise StateUnavailable(f"{what} failed: {type(exc).__name__}") from exc


class _IdleCheck:
    """The pool's ``check``/``reset`` callbacks: check a connection on borrow only when it was idle for more than
    ``idle_s`` (``CHECK_IDLE_S``), or was never returned."""

    def __init__(self, idle_s: float) -> None:
        self._idle_s = idle_s
        self._returned: weakref.WeakKeyDictionary[PgConn, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # the callbacks run on the borrowing/returning threads

    def returned(self, conn: PgConn) -> None:
        with self._lock:
            self._returned[conn] = time.monotonic()

    def check(self, conn: PgConn) -> None:
        with self._lock:
            at = self._returned.get(conn)
        if at is None or time.monotonic() - at > self._idle_s or _readable(conn):
            psycopg_pool.ConnectionPool.check_connection(conn)


def _readable(conn: PgConn) -> bool:
    """Whether an idle connection's socket has data or an end of stream waiting: PostgreSQL sends nothing unasked
    to a connection that does not LISTEN, but its FATAL "terminating connection" at shutdown, and the kernel reports
    a closed peer as readable. One poll syscall, no round trip."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no socket any more: let the real check say so
        return True
