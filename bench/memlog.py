"""``MemoryMessageLog``: the benchmark's in-memory comparison for the message log (issue 8's "previous in-memory
bus"). The ``airlock.messages.log.MessageLog`` protocol kept in Python dicts and lists under one lock: the same
leases, acks, dedupe, outbox order and states as ``SqliteMessageLog``, but nothing on disk, no SQL, no fsync, so a
host built on it (``AirlockHost(config, log=MemoryMessageLog())``) runs exactly Airlock's code path (callbacks,
routing, staging, the inbox, the outbox sender, on-respond) while its messages live only in memory, as they did
on the bus before the log. Benchmark-only: a crash loses everything.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from airlock.messages.log import DEDUPE_WINDOW_S, RETENTION_S, NewOutbound, ack_results, first_of_each
from airlock.messages.model import Entry, InboundState, NewEntry, OutboxEntry, OutboxState


class MemoryMessageLog:
    """The message log in memory (module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workspace: dict[str, dict[str, str]] = {}
        self._inbound: dict[str, Entry] = {}  # insertion order = commit order
        self._open: dict[str, None] = {}  # ids not acknowledged, in commit order (leases scan only these)
        self._pending: dict[str, None] = {}  # pending outbox ids, in append order
        self._acked_at: dict[str, float] = {}
        self._dedupe: dict[tuple[str, str], float] = {}
        self._outbox: dict[str, OutboxEntry] = {}
        self._by_key: dict[str, str] = {}
        self._seq = 0

    def close(self) -> None:
        pass

    def load_workspace(self, instance: str) -> dict[str, str]:
        with self._lock:
            return dict(self._workspace.get(instance, {}))

    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: object = None) -> list[NewEntry]:
        with self._lock:
            self._workspace.setdefault(instance, {}).update(workspace)
            appended = []
            for e in entries:
                if e.dedupe_key is not None:
                    if (e.instance, e.dedupe_key) in self._dedupe:
                        continue
                    self._dedupe[(e.instance, e.dedupe_key)] = now
                self._seq += 1
                self._inbound[e.id] = Entry(
                    id=e.id, seq=self._seq, instance=e.instance, user_id=e.user_id, user_name=e.user_name,
                    thread_id=e.thread_id, content=e.content, metadata_json=e.metadata_json, route=e.route,
                    dedupe_key=e.dedupe_key, attachments=e.attachments, received_at=now, state="ready", attempts=0,
                    lease_until=None, lease_token=None)
                self._open[e.id] = None
                appended.append(e)
            return appended

    def lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        with self._lock:
            out: list[Entry] = []
            for e in map(self._inbound.__getitem__, self._open):
                if len(out) >= limit:
                    break
                expired = e.state == "leased" and e.lease_until is not None and e.lease_until <= now
                if e.route.agent == agent and (e.state == "ready" or expired):
                    leased = replace(e, state="leased", attempts=e.attempts + 1, lease_until=now + visibility_s,
                                     lease_token=secrets.token_urlsafe(12))
                    self._inbound[e.id] = leased
                    out.append(leased)
            return out

    def _ack(self, entry_id: str, lease_token: str | None, now: float) -> bool:
        e = self._inbound.get(entry_id)
        if e is None or e.state == "acked" or (lease_token is not None and e.lease_token != lease_token):
            return False
        self._inbound[entry_id] = replace(e, state="acked", lease_token=None)
        self._acked_at[entry_id] = now
        self._open.pop(entry_id, None)
        return True

    def ack(self, entry_id: str, lease_token: str | None, now: float) -> bool:
        with self._lock:
            return self._ack(entry_id, lease_token, now)

    def ack_many(self, items: Sequence[tuple[str, str | None]], now: float) -> list[bool]:
        with self._lock:  # one hold of the lock: the batch is applied at once, as one transaction is
            acked = {i for i, token in first_of_each(items).items() if self._ack(i, token, now)}
        return ack_results(items, acked)

    def release(self, entry_id: str, lease_token: str | None) -> bool:
        with self._lock:
            e = self._inbound.get(entry_id)
            if e is None or e.state != "leased" or (lease_token is not None and e.lease_token != lease_token):
                return False
            self._inbound[entry_id] = replace(e, state="ready", lease_until=None, lease_token=None)
            return True

    def ack_and_append(self, entry_id: str, lease_token: str | None, outbound: Sequence[NewOutbound],
                       now: float) -> list[OutboxEntry]:
        with self._lock:
            e = self._inbound.get(entry_id)
            if e is None:
                raise KeyError(entry_id)
            if e.state == "leased" and lease_token is not None and e.lease_token != lease_token:
                raise PermissionError(f"message {entry_id} is leased under another token")
            self._ack(entry_id, None, now)
            return [self._append_outbox(o, now) for o in outbound]

    def get(self, entry_id: str) -> Entry | None:
        with self._lock:
            return self._inbound.get(entry_id)

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        with self._lock:
            return {i: self._inbound[i] for i in entry_ids if i in self._inbound}

    def list_inbound(self, state: InboundState | None = None, limit: int = 100) -> list[Entry]:
        with self._lock:
            rows = [e for e in reversed(self._inbound.values()) if state is None or e.state == state]
        return rows[:limit]

    def waiting(self) -> int:
        with self._lock:
            return sum(1 for i in self._open if self._inbound[i].state == "ready")

    def backlog(self) -> int:
        with self._lock:
            return len(self._open)

    def append_outbox(self, outbound: Sequence[NewOutbound], now: float) -> list[OutboxEntry]:
        with self._lock:
            return [self._append_outbox(o, now) for o in outbound]

    def _append_outbox(self, o: NewOutbound, now: float) -> OutboxEntry:
        if o.idempotency_key is not None and o.idempotency_key in self._by_key:
            return self._outbox[self._by_key[o.idempotency_key]]
        self._seq += 1
        entry = OutboxEntry(id=o.id, seq=self._seq, instance=o.instance, conversation=o.conversation, kind=o.kind,
                            in_reply_to=o.in_reply_to, payload=dict(o.payload), state="pending", attempts=0,
                            next_attempt_at=max(now, o.not_before), last_error=None, created_at=now, updated_at=now)
        self._outbox[o.id] = entry
        self._pending[o.id] = None
        if o.idempotency_key is not None:
            self._by_key[o.idempotency_key] = o.id
        return entry

    def due_outbox(self, now: float, limit: int, claim_s: float = 60.0) -> list[OutboxEntry]:
        del claim_s  # one process: its sender's in-flight set is the claim, as on SQLite
        with self._lock:
            first: dict[str, OutboxEntry] = {}
            for o in sorted(map(self._outbox.__getitem__, self._pending), key=lambda o: o.seq):
                if o.conversation not in first:
                    first[o.conversation] = o
        due = sorted((o for o in first.values() if o.next_attempt_at <= now), key=lambda o: o.seq)
        return due[:limit]

    def _update(self, entry_id: str, **changes: Any) -> None:
        with self._lock:
            o = self._outbox[entry_id]
            self._outbox[entry_id] = replace(o, attempts=o.attempts + 1, **changes)
            if changes.get("state", "pending") != "pending":
                self._pending.pop(entry_id, None)

    def renew_outbox(self, entry_ids: Sequence[str], until: float) -> None:
        """Nothing to renew: this log claims nothing (``due_outbox``)."""

    def release_outbox(self, entry_ids: Sequence[str]) -> None:
        """Nothing to release: this log claims nothing (``due_outbox``)."""

    def mark_sent(self, entry_id: str, now: float, platform_message_id: str | None = None) -> None:
        self._update(entry_id, state="sent", last_error=None, updated_at=now, platform_message_id=platform_message_id)

    def replace_pending(self, entry_id: str, payload: Mapping[str, object], now: float,
                        next_attempt_at: float | None = None) -> bool:
        with self._lock:
            o = self._outbox.get(entry_id)
            if o is None or o.state != "pending" or o.attempts or o.next_attempt_at <= now:
                return False
            due = o.next_attempt_at if next_attempt_at is None else next_attempt_at
            self._outbox[entry_id] = replace(o, payload=dict(payload), next_attempt_at=due, updated_at=now)
            return True

    def reschedule(self, entry_id: str, next_attempt_at: float, error: str, now: float) -> None:
        self._update(entry_id, next_attempt_at=next_attempt_at, last_error=error, updated_at=now)

    def dead_letter(self, entry_id: str, error: str, now: float) -> None:
        self._update(entry_id, state="failed", last_error=error, updated_at=now)

    def retry(self, entry_id: str, now: float) -> bool:
        with self._lock:
            o = self._outbox.get(entry_id)
            if o is None or o.state != "failed":
                return False
            self._outbox[entry_id] = replace(o, state="pending", attempts=0, next_attempt_at=now, updated_at=now)
            self._pending[entry_id] = None
            return True

    def get_outbox(self, entry_id: str) -> OutboxEntry | None:
        with self._lock:
            return self._outbox.get(entry_id)

    def list_outbox(self, state: OutboxState | None = None, limit: int = 100) -> list[OutboxEntry]:
        with self._lock:
            rows = [o for o in reversed(self._outbox.values()) if state is None or o.state == state]
        return rows[:limit]

    def compact(self, now: float, retention_s: float = RETENTION_S, dedupe_window_s: float = DEDUPE_WINDOW_S) -> int:
        with self._lock:
            old = [i for i, t in self._acked_at.items() if t < now - retention_s]
            for i in old:
                self._inbound.pop(i, None)
                del self._acked_at[i]
            sent = [i for i, o in self._outbox.items() if o.state in ("sent", "failed")
                    and o.updated_at < now - retention_s]
            for i in sent:
                del self._outbox[i]
            keys = [k for k, t in self._dedupe.items() if t < now - dedupe_window_s]
            for k in keys:
                del self._dedupe[k]
            return len(old) + len(sent) + len(keys)
