"""The message log's columns and row mapping, shared by the SQLite and PostgreSQL logs (``messages.sqlite``,
``messages.postgres``, ``messages.redisbus``): both engines store the same tables (``inbound``, ``outbox``) with the
same columns in the same order, so a row read by either becomes an entry the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from .model import AttachmentRef, Entry, InboundState, OutboxEntry, OutboxKind, OutboxState, Route

__all__ = ["INBOUND_COLS", "OUTBOX_COLS", "entry_from_row", "outbox_from_row", "qualified"]

INBOUND_COLS = ("seq, id, instance, user_id, user_name, thread_id, content, metadata_json, attachments_json, agent, "
                "session_key, conversation, matched_on, dedupe_key, received_at, state, attempts, lease_until, "
                "lease_token")
"""The ``inbound`` columns read into an :class:`Entry`, in :func:`entry_from_row`'s order."""
OUTBOX_COLS = ("seq, id, instance, conversation, kind, in_reply_to, payload_json, state, attempts, next_attempt_at, "
               "last_error, created_at, updated_at, platform_message_id")
"""The ``outbox`` columns read into an :class:`OutboxEntry`, in :func:`outbox_from_row`'s order."""


def qualified(alias: str, cols: str = INBOUND_COLS) -> str:
    """``cols`` prefixed with a table alias (``i.seq, i.id, ...``), for a RETURNING or a join."""
    return ", ".join(f"{alias}.{c.strip()}" for c in cols.split(","))


def entry_from_row(row: Sequence[Any], **override: Any) -> Entry:
    """An :class:`Entry` from a row of :data:`INBOUND_COLS`; ``override``: fields to set instead of the row's (a
    lease taken in the same statement: state, attempts, lease_until, lease_token)."""
    (seq, eid, instance, user_id, user_name, thread_id, content, metadata_json, attachments_json, agent, session_key,
     conversation, matched_on, dedupe_key, received_at, state, attempts, lease_until, lease_token) = row
    values: dict[str, Any] = {
        "id": eid, "seq": seq, "instance": instance, "user_id": user_id, "user_name": user_name,
        "thread_id": thread_id, "content": content, "metadata_json": metadata_json,
        "route": Route(agent=agent, session_key=session_key, conversation=conversation, matched_on=matched_on),
        "dedupe_key": dedupe_key,
        "attachments": tuple(AttachmentRef.from_dict(a) for a in json.loads(attachments_json)),
        "received_at": received_at, "state": cast(InboundState, state), "attempts": attempts,
        "lease_until": lease_until, "lease_token": lease_token,
    }
    values.update(override)
    return Entry(**values)


def outbox_from_row(row: Sequence[Any]) -> OutboxEntry:
    """An :class:`OutboxEntry` from a row of :data:`OUTBOX_COLS`."""
    (seq, oid, instance, conversation, kind, in_reply_to, payload_json, state, attempts, next_attempt_at, last_error,
     created_at, updated_at, platform_message_id) = row
    return OutboxEntry(id=oid, seq=seq, instance=instance, conversation=conversation, kind=cast(OutboxKind, kind),
                       in_reply_to=in_reply_to, payload=json.loads(payload_json), state=cast(OutboxState, state),
                       attempts=attempts, next_attempt_at=next_attempt_at, last_error=last_error,
                       created_at=created_at, updated_at=updated_at, platform_message_id=platform_message_id)
