"""The agent API's request bodies (pydantic, strict: a wrong type or an unknown field is refused with 422) and the
JSON documents it hands out. ``openapi.py`` takes the request schemas from these models, so the checked-in
OpenAPI document and the server cannot disagree.

Limits: a reply, broadcast or status text is at most :data:`MAX_TEXT_CHARS` characters; ids and thread ids at
most :data:`MAX_ID_CHARS`; a batch acknowledgement at most :data:`MAX_ACK_BATCH` messages; a request body at most
:data:`MAX_BODY_BYTES` (413 past it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ..messages.inbox import MAX_LEASE_BATCH
from ..messages.model import Entry, OutboxEntry
from ..messages.reply_files import (
    DEFAULT_MIME,
    FILENAME_PATTERN,
    MAX_FILENAME_CHARS,
    MAX_MIME_CHARS,
    MAX_REPLY_ATTACHMENTS,
    MIME_PATTERN,
)
from ..runtime.values import STATUS_TYPES

#: Longest reply / broadcast / status text, characters (Telegram's limit is 4096, Slack's 40,000).
MAX_TEXT_CHARS = 40_000
#: Longest reaction accepted, characters: a Unicode emoji with modifiers and joiners (a family is 11 code points) or
#: a Slack emoji name (at most 100 characters, Slack's custom-emoji rule); longer is not an emoji on any platform.
MAX_EMOJI_CHARS = 100
#: Longest user id, thread id, channel name or lease token accepted, characters.
MAX_ID_CHARS = 256
#: Largest request body, bytes: room for the largest valid body even when every character is sent escaped (an
#: astral character counts one toward MAX_TEXT_CHARS but is 12 bytes as a JSON surrogate-pair escape).
MAX_BODY_BYTES = 1024 * 1024
#: Most messages one ``POST /v1/messages/ack`` names: as many as one lease hands out (``GET /v1/messages``'s
#: ``limit``, ``messages.inbox.MAX_LEASE_BATCH``), so an agent acknowledges a whole leased batch in one request, one
#: ownership read and one transaction. 100 items of the longest ids and tokens are about 55 KB of JSON, far below
#: :data:`MAX_BODY_BYTES`; SQS's DeleteMessageBatch takes 10, Pub/Sub's acknowledge thousands.
MAX_ACK_BATCH = MAX_LEASE_BATCH
#: ULID: 26 Crockford base32 characters (message and outbox ids).
ULID_PATTERN = "^[0-9A-HJKMNP-TV-Z]{26}$"
SHA256_PATTERN = "^[0-9a-f]{64}$"

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
StatusName = Literal[STATUS_TYPES]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AckBody(_Body):
    """``POST /v1/messages/{id}/ack``: the lease token the message was handed out with."""

    lease_token: Id


class AckItem(_Body):
    """One message of ``POST /v1/messages/ack``: its id and the lease token it was handed out with."""

    id: Id
    lease_token: Id


def _unique_ids(items: list[AckItem]) -> list[AckItem]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise PydanticCustomError("unique_ids", "message {id} appears more than once (each id once per batch)",
                                      {"id": item.id})
        seen.add(item.id)
    return items


class AckBatchBody(_Body):
    """``POST /v1/messages/ack``: 1..``MAX_ACK_BATCH`` (100) messages to acknowledge at once, each id once (422
    otherwise: a repeated id has no single answer)."""

    messages: Annotated[list[AckItem], Field(min_length=1, max_length=MAX_ACK_BATCH,
                                             description="Each message once (ids unique within a batch)."),
                        AfterValidator(_unique_ids)]


class ReplyAttachment(_Body):
    """A file of a reply, by reference: ``sha256`` of a blob this agent uploaded (``POST /v1/attachments``) or was
    handed with a message; ``filename`` and ``mime_type`` are what the platform shows (``messages.reply_files``)."""

    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]
    filename: Annotated[str, Field(min_length=1, max_length=MAX_FILENAME_CHARS, pattern=FILENAME_PATTERN)]
    mime_type: Annotated[str, Field(min_length=3, max_length=MAX_MIME_CHARS, pattern=MIME_PATTERN)] = DEFAULT_MIME


class ReplyBody(_Body):
    """``POST /v1/messages/{id}/reply``. ``thread`` overrides the message's thread; ``attachments``: up to
    ``MAX_REPLY_ATTACHMENTS`` files by reference, at most ``MAX_REPLY_ATTACHMENT_BYTES`` together (422 past either;
    404 for a blob this agent may not use). ``stream``: the text is the first of a streamed reply, continued with
    ``POST /v1/outbox/{outbox_id}/edit`` (``messages.streaming``)."""

    # a streamed reply carries text only (its later texts replace the head's payload): said in the schema too
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "if": {"required": ["stream"], "properties": {"stream": {"const": True}}},
        "then": {"properties": {"attachments": {"maxItems": 0}}}})

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    lease_token: Id | None = None
    thread: Id | None = None
    stream: bool = False
    attachments: Annotated[list[ReplyAttachment], Field(max_length=MAX_REPLY_ATTACHMENTS)] = []


class EditBody(_Body):
    """``POST /v1/outbox/{id}/edit``: the whole new text of a reply (``id``: its outbox id). For a streamed reply,
    the next text (``final`` ends the stream, and is sent last); for a reply that was not streamed, a one-off edit
    (``final`` is ignored). Edits of one conversation go out at most once per second."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    final: bool = False


class ReactBody(_Body):
    """``POST /v1/outbox/{id}/react``: add (or with ``remove``, take back) a reaction on a sent reply (``id``: its
    outbox id), through the channel's on-react (world 0.2.0 ``reactions``). ``emoji``: what the platform takes
    (a Unicode emoji for Telegram and Discord, a name such as ``thumbsup`` for Slack), 1..``MAX_EMOJI_CHARS``
    characters."""

    emoji: Annotated[str, Field(min_length=1, max_length=MAX_EMOJI_CHARS)]
    remove: bool = False


class StatusBody(_Body):
    """``POST /v1/messages/{id}/status``: an on-status update; "thinking" is refreshed every 4 s until the reply."""

    status: StatusName
    message: Text = ""


class BroadcastBody(_Body):
    """``POST /v1/broadcast``: a proactive message to ``user_id`` on channel instance ``channel``."""

    channel: Id
    user_id: Id
    content: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


def attachment_url(sha256: str) -> str:
    """Where an agent downloads an attachment blob, relative to the API's base URL."""
    return f"/v1/attachments/{sha256}"


def message_json(entry: Entry) -> dict[str, Any]:
    """A leased log entry as the agent sees it (schema ``Message`` in openapi.json)."""
    return {
        "id": entry.id, "lease_token": entry.lease_token, "channel": entry.instance, "user_id": entry.user_id,
        "user_name": entry.user_name, "thread_id": entry.thread_id, "content": entry.content,
        "metadata": entry.metadata,
        "attachments": [{**a.as_dict(), "url": attachment_url(a.sha256) if a.sha256 else None}
                        for a in entry.attachments],
        "session_key": entry.route.session_key, "conversation": entry.route.conversation,
        "received_at": entry.received_at, "attempts": entry.attempts,
    }


def outbox_json(entry: OutboxEntry) -> dict[str, Any]:
    """An outbox entry's delivery state (schema ``OutboxEntry``)."""
    return {"id": entry.id, "kind": entry.kind, "in_reply_to": entry.in_reply_to, "state": entry.state,
            "attempts": entry.attempts, "last_error": entry.last_error, "next_attempt_at": entry.next_attempt_at,
            "created_at": entry.created_at, "updated_at": entry.updated_at,
            "platform_message_id": entry.platform_message_id}
