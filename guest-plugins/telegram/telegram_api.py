"""The Telegram Bot API calls the channel makes: JSON calls and their results, file uploads, long texts sent as
several messages, edits and reactions, with the Bot API's own error texts mapped to retry decisions.

Every URL carries the ``{TELEGRAM_BOT_TOKEN}`` placeholder, filled in by the host. Apart from ``telegram_channel``
(updates in, replies out, the ``Channel`` class) because this is the platform's side: what a Bot API method takes
and what its answers mean.
"""

from __future__ import annotations

import json
from typing import Any

from telegram_text import split_message

from airlock_sdk import Attachment, PermanentError, host

__all__ = [
    "API",
    "TelegramApiError",
    "api_call",
    "api_result",
    "edit_text",
    "send_file",
    "send_text",
    "set_reaction",
]

API = "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}"


class TelegramApiError(Exception):
    """The Bot API answered with a non-2xx status or ``ok: false``; ``description`` is the API's own text."""

    def __init__(self, message: str, description: str = "") -> None:
        super().__init__(message)
        self.description = description


NOT_MODIFIED = "message is not modified"
"""editMessageText's 400 description when the text is unchanged (Bot API): the edit has nothing to do, a success."""
CANNOT_EDIT = ("message to edit not found", "message can't be edited", "MESSAGE_ID_INVALID")
"""editMessageText's 400 descriptions for a message that will never take an edit: a permanent error (the host then
sends a streamed reply's final text as a new message)."""
CANNOT_REACT = ("REACTION_INVALID", "message to react not found", "MESSAGE_ID_INVALID", "REACTIONS_TOO_MANY")
"""setMessageReaction's 400 descriptions that no retry can change: an emoji Telegram does not offer as a reaction, a
message that is gone: a permanent error."""


# --------------------------------------------------------------------------- Bot API calls


def api_call(method: str, payload: dict[str, Any], timeout_ms: int | None = None) -> Any:
    """POST ``payload`` as JSON to Bot API ``method``; returns its ``result`` (see ``api_result``)."""
    resp = host.http("POST", f"{API}/{method}", json_body=payload, timeout_ms=timeout_ms)
    return api_result(method, resp.status, resp.body)


def api_result(method: str, status: int, body: bytes) -> Any:
    """The ``result`` of a Bot API answer (``{"ok": true, "result": ...}`` with a 2xx status); else
    ``TelegramApiError`` with the API's ``description`` (or the start of the body)."""
    try:
        data = json.loads(body.decode("utf-8")) if body else None
    except ValueError:
        data = None
    if 200 <= status < 300 and isinstance(data, dict) and data.get("ok") is True:
        return data.get("result")
    if isinstance(data, dict) and data.get("description"):
        detail = str(data["description"])
    else:
        detail = body[:200].decode("utf-8", "replace") or "no body"
    raise TelegramApiError(f"{method} failed: HTTP {status}: {detail}", detail)


def _multipart(fields: dict[str, str], file_field: str, att: Attachment) -> tuple[str, bytes]:
    boundary = "airlock-telegram-" + format(host.now_millis(), "x")
    while boundary.encode() in att.data:
        boundary += "x"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    filename = att.filename.replace('"', "_").replace("\r", "_").replace("\n", "_") or "file"
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"'
            f"\r\nContent-Type: {att.mime_type or 'application/octet-stream'}\r\n\r\n"
        ).encode()
        + att.data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
"""Sent with sendPhoto (shown inline, recompressed by Telegram); any other file goes with sendDocument as it is."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""Bot API sendPhoto: at most 10 MB; a larger image goes as a document."""


def send_file(chat_id: Any, att: Attachment, thread_id: Any = None) -> Any:
    """Upload one reply file (multipart/form-data): ``sendPhoto`` for a JPEG/PNG/WebP image up to 10 MB,
    ``sendDocument`` for anything else. Returns the Telegram message id."""
    photo = att.mime_type.lower() in PHOTO_TYPES and len(att.data) <= MAX_PHOTO_BYTES
    method, file_field = ("sendPhoto", "photo") if photo else ("sendDocument", "document")
    fields = {"chat_id": str(chat_id)}
    if thread_id is not None:
        fields["message_thread_id"] = str(thread_id)
    content_type, body = _multipart(fields, file_field, att)
    resp = host.http("POST", f"{API}/{method}", headers={"Content-Type": content_type}, body=body)
    return _message_id(api_result(method, resp.status, resp.body))


def _message_id(result: Any) -> Any:
    return result.get("message_id") if isinstance(result, dict) else None


def send_text(chat_id: Any, text: str, reply_to: Any = None, thread_id: Any = None) -> list[Any]:
    """Send ``text`` (split into several messages if long); returns the Telegram message ids."""
    sent: list[Any] = []
    chunks = split_message(text)
    for i, chunk in enumerate(chunks):
        payload: dict[str, Any] = {"chat_id": chat_id, "text": chunk}
        if thread_id is not None:
            payload["message_thread_id"] = thread_id
        if i == 0 and reply_to is not None:
            payload["reply_to_message_id"] = reply_to
            payload["allow_sending_without_reply"] = True
        sent.append(_message_id(api_call("sendMessage", payload)))
    return sent


def edit_text(chat_id: Any, message_id: int, text: str) -> None:
    """``editMessageText`` of a message the bot sent, with the first ``split_message`` chunk of ``text`` (an edit
    cannot become several messages). An unchanged text is a success; a message that cannot take an edit is a
    ``PermanentError``."""
    try:
        api_call("editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": split_message(text)[0]})
    except TelegramApiError as exc:
        if NOT_MODIFIED in exc.description:
            return
        if any(reason in exc.description for reason in CANNOT_EDIT):
            raise PermanentError(str(exc)) from None
        raise


def set_reaction(chat_id: Any, message_id: int, emoji: str | None) -> None:
    """``setMessageReaction``: the bot's reaction on a message becomes ``emoji`` (a ``ReactionTypeEmoji``), or none
    when ``emoji`` is None. A bot has one reaction per message (Bot API: "bots can't use paid reactions", and a
    non-premium account sets one emoji), so adding replaces its earlier one and removing clears it. Errors in
    :data:`CANNOT_REACT` are a ``PermanentError``."""
    reaction = [] if emoji is None else [{"type": "emoji", "emoji": emoji}]
    try:
        api_call("setMessageReaction", {"chat_id": chat_id, "message_id": message_id, "reaction": reaction})
    except TelegramApiError as exc:
        if any(reason in exc.description for reason in CANNOT_REACT):
            raise PermanentError(str(exc)) from None
        raise
