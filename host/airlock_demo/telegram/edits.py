"""editMessageText and setMessageReaction of the fake Telegram server (Bot API docs, "Updating messages" and
"setMessageReaction")."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from .state import TelegramState
from .wire import MAX_MESSAGE_LENGTH, JsonDict, _bad_request, _param_int, _param_str

NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are exactly the same as "
                "a current content and reply markup of the message")
"""The Bot API's 400 description for an edit that changes nothing."""

_ALLOWED = (
    "👍 👎 ❤ 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 🥱 🥴 😍 🐳 ❤‍🔥 🌚 🌭 💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 "
    "🍾 💋 🖕 😈 😴 😭 🤓 👻 👨‍💻 👀 🎃 🙈 😇 😨 🤝 ✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷‍♂ 🤷 🤷‍♀ 😡"
)
REACTION_EMOJI = frozenset(_ALLOWED.split(" "))
"""The emoji a ``ReactionTypeEmoji`` may carry (Bot API docs, ReactionTypeEmoji: the list of currently allowed values);
any other one is 400 "Bad Request: REACTION_INVALID"."""


class EditApi(TelegramState):
    """The ``editMessageText`` and ``setMessageReaction`` handlers (mixed into ``BotApi``)."""

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

    async def _api_set_message_reaction(self, params: JsonDict) -> Any:
        """setMessageReaction(chat_id, message_id, reaction) -> True.

        Rules (Bot API docs, setMessageReaction): ``message_id`` of a message in that chat, else 400 "Bad Request:
        message to react not found"; ``reaction`` a list of ReactionType objects, of which a bot may set one
        (more: 400 "Bad Request: REACTIONS_TOO_MANY"); a ``{"type": "emoji", "emoji": E}`` with ``E`` not in
        :data:`REACTION_EMOJI` is 400 "Bad Request: REACTION_INVALID"; an empty list (or none) removes the bot's
        reaction. Every accepted call is in ``reactions`` as ``{chat_id, message_id, emoji}`` (``emoji`` None: removed).
        """
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        message_id = _param_int(params, "message_id")
        if message_id is None or (chat_id, message_id) not in self._messages:
            raise _bad_request("message to react not found")
        reaction = params.get("reaction") or []
        if isinstance(reaction, str):  # form-encoded calls carry it as JSON text
            reaction = json.loads(reaction)
        if not isinstance(reaction, list):
            raise _bad_request("reaction must be an array")
        if len(reaction) > 1:
            raise _bad_request("REACTIONS_TOO_MANY")
        emoji = None
        if reaction:
            kind = reaction[0]
            if not isinstance(kind, dict) or kind.get("type") != "emoji" or kind.get("emoji") not in REACTION_EMOJI:
                raise _bad_request("REACTION_INVALID")
            emoji = str(kind["emoji"])
        self.reactions.append({"chat_id": chat_id, "message_id": message_id, "emoji": emoji})
        self._notify_records()
        return True
