"""``Delivery``: a message handed to an agent, built from its message log entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..channels.channel import InboundMessage
from ..messages.model import Entry, Route
from ..runtime.values import EmittedMessage, InboundAttachment


@dataclass(frozen=True)
class Delivery:
    """A message handed to the agent. ``id`` is the log entry's ULID (reply, ack and status use it);
    ``lease_token`` proves this hand-over's lease; ``route`` gives the agent, session key and conversation."""

    id: str
    inbound: InboundMessage
    lease_token: str | None = None
    route: Route | None = None

    @classmethod
    def from_entry(cls, entry: Entry, attachment_data: dict[str, bytes] | None = None) -> Delivery:
        attachments = tuple(InboundAttachment(
            id=a.id, mime_type=a.mime_type, filename=a.filename, size_bytes=a.size, source_url=a.source_url,
            storage_key=a.sha256, extracted_text=a.extracted_text, extras_json="{}") for a in entry.attachments)
        msg = EmittedMessage(user_id=entry.user_id, user_name=entry.user_name, content=entry.content,
                             thread_id=entry.thread_id, metadata_json=entry.metadata_json, attachments=attachments)
        inbound = InboundMessage(channel=entry.instance, message=msg, attachment_data=attachment_data or {},
                                 received_at=entry.received_at, id=entry.id)
        return cls(id=entry.id, inbound=inbound, lease_token=entry.lease_token, route=entry.route)

    @property
    def channel(self) -> str:
        return self.inbound.channel

    @property
    def content(self) -> str:
        return self.inbound.message.content

    @property
    def user_id(self) -> str:
        return self.inbound.message.user_id

    @property
    def user_name(self) -> str | None:
        return self.inbound.message.user_name

    @property
    def thread_id(self) -> str | None:
        return self.inbound.message.thread_id

    @property
    def conversation(self) -> str:
        return self.route.conversation if self.route is not None else f"{self.channel}:{self.user_id}"

    @property
    def metadata(self) -> dict[str, Any]:
        try:
            value = json.loads(self.inbound.message.metadata_json or "{}")
        except (ValueError, RecursionError):  # guest-written JSON: any content, any depth
            return {}
        return value if isinstance(value, dict) else {}
