"""``SqliteMessageLog``: the embedded message log, one SQLite file (``state.db``) holding the durable workspace,
the inbound log, the dedupe keys and the outbox, in WAL mode with ``synchronous=FULL`` (an acknowledged
webhook's message survives a power loss, not just a crash). Leases, acks and outbox attempt outcomes commit with
``NORMAL`` (their loss only repeats a delivery, which at-least-once allows; the next ``FULL`` commit makes them
durable too). See ``messages.log`` for the rules it keeps.

One connection serialised by a lock (``stores._sqlite.SqliteDb``): SQLite allows one writer at a time anyway,
and the CLI can open the same file from another process (5 s busy timeout).

Group commit (``messages.group_commit``): the durable writes (``commit``, ``ack_and_append``, ``append_outbox``,
``retry``) of concurrent callers share one transaction and one fsync, which runs after the write lock is released
(so leases, acks and the next group do not wait for the disk); each caller still returns only once its writes are
on disk, and one caller's failing write (a savepoint) does not fail the others.

``synchronous`` (``HostConfig.log_synchronous``): ``FULL`` (default) fsyncs the WAL at every durable commit, so an
acknowledged webhook survives a power loss or an OS crash. ``NORMAL`` fsyncs only at checkpoints: a commit still
survives a crash or kill -9 of the gateway (the WAL is in the OS's page cache), but the last commits before a power
loss or kernel crash can be lost although their webhooks were answered 200 (SQLite's WAL documentation); it saves
the fsync's latency on every commit (about 0.2 ms on the benchmark machine's disk, several ms on many cloud disks).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..state.leases import SCHEMA_SQLITE as _LEASES_SCHEMA
from ..state.leases import Fence, check_fence_sqlite
from ..stores._sqlite import SqliteDb, WouldBlock
from .group_commit import GroupCommitter
from .log import DEDUPE_WINDOW_S, OUTBOX_CLAIM_S, RETENTION_S, NewOutbound, ack_results, first_of_each
from .model import Entry, InboundState, NewEntry, OutboxEntry, OutboxState
from .rows import INBOUND_COLS as _INBOUND_COLS
from .rows import OUTBOX_COLS as _OUTBOX_COLS
from .rows import entry_from_row as _entry
from .rows import outbox_from_row as _outbox

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspace (
    channel TEXT NOT NULL, path TEXT NOT NULL, value TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (channel, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_name TEXT,
    thread_id TEXT,
    content TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    attachments_json TEXT NOT NULL,
    agent TEXT NOT NULL,
    session_key TEXT NOT NULL,
    conversation TEXT NOT NULL,
    matched_on TEXT NOT NULL,
    dedupe_key TEXT,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    lease_token TEXT,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS inbound_open ON inbound (agent, state, seq);
CREATE INDEX IF NOT EXISTS inbound_state ON inbound (state);
CREATE INDEX IF NOT EXISTS inbound_acked ON inbound (state, acked_at);
CREATE TABLE IF NOT EXISTS dedupe (
    instance TEXT NOT NULL, key TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (instance, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_seen ON dedupe (seen_at);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    conversation TEXT NOT NULL,
    kind TEXT NOT NULL,
    in_reply_to TEXT,
    payload_json TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    platform_message_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, conversation, seq);
""" + _LEASES_SCHEMA

_REDO_IS_HARMLESS = "NORMAL"
"""``synchronous`` of the transactions whose loss on a power failure only repeats work (a lease, an ack, an outbox
attempt's outcome: the message or reply is offered again, at least once); appends, replies and the workspace stay
``FULL`` (``stores._sqlite.SqliteDb.transaction``)."""


LEASE_READY_SQL = f"SELECT {_INBOUND_COLS} FROM inbound WHERE agent = ? AND state = 'ready' ORDER BY seq LIMIT ?"
LEASE_EXPIRED_SQL = (f"SELECT {_INBOUND_COLS} FROM inbound WHERE agent = ? AND state = 'leased' AND lease_until <= ? "
                     "ORDER BY seq LIMIT ?")
"""``lease``'s two queries: the oldest ready entries and the oldest expired leases of one agent, each walking the
``inbound_open (agent, state, seq)`` index in order and stopping at the limit (one query with ``state = 'ready' OR
...`` made SQLite sort every open entry of the agent: about 19 ms per lease with 40,000 waiting); ``lease`` merges
the two by ``seq``, which gives the same entries in the same order."""


class SqliteMessageLog:
    """The :class:`~airlock.messages.log.MessageLog` on one SQLite file (module docstring).

    Args:
        db_path: the database file (created, with its directory, if missing).
        legacy_workspace_db: a ``workspace.db`` of an older home: its rows are copied in once when this log has
            no workspace rows yet (the old file is left in place, unused).
        synchronous: ``FULL`` (default) or ``NORMAL`` for the durable writes (module docstring).

    ``group`` (``messages.group_commit.GroupCommitter``) counts the grouped transactions and the writes they held.
    """

    def __init__(self, db_path: Path, legacy_workspace_db: Path | None = None, *, synchronous: str = "FULL") -> None:
        self._db = SqliteDb(db_path, _SCHEMA, synchronous=synchronous, writer_gate=True)
        self.group = GroupCommitter(self._db)
        self.path = db_path
        self._add_platform_id_column()
        if legacy_workspace_db is not None and legacy_workspace_db.exists():
            self._import_workspace(legacy_workspace_db)

    def _add_platform_id_column(self) -> None:
        """A ``state.db`` made before world 0.2.0 has no ``outbox.platform_message_id``: add it (NULL for old rows)."""
        with self._db.transaction() as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
            if "platform_message_id" not in columns:
                conn.execute("ALTER TABLE outbox ADD COLUMN platform_message_id TEXT")

    def _import_workspace(self, old: Path) -> None:
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM workspace LIMIT 1").fetchone() is not None:
                return
            src = sqlite3.connect(f"file:{old}?mode=ro", uri=True)
            try:
                rows = src.execute("SELECT channel, path, value, updated_at FROM workspace").fetchall()
            except sqlite3.Error:
                rows = []
            finally:
                src.close()
            conn.executemany("INSERT OR IGNORE INTO workspace VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.group.close()
        self._db.close()

    # ---- workspace + append --------------------------------------------------------------------------------------
    def load_workspace(self, instance: str) -> dict[str, str]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT path, value FROM workspace WHERE channel = ?", (instance,)).fetchall()
        return {str(p): str(v) for p, v in rows}

    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: Fence | None = None) -> list[NewEntry]:
        if not workspace and not entries:
            return []

        def write(conn: sqlite3.Connection) -> list[NewEntry]:
            if fence is not None:  # in the group's transaction: a lost lease rolls back this write only
                check_fence_sqlite(conn, fence, now)
            conn.executemany(
                "INSERT INTO workspace (channel, path, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (channel, path) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                [(instance, p, v, now) for p, v in workspace.items()],
            )
            return [e for e in entries if self._append(conn, e, now)]

        return self.group.run(write)

    def _append(self, conn: sqlite3.Connection, e: NewEntry, now: float) -> bool:
        if e.dedupe_key is not None:
            seen = conn.execute("INSERT INTO dedupe (instance, key, seen_at) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING", (e.instance, e.dedupe_key, now))
            if seen.rowcount == 0:
                return False
        conn.execute(
            f"INSERT INTO inbound ({_INBOUND_COLS.removeprefix('seq, ')}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', 0, NULL, NULL)",
            (e.id, e.instance, e.user_id, e.user_name, e.thread_id, e.content, e.metadata_json,
             json.dumps([a.as_dict() for a in e.attachments]), e.route.agent, e.route.session_key,
             e.route.conversation, e.route.matched_on, e.dedupe_key, now),
        )
        return True

    # ---- inbound ---------------------------------------------------------------------------------------------------
    def lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        with self._db.transaction(_REDO_IS_HARMLESS) as conn:
            return self._lease(conn, agent, limit, visibility_s, now)

    def ack(self, entry_id: str, lease_token: str | None, now: float) -> bool:
        with self._db.transaction(_REDO_IS_HARMLESS) as conn:
            return self._ack(conn, entry_id, lease_token, now)

    def try_lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry] | None:
        """``lease`` if it can run at once without waiting (``SqliteDb.run_nowait``: for the event loop), else
        None (nothing done: call ``lease`` from a worker thread)."""
        try:
            return self._db.run_nowait(lambda conn: self._lease(conn, agent, limit, visibility_s, now),
                                       _REDO_IS_HARMLESS)
        except WouldBlock:
            return None

    def try_ack(self, entry_id: str, lease_token: str | None, now: float) -> bool | None:
        """``ack`` if it can run at once without waiting, else None (as ``try_lease``)."""
        try:
            return self._db.run_nowait(lambda conn: self._ack(conn, entry_id, lease_token, now), _REDO_IS_HARMLESS)
        except WouldBlock:
            return None

    def ack_many(self, items: Sequence[tuple[str, str | None]], now: float) -> list[bool]:
        with self._db.transaction(_REDO_IS_HARMLESS) as conn:
            return self._ack_many(conn, items, now)

    def try_ack_many(self, items: Sequence[tuple[str, str | None]], now: float) -> list[bool] | None:
        """``ack_many`` if it can run at once without waiting, else None (as ``try_lease``)."""
        try:
            return self._db.run_nowait(lambda conn: self._ack_many(conn, items, now), _REDO_IS_HARMLESS)
        except WouldBlock:
            return None

    @classmethod
    def _ack_many(cls, conn: sqlite3.Connection, items: Sequence[tuple[str, str | None]], now: float) -> list[bool]:
        # one statement per entry, in the caller's one transaction: SQLite runs them in-process (no round trips)
        acked = {i for i, token in first_of_each(items).items() if cls._ack(conn, i, token, now)}
        return ack_results(items, acked)

    @staticmethod
    def _lease(conn: sqlite3.Connection, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        ready = conn.execute(LEASE_READY_SQL, (agent, limit)).fetchall()
        expired = conn.execute(LEASE_EXPIRED_SQL, (agent, now, limit)).fetchall()
        rows = sorted(ready + expired, key=lambda r: int(r[0]))[:limit]
        leased = []
        for row in rows:
            token = secrets.token_urlsafe(12)
            conn.execute("UPDATE inbound SET state = 'leased', lease_until = ?, lease_token = ?, "
                         "attempts = attempts + 1 WHERE seq = ?", (now + visibility_s, token, row[0]))
            leased.append(_entry(row, state="leased", attempts=row[16] + 1, lease_until=now + visibility_s,
                                 lease_token=token))
        return leased

    @staticmethod
    def _ack(conn: sqlite3.Connection, entry_id: str, lease_token: str | None, now: float) -> bool:
        sql = "UPDATE inbound SET state = 'acked', acked_at = ?, lease_token = NULL WHERE id = ? AND state != 'acked'"
        args: tuple[Any, ...] = (now, entry_id)
        if lease_token is not None:
            sql += " AND lease_token = ?"
            args += (lease_token,)
        return conn.execute(sql, args).rowcount == 1

    def release(self, entry_id: str, lease_token: str | None) -> bool:
        sql = "UPDATE inbound SET state = 'ready', lease_until = NULL, lease_token = NULL WHERE id = ? " \
              "AND state = 'leased'"
        args: tuple[Any, ...] = (entry_id,)
        if lease_token is not None:
            sql += " AND lease_token = ?"
            args += (lease_token,)
        with self._db.transaction(_REDO_IS_HARMLESS) as conn:
            return conn.execute(sql, args).rowcount == 1

    def ack_and_append(self, entry_id: str, lease_token: str | None, outbound: Sequence[NewOutbound],
                       now: float) -> list[OutboxEntry]:
        def write(conn: sqlite3.Connection) -> list[OutboxEntry]:
            row = conn.execute("SELECT state, lease_token FROM inbound WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise KeyError(entry_id)
            state, token = row
            if state == "leased" and lease_token is not None and token != lease_token:
                raise PermissionError(f"message {entry_id} is leased under another token")
            self._ack(conn, entry_id, None, now)
            return [self._append_outbox(conn, o, now) for o in outbound]

        return self.group.run(write)

    def get(self, entry_id: str) -> Entry | None:
        with self._db.reading() as conn:
            row = conn.execute(f"SELECT {_INBOUND_COLS} FROM inbound WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row) if row is not None else None

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        with self._db.reading() as conn:  # the ids as one JSON array: any number, one bound parameter
            rows = conn.execute(f"SELECT {_INBOUND_COLS} FROM inbound WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps(list(entry_ids)),)).fetchall()
        return {e.id: e for e in map(_entry, rows)}

    def list_inbound(self, state: InboundState | None = None, limit: int = 100) -> list[Entry]:
        where, args = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_INBOUND_COLS} FROM inbound {where} ORDER BY seq DESC LIMIT ?",
                                (*args, limit)).fetchall()
        return [_entry(r) for r in rows]

    def waiting(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("SELECT count(*) FROM inbound WHERE state = 'ready'").fetchone()[0])

    def backlog(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("SELECT count(*) FROM inbound WHERE state IN ('ready', 'leased')").fetchone()[0])

    # ---- outbox ---------------------------------------------------------------------------------------------------
    def append_outbox(self, outbound: Sequence[NewOutbound], now: float) -> list[OutboxEntry]:
        return self.group.run(lambda conn: [self._append_outbox(conn, o, now) for o in outbound])

    def _append_outbox(self, conn: sqlite3.Connection, o: NewOutbound, now: float) -> OutboxEntry:
        if o.idempotency_key is not None:
            row = conn.execute(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE idempotency_key = ?",
                               (o.idempotency_key,)).fetchone()
            if row is not None:
                return _outbox(row)
        cur = conn.execute(
            "INSERT INTO outbox (id, instance, conversation, kind, in_reply_to, payload_json, idempotency_key, state, "
            "attempts, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            (o.id, o.instance, o.conversation, o.kind, o.in_reply_to, json.dumps(dict(o.payload)), o.idempotency_key,
             max(now, o.not_before), now, now))
        return OutboxEntry(id=o.id, seq=int(cur.lastrowid or 0), instance=o.instance, conversation=o.conversation,
                           kind=o.kind, in_reply_to=o.in_reply_to, payload=dict(o.payload), state="pending",
                           attempts=0, next_attempt_at=max(now, o.not_before), last_error=None, created_at=now,
                           updated_at=now)

    def due_outbox(self, now: float, limit: int, claim_s: float = OUTBOX_CLAIM_S) -> list[OutboxEntry]:
        del claim_s  # one process per state.db: its sender's in-flight set is the claim (MessageLog.due_outbox)
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT {_OUTBOX_COLS} FROM outbox AS o WHERE o.state = 'pending' AND o.seq = "
                "(SELECT min(p.seq) FROM outbox AS p WHERE p.state = 'pending' AND p.conversation = o.conversation) "
                "AND o.next_attempt_at <= ? ORDER BY o.seq LIMIT ?", (now, limit)).fetchall()
        return [_outbox(r) for r in rows]

    def renew_outbox(self, entry_ids: Sequence[str], until: float) -> None:
        """Nothing to renew: SQLite claims nothing (``due_outbox``)."""

    def release_outbox(self, entry_ids: Sequence[str]) -> None:
        """Nothing to release: SQLite claims nothing (``due_outbox``)."""

    def mark_sent(self, entry_id: str, now: float, platform_message_id: str | None = None) -> None:
        self._update_outbox("state = 'sent', attempts = attempts + 1, last_error = NULL, platform_message_id = ?",
                            entry_id, now, platform_message_id)

    def replace_pending(self, entry_id: str, payload: Mapping[str, object], now: float,
                        next_attempt_at: float | None = None) -> bool:
        with self._db.transaction(_REDO_IS_HARMLESS) as conn:
            return conn.execute(
                "UPDATE outbox SET payload_json = ?, next_attempt_at = coalesce(?, next_attempt_at), updated_at = ? "
                "WHERE id = ? AND state = 'pending' AND attempts = 0 AND next_attempt_at > ?",
                (json.dumps(dict(payload)), next_attempt_at, now, entry_id, now)).rowcount == 1

    def reschedule(self, entry_id: str, next_attempt_at: float, error: str, now: float) -> None:
        self._update_outbox("attempts = attempts + 1, next_attempt_at = ?, last_error = ?", entry_id, now,
                            next_attempt_at, error)

    def dead_letter(self, entry_id: str, error: str, now: float) -> None:
        self._update_outbox("state = 'failed', attempts = attempts + 1, last_error = ?", entry_id, now, error)

    def retry(self, entry_id: str, now: float) -> bool:
        return self.group.run(lambda conn: conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? "
            "WHERE id = ? AND state = 'failed'", (now, now, entry_id)).rowcount == 1)

    def _update_outbox(self, assignments: str, entry_id: str, now: float, *args: Any) -> None:
        with self._db.transaction(_REDO_IS_HARMLESS) as conn:
            conn.execute(f"UPDATE outbox SET {assignments}, updated_at = ? WHERE id = ?", (*args, now, entry_id))

    def get_outbox(self, entry_id: str) -> OutboxEntry | None:
        with self._db.reading() as conn:
            row = conn.execute(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return _outbox(row) if row is not None else None

    def list_outbox(self, state: OutboxState | None = None, limit: int = 100) -> list[OutboxEntry]:
        where, args = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_OUTBOX_COLS} FROM outbox {where} ORDER BY seq DESC LIMIT ?",
                                (*args, limit)).fetchall()
        return [_outbox(r) for r in rows]

    # ---- housekeeping ----------------------------------------------------------------------------------------------
    def compact(self, now: float, retention_s: float = RETENTION_S, dedupe_window_s: float = DEDUPE_WINDOW_S) -> int:
        cutoff = now - retention_s
        with self._db.transaction() as conn:
            removed = conn.execute("DELETE FROM inbound WHERE state = 'acked' AND acked_at < ?", (cutoff,)).rowcount
            removed += conn.execute("DELETE FROM outbox WHERE state IN ('sent', 'failed') AND updated_at < ?",
                                    (cutoff,)).rowcount
            removed += conn.execute("DELETE FROM dedupe WHERE seen_at < ?", (now - dedupe_window_s,)).rowcount
        return removed

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" when the file is sound)."""
        with self._db.reading() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
