"""The message log's interface: the one place where everything that must survive a crash is written.

Callers (channels, the inbox, the outbox sender, the agent API, the CLI) use only :class:`MessageLog`; the
embedded implementation is :class:`~airlock.messages.sqlite.SqliteMessageLog` (one SQLite file, ``state.db``,
holding the durable workspace and the log, so a callback's workspace writes and its messages commit in one
transaction: SQLite's WAL makes a transaction atomic per database file, not across ATTACHed files). A cluster
implementation (PostgreSQL) implements the same protocol.

Rules every implementation keeps:
- ``commit`` is atomic: the durable workspace writes and every non-duplicate entry, or nothing.
- Deduplication: an entry whose ``(instance, dedupe_key)`` was committed within ``dedupe_window_s`` is skipped
  (not an error); the window is measured from the first commit.
- Delivery is at-least-once and in order: ``lease`` hands out entries in the order they were committed (so each
  conversation's first deliveries are in order); a lease not acknowledged before ``lease_until`` is offered again,
  before anything committed after it — possibly after later entries of its conversation were handed out, so a
  redelivery can repeat an earlier message (agents deduplicate by id). ``attempts`` counts hand-outs, one whose
  answer was lost included (its process died before answering; on the Redis bus, before recording the lease): an
  entry that comes after later entries of its conversation has ``attempts`` > 1.
- An ack and the outbox entries it produced (a reply) commit together (``ack_and_append``).
- A fenced ``commit`` (``fence``: a poller's lease, ``state.leases``) checks the lease's token in its own transaction
  and applies nothing when the lease was lost (``LeaseLost``): two holders never both commit a poll cursor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from .model import Entry, InboundState, NewEntry, OutboxEntry, OutboxKind, OutboxState

if TYPE_CHECKING:
    from ..state.leases import Fence

#: Default retention of acknowledged entries and sent outbox entries (7 days), seconds.
RETENTION_S = 7 * 24 * 3600
#: Default deduplication window (24 h), seconds.
DEDUPE_WINDOW_S = 24 * 3600
OUTBOX_CLAIM_S = 60.0
"""Seconds a due outbox entry handed out by ``due_outbox`` stays claimed by that sender (PostgreSQL: no other node
gets it meanwhile). The sender renews the claims of its in-flight sends every third of it (a callback may run for
``callback_timeout_secs``, up to 600 s); a node that dies mid-send leaves claims that expire after this long, and
another node sends those entries then (at least once)."""


def first_of_each(items: Sequence[tuple[str, str | None]]) -> dict[str, str | None]:
    """``entry_id -> lease_token`` of the first item of each id in ``items``, in order (``MessageLog.ack_many``
    tries a repeated id once)."""
    out: dict[str, str | None] = {}
    for entry_id, token in items:
        out.setdefault(entry_id, token)
    return out


def ack_results(items: Sequence[tuple[str, str | None]], acked: set[str]) -> list[bool]:
    """``ack_many``'s answer from the ids its transaction acknowledged: True for the first item of each of them."""
    seen: set[str] = set()
    out = []
    for entry_id, _token in items:
        out.append(entry_id in acked and entry_id not in seen)
        seen.add(entry_id)
    return out


class NewOutbound(Protocol):
    """What ``append_outbox`` needs (``messages.outbox.Outbound``)."""

    @property
    def id(self) -> str: ...
    @property
    def instance(self) -> str: ...
    @property
    def conversation(self) -> str: ...
    @property
    def kind(self) -> OutboxKind: ...
    @property
    def in_reply_to(self) -> str | None: ...
    @property
    def payload(self) -> Mapping[str, object]: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def not_before(self) -> float: ...


class MessageLog(Protocol):
    """The durable message log (module docstring). Every method is blocking and thread-safe; call it from a
    worker thread (``asyncio.to_thread``) on an event loop. Times are Unix seconds.

    Raises (any method): the backend's error type for an I/O failure (``sqlite3.Error``); nothing was changed.
    """

    # ---- the durable workspace, committed with the log ---------------------------------------------------------
    def load_workspace(self, instance: str) -> dict[str, str]:
        """Every durable workspace ``path -> value`` of ``instance``."""
        ...

    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: Fence | None = None) -> list[NewEntry]:
        """Atomically store ``workspace`` writes and append ``entries``; return the entries appended (those
        not dropped as duplicates), in order. With ``fence``, first check in the same transaction that the lease
        is still held under its token at ``now``; raises ``errors.LeaseLost`` (nothing applied) when not."""
        ...

    # ---- inbound: to the agents ------------------------------------------------------------------------------
    def lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        """Up to ``limit`` entries routed to ``agent`` that are ready (or whose lease expired), oldest first; each
        is leased until ``now + visibility_s`` with a fresh ``lease_token``."""
        ...

    def ack(self, entry_id: str, lease_token: str | None, now: float) -> bool:
        """Mark an entry acknowledged. ``lease_token`` None skips the token check (in-process agents and the
        CLI). False when the entry is unknown, already acked, or leased under another token."""
        ...

    def ack_many(self, items: Sequence[tuple[str, str | None]], now: float) -> list[bool]:
        """``ack`` of every ``(entry_id, lease_token)`` of ``items`` in one transaction (the agent API's batch
        acknowledgement: one commit, one round trip, for up to a lease's worth of entries); one result per item, in
        order, with ``ack``'s meaning. Partial success is normal: an item that is False changes nothing and does not
        stop the others. An id repeated in ``items`` is tried once, with its first token: its later items are False.
        A failure of the transaction applies none of the batch (raises like ``ack``)."""
        ...

    def release(self, entry_id: str, lease_token: str | None) -> bool:
        """Give a lease back: the entry is ready again at once. False when not leased under that token."""
        ...

    def ack_and_append(self, entry_id: str, lease_token: str | None, outbound: Sequence[NewOutbound],
                       now: float) -> list[OutboxEntry]:
        """``ack`` plus ``append_outbox`` in one transaction (a reply and its acknowledgement). The entry may
        already be acked (a second reply to the same message); raises ``KeyError`` for an unknown entry and
        ``PermissionError`` for a lease held under another token."""
        ...

    def get(self, entry_id: str) -> Entry | None: ...

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        """``id -> Entry`` of those of ``entry_ids`` that exist (one read for a batch; unknown ids are absent)."""
        ...

    def list_inbound(self, state: InboundState | None = None, limit: int = 100) -> list[Entry]:
        """Newest first."""
        ...

    def waiting(self) -> int:
        """Entries ready to be handed out (not leased, not acknowledged), across every agent."""
        ...

    def backlog(self) -> int:
        """Entries not yet acknowledged (ready or leased), across every agent."""
        ...

    # ---- outbound: the outbox ----------------------------------------------------------------------------------
    def append_outbox(self, outbound: Sequence[NewOutbound], now: float) -> list[OutboxEntry]:
        """Append outbox entries; an entry whose ``idempotency_key`` exists already returns the existing one."""
        ...

    def due_outbox(self, now: float, limit: int, claim_s: float = OUTBOX_CLAIM_S) -> list[OutboxEntry]:
        """Pending entries due at ``now``, at most one per conversation (the oldest pending one: replies are
        never reordered within a conversation), oldest first.

        PostgreSQL claims the entries returned until ``now + claim_s`` (``FOR UPDATE SKIP LOCKED``): while the
        claim holds, no other caller (node) gets them, nor any later entry of their conversations. A claim ends with
        ``mark_sent`` / ``reschedule`` / ``dead_letter`` / ``release_outbox``, or expires. SQLite (one process)
        claims nothing: the sender's own in-flight set keeps one send per conversation."""
        ...

    def renew_outbox(self, entry_ids: Sequence[str], until: float) -> None:
        """Extend the claims on ``entry_ids`` (still pending) to ``until`` (Unix seconds): sends still running."""
        ...

    def release_outbox(self, entry_ids: Sequence[str]) -> None:
        """Drop the claims on ``entry_ids`` (taken by ``due_outbox`` but not sent now, e.g. over the send rate)."""
        ...

    def mark_sent(self, entry_id: str, now: float, platform_message_id: str | None = None) -> None:
        """Mark the entry sent, with the platform's id of the message when the channel returned one (world 0.2.0's
        ``delivery.on-respond``; edits of that reply need it)."""
        ...

    def replace_pending(self, entry_id: str, payload: Mapping[str, object], now: float,
                        next_attempt_at: float | None = None) -> bool:
        """Replace the payload (and, when given, the due time) of an entry that was never tried and is not due yet at
        ``now`` (a streamed reply's paced edit, or held head, taking a newer text). False when it is due, in flight or
        done: the caller appends a new entry instead."""
        ...

    def reschedule(self, entry_id: str, next_attempt_at: float, error: str, now: float) -> None:
        """Count a failed try and keep the entry pending until ``next_attempt_at``."""
        ...

    def dead_letter(self, entry_id: str, error: str, now: float) -> None:
        """Count a failed try and mark the entry failed (kept with its error for ``messages list --failed``)."""
        ...

    def retry(self, entry_id: str, now: float) -> bool:
        """Make a failed outbox entry pending again with its tries reset. False when it is not failed."""
        ...

    def get_outbox(self, entry_id: str) -> OutboxEntry | None: ...

    def list_outbox(self, state: OutboxState | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Newest first."""
        ...

    # ---- housekeeping ---------------------------------------------------------------------------------------------
    def compact(self, now: float, retention_s: float = RETENTION_S, dedupe_window_s: float = DEDUPE_WINDOW_S) -> int:
        """Delete acknowledged entries and sent outbox entries older than ``retention_s`` (failed ones are kept
        for the same time after their last try) and dedupe keys older than ``dedupe_window_s``; return the
        number of rows removed."""
        ...

    def close(self) -> None: ...
