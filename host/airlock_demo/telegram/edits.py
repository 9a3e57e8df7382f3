"""editMessageText of the fake Telegram server (Bot API docs, "Updating messages")."""

from __future__ import annotations

import copy
import time
from typing import Any

from .state import TelegramState
from .wire import MAX_MESSAGE_LENGTH, JsonDict, _bad_request, _param_int, _param_str

NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are exactly the same as "
                "a current content and reply markup of the message")
"""The Bot API's 400 description for an edit that changes nothing."""


class EditApi(TelegramState):
    """The ``editMessageText`` handler (mixed into ``BotApi``)."""

    async def _api_edit_message_text(self, params: JsonDict) -> Any:
        """editMessageText(chat_id, message_id, text, ...) -> the edited Message (with ``edit_date``).

        Rules (Bot API docs, editMessageText): ``chat_id`` as in sendMessage; ``message_id`` of a message in that
        chat, else 400 "Bad Request: message to edit not found"; a message the bot did not send -> 400 "Bad Request:
        message can't be edited"; ``text`` 1-4096 characters ("message text is empty" / "message is too long");
        the same text as now -> 400 "Bad Request: message is not modified: ...". Inline messages
        (``inline_message_id``) are not supported by the fake (400 "message to edit not found").
        Every accepted edit is in ``edited_messages`` (the call) and ``timeline``.
        """
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        message_id = _param_int(params, "message_id")
        stored = self._messages.get((chat_id, message_id)) if message_id is not None else None
        if stored is None or message_id is None:
            raise _bad_request("message to edit not found")
        if (stored.get("from") or {}).get("id") != self.bot_id:
            raise _bad_request("message can't be edited")
        text = _param_str(params, "text")
        if text is None or not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        if text == stored.get("text"):
            raise _bad_request(NOT_MODIFIED)
        stored["text"] = text
        stored["edit_date"] = int(time.time())
        self.edited_messages.append({"chat_id": chat_id, "message_id": message_id, "text": text})
        self.timeline.append(("editMessageText", time.monotonic(), message_id, text))
        self._notify_records()
        return copy.deepcopy(stored)
