"""The fake Telegram server's control API for tests and demos: simulate users, wait for what the bot did."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from .state import TelegramState
from .wire import (
    _CHAT_TYPES,
    DEFAULT_FIRST_NAME,
    DEFAULT_GROUP_CHAT_ID,
    DEFAULT_SUPERGROUP_CHAT_ID,
    DEFAULT_USER_ID,
    DEFAULT_USERNAME,
    ChatType,
    JsonDict,
)


class Control(TelegramState):
    """``push_message``, ``push_update``, ``pending_updates`` and the ``wait_for_*`` methods."""

    # ----------------------------------------------------------------------------------
    # Control API
    # ----------------------------------------------------------------------------------

    def push_message(
        self,
        text: str,
        *,
        chat_id: int | None = None,
        user_id: int = DEFAULT_USER_ID,
        username: str | None = DEFAULT_USERNAME,
        first_name: str = DEFAULT_FIRST_NAME,
        chat_type: ChatType = "private",
        chat_title: str | None = None,
        entities: list[JsonDict] | None = None,
        reply_to: int | JsonDict | None = None,
        message_thread_id: int | None = None,
    ) -> JsonDict:
        """Simulate a user sending ``text``; queue and return the resulting Update.

        The Update is ``{"update_id": n, "message": Message}`` where Message has
        ``message_id`` (per-chat counter shared with the bot's sent messages), ``from`` (a
        non-bot User: ``user_id``, ``first_name``, ``username`` if not None,
        ``language_code`` "en"), ``chat``, ``date`` (Unix seconds), ``text`` and, when
        non-empty, ``entities``.

        * ``chat_type`` "private": ``chat_id`` defaults to, and must equal, ``user_id`` (a
          private chat's id is the user's id). "group"/"supergroup": ``chat_id`` must be
          negative; defaults :data:`DEFAULT_GROUP_CHAT_ID` / :data:`DEFAULT_SUPERGROUP_CHAT_ID`;
          ``chat_title`` defaults to "Airlock Test Group".
        * ``entities=None`` auto-detects entities like official clients do: a ``mention`` for
          every ``@username`` (5-32 word characters, or the bot's own username) and a
          ``bot_command`` for every ``/command[@bot]`` starting a word. Offsets and lengths
          are in UTF-16 code units (Bot API docs, "MessageEntity"). Pass a list (possibly
          empty) to use exactly those entities.
        * ``reply_to``: the ``message_id`` of an earlier message in the same chat (pushed or
          sent by the bot; ValueError if unknown), or a Message dict used verbatim, becomes
          ``reply_to_message`` (without its own nested ``reply_to_message``, as the docs say).
        * ``message_thread_id``: set on the message as-is (forum topics).
        """
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        if chat_type not in _CHAT_TYPES:
            raise ValueError(f"chat_type must be one of {_CHAT_TYPES}, got {chat_type!r}")
        if chat_type == "private":
            if chat_id is None:
                chat_id = user_id
            elif chat_id != user_id:
                raise ValueError("a private chat's id equals the user's id")
            chat: JsonDict = {"id": chat_id, "type": "private", "first_name": first_name}
            if username is not None:
                chat["username"] = username
        else:
            if chat_id is None:
                chat_id = DEFAULT_GROUP_CHAT_ID if chat_type == "group" else DEFAULT_SUPERGROUP_CHAT_ID
            elif chat_id >= 0:
                raise ValueError("group and supergroup chat ids are negative")
            chat = {"id": chat_id, "type": chat_type, "title": chat_title or "Airlock Test Group"}
        self._chats[chat_id] = chat

        sender: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            sender["username"] = username
        sender["language_code"] = "en"

        message: JsonDict = {
            "message_id": self._alloc_message_id(chat_id),
            "from": sender,
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
        message["text"] = text
        found = self._detect_entities(text) if entities is None else copy.deepcopy(entities)
        if found:
            message["entities"] = found

        reply: JsonDict | None = None
        if isinstance(reply_to, dict):
            reply = copy.deepcopy(reply_to)
        elif reply_to is not None:
            stored = self._messages.get((chat_id, reply_to))
            if stored is None:
                raise ValueError(f"no message {reply_to} in chat {chat_id} to reply to")
            reply = copy.deepcopy(stored)
        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        if reply is not None:
            message["reply_to_message"] = reply
        return copy.deepcopy(self._enqueue({"message": message}))

    def push_update(self, update: Mapping[str, Any]) -> JsonDict:
        """Queue a raw Update (for malformed-update tests); return the stored copy.

        Nothing is validated except ``update_id``: if absent, the next id is assigned; if
        present it must be an int (the queue is ordered by it), and later automatic ids
        continue above it. Like every update, it is dropped at creation if its type (its
        first key other than ``update_id``) is excluded by the current ``allowed_updates``.
        """
        stored: JsonDict = copy.deepcopy(dict(update))
        if "update_id" in stored:
            update_id = stored["update_id"]
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                raise ValueError("update_id must be an int")
            self._next_update_id = max(self._next_update_id, update_id + 1)
        else:
            stored = {"update_id": self._next_update_id, **stored}
            self._next_update_id += 1
        if self._update_allowed(stored):
            self._updates.append(stored)
            self._notify_updates()
        return copy.deepcopy(stored)

    def pending_updates(self) -> list[JsonDict]:
        """Copies of the queued, not yet confirmed (getUpdates) or delivered (webhook) Updates."""
        return copy.deepcopy(self._updates)

    async def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until at least ``n`` sendMessage calls succeeded; return ``sent_messages[:n]``.

        ``timeout`` is in seconds; raises TimeoutError listing what was sent so far.
        """
        return await self._wait_for_records(self.sent_messages, n, timeout, "sent messages")

    async def wait_for_files(self, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until at least ``n`` sendDocument/sendPhoto calls succeeded; return ``sent_files[:n]`` (seconds;
        raises TimeoutError)."""
        return await self._wait_for_records(self.sent_files, n, timeout, "sent files")

    async def wait_for_chat_action(self, n: int = 1, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until at least ``n`` sendChatAction calls succeeded; return ``chat_actions[:n]``.

        ``timeout`` is in seconds; raises TimeoutError.
        """
        return await self._wait_for_records(self.chat_actions, n, timeout, "chat actions")

    async def wait_for_webhook_deliveries(self, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until at least ``n`` webhook POST attempts (successful or not) were made;
        return ``webhook_deliveries[:n]``. ``timeout`` is in seconds; raises TimeoutError."""
        return await self._wait_for_records(self.webhook_deliveries, n, timeout, "webhook deliveries")
