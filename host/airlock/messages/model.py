"""The records of the message log: what is appended, what an agent is handed, what waits in the outbox.

States of an inbound entry (``InboundState``)::

    ready --lease--> leased --ack--> acked --(retention)--> compacted away
              ^         |
              +---------+  lease expired (visibility timeout) or released: offered again

States of an outbox entry (``OutboxState``)::

    pending --(sender: callback ok)--> sent
       ^  |---(temporary failure, tries left)--> pending (next_attempt_at = backoff)
       |  +---(permanent failure, or tries used up)--> failed (a dead letter)
       +--------------------- `airlock messages retry ID` -------------+

Ids are ULIDs (26 characters, Crockford base32, time-ordered to the millisecond): unique across processes and
nodes without coordination, and readable in logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ulid import ULID

InboundState = Literal["ready", "leased", "acked"]
OutboxState = Literal["pending", "sent", "failed"]
OutboxKind = Literal["respond", "broadcast", "status", "edit", "react"]


def new_id() -> str:
    """A fresh ULID string (26 characters)."""
    return str(ULID())


@dataclass(frozen=True)
class AttachmentRef:
    """An inbound attachment kept in the blob store: ``sha256`` names the blob (None when the guest only gave
    a URL or storage key), ``size`` is bytes."""

    id: str
    mime_type: str
    filename: str | None
    size: int | None
    sha256: str | None
    source_url: str | None = None
    extracted_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "mime_type": self.mime_type, "filename": self.filename, "size": self.size,
                "sha256": self.sha256, "source_url": self.source_url, "extracted_text": self.extracted_text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttachmentRef:
        return cls(id=str(d["id"]), mime_type=str(d.get("mime_type") or ""), filename=d.get("filename"),
                   size=d.get("size"), sha256=d.get("sha256"), source_url=d.get("source_url"),
                   extracted_text=d.get("extracted_text"))


@dataclass(frozen=True)
class Route:
    """Where an entry goes: the ``agent`` (name), the ``session_key`` the agent keeps context under, the
    ``conversation`` key that orders delivery (one conversation is delivered in order, one entry in flight at a
    time), and ``matched_on`` (which binding rule chose the agent, for ``route explain`` and the log)."""

    agent: str
    session_key: str
    conversation: str
    matched_on: str = "default"


@dataclass(frozen=True)
class NewEntry:
    """An admitted message about to be appended (``MessageLog.commit``).

    ``dedupe_key`` is the platform message id (None: never deduplicated); ``instance`` the channel instance.
    """

    instance: str
    user_id: str
    user_name: str | None
    thread_id: str | None
    content: str
    metadata_json: str
    route: Route
    dedupe_key: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class Entry:
    """An inbound log entry as stored. ``received_at`` and ``lease_until`` are Unix seconds; ``attempts`` counts
    leases; ``lease_token`` proves the holder of the current lease (None when not leased)."""

    id: str
    seq: int
    instance: str
    user_id: str
    user_name: str | None
    thread_id: str | None
    content: str
    metadata_json: str
    route: Route
    dedupe_key: str | None
    attachments: tuple[AttachmentRef, ...]
    received_at: float
    state: InboundState
    attempts: int = 0
    lease_until: float | None = None
    lease_token: str | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        try:
            value = json.loads(self.metadata_json or "{}")
        except (ValueError, RecursionError):  # guest-written JSON: any content, any depth
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class OutboxEntry:
    """A reply, broadcast or status update waiting for (or done with) delivery through the channel.

    ``payload`` (JSON object): ``content``, ``thread_id``, ``metadata_json`` (the original message's metadata),
    ``user_id`` (broadcast), ``status``/``message`` (status), ``attachments``; for ``edit`` and ``react``,
    ``target`` (the outbox id of the reply to change), ``final`` (edit: the last text of a stream), ``emoji`` and
    ``remove`` (react). ``next_attempt_at`` is Unix seconds; ``last_error`` is safe to show (no secret, no trace).
    ``platform_message_id``: the platform's id of the message a sent reply became (world 0.2.0 channels only).
    """

    id: str
    seq: int
    instance: str
    conversation: str
    kind: OutboxKind
    in_reply_to: str | None
    payload: dict[str, Any]
    state: OutboxState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    platform_message_id: str | None = None
