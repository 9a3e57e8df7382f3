"""Plain Python values that cross the channel boundary, one dataclass per WIT record.

These mirror the records of ``airlock:channel@0.1.0`` / ``near:agent@0.3.x`` (identical shapes) with
snake_case names. Only ``runtime/convert.py`` maps them to and from wasmtime values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LogLevel = Literal["trace", "debug", "info", "warn", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = ("trace", "debug", "info", "warn", "error")

STATUS_TYPES: tuple[str, ...] = (
    "thinking", "done", "interrupted", "tool-started", "tool-completed", "tool-result",
    "approval-needed", "status", "job-started", "auth-required", "auth-completed",
)


@dataclass(frozen=True)
class HttpEndpoint:
    """An inbound webhook route a channel asks for in on-start."""

    path: str
    methods: tuple[str, ...]
    require_secret: bool


@dataclass(frozen=True)
class PollConfig:
    interval_ms: int
    enabled: bool


@dataclass(frozen=True)
class ChannelConfig:
    """What on-start returns: display name, endpoints wanted, polling wish (before host filtering)."""

    display_name: str
    http_endpoints: tuple[HttpEndpoint, ...]
    poll: PollConfig | None


@dataclass(frozen=True)
class IncomingHttpRequest:
    method: str
    path: str
    headers_json: str
    query_json: str
    body: bytes
    secret_validated: bool


@dataclass(frozen=True)
class OutgoingHttpResponse:
    status: int
    headers_json: str
    body: bytes


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class AgentResponse:
    """A reply handed to on-respond/on-broadcast. metadata_json is the ORIGINAL message's metadata."""

    message_id: str
    content: str
    thread_id: str | None
    metadata_json: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class StatusUpdate:
    status: str
    message: str
    metadata_json: str


@dataclass(frozen=True)
class InboundAttachment:
    id: str
    mime_type: str
    filename: str | None
    size_bytes: int | None
    source_url: str | None
    storage_key: str | None
    extracted_text: str | None
    extras_json: str


@dataclass(frozen=True)
class EmittedMessage:
    """A message a guest emitted for the agent."""

    user_id: str
    user_name: str | None
    content: str
    thread_id: str | None
    metadata_json: str
    attachments: tuple[InboundAttachment, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HttpResponse:
    """The result of the http-request host function."""

    status: int
    headers_json: str
    body: bytes


@dataclass(frozen=True)
class MessageEdit:
    """``airlock:channel/edits@0.2.0`` ``message-edit``: the new whole text of the sent message
    ``platform_message_id``; ``metadata_json`` is the answered inbound message's metadata."""

    platform_message_id: str
    content: str
    thread_id: str | None
    metadata_json: str


@dataclass(frozen=True)
class Reaction:
    """``airlock:channel/reactions@0.2.0`` ``reaction``: add (``remove`` False) or remove ``emoji`` on a message."""

    platform_message_id: str
    emoji: str
    remove: bool
    metadata_json: str
