"""The Telegram webhook work every benchmark variant does, and the payloads it is done on.

The work (the same in the Rust guest bench/guests/telegram-min/src/lib.rs, the JSON-RPC plugin and the
in-process function): parse a Telegram Update; accept a ``message`` with a text, a non-bot sender with an
id and a private chat with an id; emit the stripped text with the sender's id, display name (username, else
first name), thread id and metadata ``{chat_id, message_id, chat_type[, thread_id][, username]}``; answer
200 ``{"ok":true}`` (also for an ignored update: Telegram retries anything else); 400 for a malformed body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Shapes from the Telegram Bot API documentation (core.telegram.org/bots/api#update); values made up.
UPDATE_SMALL: dict[str, Any] = {
    "update_id": 10000,
    "message": {
        "message_id": 1365, "date": 1441645532, "text": "hello bot",
        "from": {"id": 1111111, "is_bot": False, "first_name": "Test", "username": "test"},
        "chat": {"id": 1111111, "type": "private", "first_name": "Test"},
    },
}
UPDATE_LARGE: dict[str, Any] = {
    "update_id": 10001,
    "message": {
        "message_id": 1366, "date": 1441645532, "message_thread_id": 77,
        "text": "could you summarise yesterday's standup notes and list the open action items for me, please?",
        "from": {"id": 1111111, "is_bot": False, "first_name": "Test", "last_name": "Lastname",
                 "username": "test", "language_code": "en"},
        "chat": {"id": 1111111, "type": "private", "first_name": "Test", "last_name": "Lastname",
                 "username": "test"},
    },
}
BODIES: tuple[bytes, ...] = tuple(json.dumps(u).encode() for u in (UPDATE_SMALL, UPDATE_LARGE))
"""The two bodies the benchmark alternates: about 200 and 400 bytes (the issue's 170-400 byte range)."""

OK_BODY = b'{"ok":true}'


@dataclass(frozen=True)
class Emission:
    """One message for the agent (the fields of the WIT ``emitted-message`` the work fills in)."""

    user_id: str
    content: str
    user_name: str | None
    thread_id: str | None
    metadata_json: str


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def emission_for(update: Any) -> Emission | None:
    """The message to emit for a parsed Update, or None when it is not a user's private text message."""
    msg = update.get("message") if isinstance(update, dict) else None
    if not isinstance(msg, dict):
        return None
    sender, chat, text = msg.get("from"), msg.get("chat"), msg.get("text")
    if not isinstance(sender, dict) or not isinstance(chat, dict) or not isinstance(text, str):
        return None
    user_id, chat_id = _as_int(sender.get("id")), _as_int(chat.get("id"))
    if user_id is None or chat_id is None or sender.get("is_bot") is True or chat.get("type") != "private":
        return None
    content = text.strip()
    if not content:
        return None
    metadata: dict[str, Any] = {"chat_id": chat_id, "message_id": _as_int(msg.get("message_id")),
                                "chat_type": "private"}
    thread = _as_int(msg.get("message_thread_id"))
    if thread is not None:
        metadata["thread_id"] = thread
    username = sender.get("username") if isinstance(sender.get("username"), str) else None
    if username:
        metadata["username"] = username
    first = sender.get("first_name") if isinstance(sender.get("first_name"), str) else None
    return Emission(user_id=str(user_id), content=content, user_name=username or first or None,
                    thread_id=str(thread) if thread is not None else None,
                    metadata_json=json.dumps(metadata, separators=(",", ":")))


def handle(body: bytes) -> tuple[int, bytes, Emission | None]:
    """The whole work for one webhook body: (status, response body, emission or None)."""
    try:
        update = json.loads(body)
    except ValueError:
        return 400, b'{"error":"not a Telegram update"}', None
    return 200, OK_BODY, emission_for(update)
