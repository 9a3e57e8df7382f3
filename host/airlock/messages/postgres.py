"""``PostgresMessageLog``: the message log on PostgreSQL (``state = "postgresql://..."``), for several processes
and nodes sharing one log. Same tables and rules as ``messages.sqlite`` (see ``messages.log``), on a connection
pool (``state.postgres.PgDb``); schema in ``state.pg_schema``.

What differs from SQLite, and why:
- Concurrency: every node leases from the same table. ``lease`` picks rows with ``FOR UPDATE SKIP LOCKED``, so
  concurrent leasers never wait on each other nor hand out one entry twice; ``ack_and_append`` locks the entry's
  row (``FOR UPDATE``) so an ack and a competing lease or ack are serialised.
- Order: ``seq`` comes from an identity column, allocated at insert; two nodes committing at once may commit in the
  other order, so "the order they were committed" is per node. One channel instance's callbacks run one at a time
  (on the node holding its lease, for pollers), which keeps each conversation in order.
- Outbox: every node's sender reads the same outbox. ``due_outbox`` claims the heads it returns (``claim_until``,
  rows locked ``FOR UPDATE SKIP LOCKED`` and re-checked on their newest version), so one reply is sent by one node;
  the claim ends when the outcome is written, or expires (``log.OUTBOX_CLAIM_S``) when its node died.
- Durability: PostgreSQL's commit is durable once it returns (``synchronous_commit`` is the server's choice).
- Failures: a lost or refused connection raises ``errors.StateUnavailable`` (nothing applied).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..state.leases import Fence, check_fence_pg
from ..state.postgres import CONNECT_WAIT_S, PgConn, PgDb
from .log import DEDUPE_WINDOW_S, OUTBOX_CLAIM_S, RETENTION_S, NewOutbound, ack_results, first_of_each
from .model import Entry, InboundState, NewEntry, OutboxEntry, OutboxState
from .rows import INBOUND_COLS as _INBOUND_COLS
from .rows import OUTBOX_COLS as _OUTBOX_COLS
from .rows import entry_from_row as _entry
from .rows import outbox_from_row as _outbox
from .rows import qualified as _qualified
from .wakeup import notify_appended

# A lease token: 122 random bits from the server's strong generator (gen_random_uuid, PostgreSQL 13+).
_NEW_TOKEN = "replace(gen_random_uuid()::text, '-', '')"


class PostgresMessageLog:
    """The :class:`~airlock.messages.log.MessageLog` on PostgreSQL (module docstring).

    Args:
        db: the shared database (pool + migrated schema); closed by :meth:`close` only when ``owns_db``.
    """

    notify_on_commit = True
    """Send ``NOTIFY airlock_appended`` in each commit that appended entries (``messages.wakeup``); the Redis bus
    sends it when it publishes instead."""

    def __init__(self, db: PgDb, *, owns_db: bool = False) -> None:
        self._db = db
        self._owns_db = owns_db

    @classmethod
    def open(cls, dsn: str, connect_wait_s: float = CONNECT_WAIT_S) -> PostgresMessageLog:
        """A log on its own pool (the CLI, tests; the host shares one ``PgDb`` between its stores)."""
        return cls(PgDb(dsn, connect_wait_s=connect_wait_s), owns_db=True)

    def close(self) -> None:
        if self._owns_db:
            self._db.close()

    # ---- workspace + append --------------------------------------------------------------------------------------
    def load_workspace(self, instance: str) -> dict[str, str]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT path, value FROM workspace WHERE channel = %s", (instance,)).fetchall()
        return {str(p): str(v) for p, v in rows}

    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: Fence | None = None) -> list[NewEntry]:
        if not workspace and not entries:
            return []
        with self._db.transaction() as conn:
            if fence is not None:
                check_fence_pg(conn, fence, now)
            if workspace:
                # sorted: two nodes writing the same keys lock them in one order (no deadlock)
                conn.cursor().executemany(
                    "INSERT INTO workspace (channel, path, value, updated_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (channel, path) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    [(instance, p, workspace[p], now) for p in sorted(workspace)])
            appended = [e for e in entries if _append(conn, e, now)]
            if self.notify_on_commit:  # agents waiting on other nodes lease them at once (``messages.wakeup``)
                notify_appended(conn, [e.route.agent for e in appended])
            return appended

    # ---- inbound ---------------------------------------------------------------------------------------------------
    def lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"WITH picked AS (SELECT seq FROM inbound WHERE agent = %s AND state <> 'acked' "
                "AND (state = 'ready' OR lease_until <= %s) ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"UPDATE inbound AS i SET state = 'leased', lease_until = %s, lease_token = {_NEW_TOKEN}, "
                f"attempts = i.attempts + 1 FROM picked WHERE i.seq = picked.seq RETURNING {_qualified('i')}",
                (agent, now, limit, now + visibility_s)).fetchall()
        return sorted((_entry(r) for r in rows), key=lambda e: e.seq)

    def ack(self, entry_id: str, lease_token: str | None, now: float) -> bool:
        with self._db.transaction() as conn:
            return _ack(conn, entry_id, lease_token, now)

    def ack_many(self, items: Sequence[tuple[str, str | None]], now: float) -> list[bool]:
        return ack_results(items, {entry_id for entry_id, _agent, _bus_id in self._ack_batch(items, now)})

    def _ack_batch(self, items: Sequence[tuple[str, str | None]], now: float) -> list[tuple[str, str, str | None]]:
        """Acknowledge the first item of each id of ``items``; ``(id, agent, bus_id)`` of each entry acknowledged.
        One set-based statement in autocommit: atomic on its own (one transaction), one round trip for the batch.
        The ids go sorted, so two batches naming the same entries lock their rows in one order (no deadlock)."""
        first = sorted(first_of_each(items).items())
        with self._db.connection() as conn:
            rows = conn.execute(
                "UPDATE inbound AS i SET state = 'acked', acked_at = %s, lease_token = NULL "
                "FROM unnest(%s::text[], %s::text[]) AS b(id, token) WHERE i.id = b.id AND i.state <> 'acked' "
                "AND (b.token IS NULL OR i.lease_token = b.token) RETURNING i.id, i.agent, i.bus_id",
                (now, [i for i, _t in first], [t for _i, t in first])).fetchall()
        return [(str(r[0]), str(r[1]), None if r[2] is None else str(r[2])) for r in rows]

    def release(self, entry_id: str, lease_token: str | None) -> bool:
        sql, args = release_statement(entry_id, lease_token)
        with self._db.transaction() as conn:
            return conn.execute(sql, args).rowcount == 1

    def ack_and_append(self, entry_id: str, lease_token: str | None, outbound: Sequence[NewOutbound],
                       now: float) -> list[OutboxEntry]:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT state, lease_token FROM inbound WHERE id = %s FOR UPDATE",
                               (entry_id,)).fetchone()
            if row is None:
                raise KeyError(entry_id)
            state, token = row
            if state == "leased" and lease_token is not None and token != lease_token:
                raise PermissionError(f"message {entry_id} is leased under another token")
            _ack(conn, entry_id, None, now)
            return [_append_outbox(conn, o, now) for o in outbound]

    def get(self, entry_id: str) -> Entry | None:
        with self._db.connection() as conn:
            row = conn.execute(f"SELECT {_INBOUND_COLS} FROM inbound WHERE id = %s", (entry_id,)).fetchone()
        return _entry(row) if row is not None else None

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_INBOUND_COLS} FROM inbound WHERE id = ANY(%s)",
                                (list(entry_ids),)).fetchall()
        return {e.id: e for e in map(_entry, rows)}

    def list_inbound(self, state: InboundState | None = None, limit: int = 100) -> list[Entry]:
        where, args = ("WHERE state = %s", (state,)) if state is not None else ("", ())
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_INBOUND_COLS} FROM inbound {where} ORDER BY seq DESC LIMIT %s",
                                (*args, limit)).fetchall()
        return [_entry(r) for r in rows]

    def waiting(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute("SELECT count(*) FROM inbound WHERE state = 'ready'").fetchone()
        return int(row[0]) if row else 0

    def backlog(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute("SELECT count(*) FROM inbound WHERE state <> 'acked'").fetchone()
        return int(row[0]) if row else 0

    # ---- outbox ---------------------------------------------------------------------------------------------------
    def append_outbox(self, outbound: Sequence[NewOutbound], now: float) -> list[OutboxEntry]:
        with self._db.transaction() as conn:
            return [_append_outbox(conn, o, now) for o in outbound]

    def due_outbox(self, now: float, limit: int, claim_s: float = OUTBOX_CLAIM_S) -> list[OutboxEntry]:
        # ``head``: the oldest pending entry of each conversation (a snapshot: DISTINCT ON cannot lock). ``picked``
        # locks the heads that are due and unclaimed, skipping rows another node is claiming right now; the
        # conditions are on ``o`` so that PostgreSQL re-checks them on a row's newest version after the lock (an
        # entry claimed or sent by a node that committed after this statement's snapshot is dropped, never resent).
        with self._db.transaction() as conn:
            rows = conn.execute(
                "WITH head AS (SELECT DISTINCT ON (conversation) seq FROM outbox WHERE state = 'pending' "
                "ORDER BY conversation, seq), "
                "picked AS (SELECT o.seq FROM outbox AS o JOIN head ON o.seq = head.seq "
                "WHERE o.state = 'pending' AND o.next_attempt_at <= %s "
                "AND (o.claim_until IS NULL OR o.claim_until <= %s) ORDER BY o.seq LIMIT %s "
                "FOR UPDATE OF o SKIP LOCKED) "
                "UPDATE outbox AS u SET claim_until = %s FROM picked WHERE u.seq = picked.seq "
                f"RETURNING {_qualified('u', _OUTBOX_COLS)}", (now, now, limit, now + claim_s)).fetchall()
        return sorted((_outbox(r) for r in rows), key=lambda e: e.seq)

    def renew_outbox(self, entry_ids: Sequence[str], until: float) -> None:
        if entry_ids:
            with self._db.transaction() as conn:
                conn.execute("UPDATE outbox SET claim_until = %s WHERE id = ANY(%s) AND state = 'pending' "
                             "AND claim_until IS NOT NULL", (until, list(entry_ids)))

    def release_outbox(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            with self._db.transaction() as conn:
                conn.execute("UPDATE outbox SET claim_until = NULL WHERE id = ANY(%s)", (list(entry_ids),))

    def mark_sent(self, entry_id: str, now: float, platform_message_id: str | None = None) -> None:
        self._update_outbox("state = 'sent', attempts = attempts + 1, last_error = NULL, platform_message_id = %s",
                            entry_id, now, platform_message_id)

    def replace_pending(self, entry_id: str, payload: Mapping[str, object], now: float,
                        next_attempt_at: float | None = None) -> bool:
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE outbox SET payload_json = %s, next_attempt_at = coalesce(%s, next_attempt_at), "
                "updated_at = %s WHERE id = %s AND state = 'pending' AND attempts = 0 AND next_attempt_at > %s",
                (json.dumps(dict(payload)), next_attempt_at, now, entry_id, now)).rowcount == 1

    def reschedule(self, entry_id: str, next_attempt_at: float, error: str, now: float) -> None:
        self._update_outbox("attempts = attempts + 1, next_attempt_at = %s, last_error = %s", entry_id, now,
                            next_attempt_at, error)

    def dead_letter(self, entry_id: str, error: str, now: float) -> None:
        self._update_outbox("state = 'failed', attempts = attempts + 1, last_error = %s", entry_id, now, error)

    def retry(self, entry_id: str, now: float) -> bool:
        with self._db.transaction() as conn:
            return conn.execute("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = %s, "
                                "updated_at = %s WHERE id = %s AND state = 'failed'",
                                (now, now, entry_id)).rowcount == 1

    def _update_outbox(self, assignments: str, entry_id: str, now: float, *args: Any) -> None:
        with self._db.transaction() as conn:
            # the outcome is written: the claim ends with it (the next entry of the conversation may go)
            conn.execute(f"UPDATE outbox SET {assignments}, claim_until = NULL, updated_at = %s WHERE id = %s",
                         (*args, now, entry_id))

    def get_outbox(self, entry_id: str) -> OutboxEntry | None:
        with self._db.connection() as conn:
            row = conn.execute(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id = %s", (entry_id,)).fetchone()
        return _outbox(row) if row is not None else None

    def list_outbox(self, state: OutboxState | None = None, limit: int = 100) -> list[OutboxEntry]:
        where, args = ("WHERE state = %s", (state,)) if state is not None else ("", ())
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_OUTBOX_COLS} FROM outbox {where} ORDER BY seq DESC LIMIT %s",
                                (*args, limit)).fetchall()
        return [_outbox(r) for r in rows]

    # ---- housekeeping ----------------------------------------------------------------------------------------------
    def compact(self, now: float, retention_s: float = RETENTION_S, dedupe_window_s: float = DEDUPE_WINDOW_S) -> int:
        cutoff = now - retention_s
        with self._db.transaction() as conn:
            removed = conn.execute("DELETE FROM inbound WHERE state = 'acked' AND acked_at < %s", (cutoff,)).rowcount
            removed += conn.execute("DELETE FROM outbox WHERE state IN ('sent', 'failed') AND updated_at < %s",
                                    (cutoff,)).rowcount
            removed += conn.execute("DELETE FROM dedupe WHERE seen_at < %s", (now - dedupe_window_s,)).rowcount
        return removed


def release_statement(entry_id: str, lease_token: str | None) -> tuple[str, tuple[Any, ...]]:
    """``release``'s UPDATE (``%s`` placeholders) and its arguments: the leased entry ``entry_id`` is ready again,
    if ``lease_token`` (when given) is its current lease's. Shared with ``redisbus``, which adds a RETURNING."""
    sql = ("UPDATE inbound SET state = 'ready', lease_until = NULL, lease_token = NULL "
           "WHERE id = %s AND state = 'leased'")
    args: tuple[Any, ...] = (entry_id,)
    if lease_token is not None:
        sql += " AND lease_token = %s"
        args += (lease_token,)
    return sql, args


def _append(conn: PgConn, e: NewEntry, now: float) -> bool:
    if e.dedupe_key is not None:
        seen = conn.execute("INSERT INTO dedupe (instance, key, seen_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            (e.instance, e.dedupe_key, now))
        if seen.rowcount == 0:
            return False
    conn.execute(
        f"INSERT INTO inbound ({_INBOUND_COLS.removeprefix('seq, ')}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'ready', 0, NULL, NULL)",
        (e.id, e.instance, e.user_id, e.user_name, e.thread_id, e.content, e.metadata_json,
         json.dumps([a.as_dict() for a in e.attachments]), e.route.agent, e.route.session_key,
         e.route.conversation, e.route.matched_on, e.dedupe_key, now))
    return True


def _ack(conn: PgConn, entry_id: str, lease_token: str | None, now: float) -> bool:
    sql = "UPDATE inbound SET state = 'acked', acked_at = %s, lease_token = NULL WHERE id = %s AND state <> 'acked'"
    args: tuple[Any, ...] = (now, entry_id)
    if lease_token is not None:
        sql += " AND lease_token = %s"
        args += (lease_token,)
    return conn.execute(sql, args).rowcount == 1


def _append_outbox(conn: PgConn, o: NewOutbound, now: float) -> OutboxEntry:
    row = conn.execute(
        "INSERT INTO outbox (id, instance, conversation, kind, in_reply_to, payload_json, idempotency_key, state, "
        "attempts, next_attempt_at, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', 0, %s, %s, %s) "
        f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_OUTBOX_COLS}",
        (o.id, o.instance, o.conversation, o.kind, o.in_reply_to, json.dumps(dict(o.payload)), o.idempotency_key,
         max(now, o.not_before), now, now)).fetchone()
    if row is None:  # the key exists: the earlier entry (committed, or this conflict would have waited for it)
        row = conn.execute(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE idempotency_key = %s",
                           (o.idempotency_key,)).fetchone()
        assert row is not None
    return _outbox(row)
