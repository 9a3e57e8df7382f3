"""The fake Telegram server's state (queued updates, chats, messages, webhook settings, records) and the
helpers the Bot API methods and the control API share."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import ClientSession, web

from .wire import (
    _COMMAND_RE,
    _DEFAULT_EXCLUDED_UPDATES,
    _MENTION_RE,
    _TOKEN_RE,
    _WEBHOOK_MAX_CONNECTIONS_DEFAULT,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    JsonDict,
    _ApiError,
    _bad_request,
    _param_bool,
    _param_int,
    _param_json,
    _update_type,
    _utf16_len,
)


class TelegramState:
    """What the fake remembers; :class:`~airlock_demo.telegram.FakeTelegram` documents the records."""

    def __init__(self, token: str = DEFAULT_TOKEN, bot_username: str = DEFAULT_BOT_USERNAME) -> None:
        if not _TOKEN_RE.fullmatch(token):
            raise ValueError(f"bot token must look like '<digits>:<secret>', got {token!r}")
        if not bot_username or not re.fullmatch(r"[A-Za-z0-9_]+", bot_username):
            raise ValueError(f"bot username must be letters, digits and underscores, got {bot_username!r}")
        self.token: Final = token
        self.bot_username: Final = bot_username
        self.bot_id: Final = int(token.split(":", 1)[0])

        self.requests: list[tuple[str, str]] = []
        self.sent_messages: list[JsonDict] = []
        self.edited_messages: list[JsonDict] = []
        self.reactions: list[JsonDict] = []
        """Accepted setMessageReaction calls: ``chat_id``, ``message_id``, ``emoji`` (None: the reaction removed)."""
        self.sent_files: list[JsonDict] = []
        """sendDocument / sendPhoto calls: ``method``, ``chat_id``, ``filename``, ``content_type``, ``data`` (the
        uploaded bytes), ``caption``, ``message_thread_id``, ``message`` (``files``)."""
        self.timeline: list[tuple[str, float, int, str]] = []
        """``(method, time.monotonic(), message_id, text)`` of every accepted sendMessage and editMessageText."""
        self.chat_actions: list[JsonDict] = []
        self.webhook_deliveries: list[JsonDict] = []
        self.get_updates_offsets: list[int | None] = []
        """The ``offset`` of every getUpdates call, in arrival order (a poller's cursor must never go back)."""
        self.get_updates_overlaps = 0
        """getUpdates calls that arrived while another one was still running: two pollers of one bot (the real
        service terminates the older one with 409; a gateway must never poll one bot twice at once)."""
        self._get_updates_running = 0

        self.webhook_max_attempts = 3
        self.webhook_retry_delay = 0.05
        self.webhook_timeout = 5.0

        self._updates: list[JsonDict] = []  # unconfirmed, in arrival order
        self._next_update_id = 1
        self._allowed_updates: list[str] = []  # [] = all but _DEFAULT_EXCLUDED_UPDATES
        self._poll_generation = 0
        self._chats: dict[int, JsonDict] = {}
        self._next_message_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], JsonDict] = {}  # (chat id, message id) -> Message

        self._webhook_url: str | None = None
        self._webhook_secret: str | None = None
        self._webhook_max_connections = _WEBHOOK_MAX_CONNECTIONS_DEFAULT
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: ClientSession | None = None

        # Edge-triggered wake-ups: waiters grab the current event, notifiers set it and
        # install a fresh one.
        self._update_event = asyncio.Event()
        self._record_event = asyncio.Event()

        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._closing = False

    # ----------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------

    @property
    def bot_user(self) -> JsonDict:
        """The bot's User object as returned by getMe."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Airlock Test Bot",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _notify_updates(self) -> None:
        event, self._update_event = self._update_event, asyncio.Event()
        event.set()

    def _notify_records(self) -> None:
        event, self._record_event = self._record_event, asyncio.Event()
        event.set()

    async def _wait_for_records(
        self, records: list[JsonDict], n: int, timeout: float, what: str
    ) -> list[JsonDict]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < n:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"expected {n} {what} within {timeout}s, got {len(records)}: {records!r}")
            event = self._record_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return list(records[:n])

    def _enqueue(self, payload: JsonDict) -> JsonDict:
        update: JsonDict = {"update_id": self._next_update_id, **payload}
        self._next_update_id += 1
        if self._update_allowed(update):
            self._updates.append(update)
            self._notify_updates()
        return update

    def _update_allowed(self, update: Mapping[str, Any]) -> bool:
        kind = _update_type(update)
        if kind is None:
            return True
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _DEFAULT_EXCLUDED_UPDATES

    def _set_allowed_updates(self, params: JsonDict) -> None:
        if "allowed_updates" not in params:
            return  # "If not specified, the previous setting will be used."
        value = _param_json(params, "allowed_updates")
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad_request("can't parse allowed_updates JSON array")
        self._allowed_updates = list(value)

    def _confirm(self, offset: int | None) -> None:
        if not offset:
            return
        if offset < 0:
            self._updates = self._updates[offset:]
        else:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

    def _alloc_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _bot_sender(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Airlock Test Bot",
            "username": self.bot_username,
        }

    def _resolve_chat(self, params: JsonDict) -> JsonDict:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            wanted = raw[1:].lower()
            for known in self._chats.values():
                if str(known.get("username", "")).lower() == wanted:
                    return known
            raise _bad_request("chat not found")
        try:
            chat_id = _param_int(params, "chat_id")
        except _ApiError:
            raise _bad_request("chat not found") from None
        if chat_id is None or chat_id == 0:
            raise _bad_request("chat not found")
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                chat = {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
            elif str(chat_id).startswith("-100"):
                chat = {"id": chat_id, "type": "supergroup", "title": f"Chat {chat_id}"}
            else:
                chat = {"id": chat_id, "type": "group", "title": f"Chat {chat_id}"}
            self._chats[chat_id] = chat
        return chat

    def _resolve_reply(
        self, params: JsonDict, reply_parameters: JsonDict | None, chat_id: int
    ) -> JsonDict | None:
        allow_without = _param_bool(params, "allow_sending_without_reply")
        reply_chat_id = chat_id
        if reply_parameters is not None:
            message_id = _param_int(reply_parameters, "message_id")
            if message_id is None:
                raise _bad_request("message to be replied not found")
            allow_without = allow_without or _param_bool(reply_parameters, "allow_sending_without_reply")
            if reply_parameters.get("chat_id") not in (None, ""):
                reply_chat_id = self._resolve_chat(reply_parameters)["id"]
        else:
            message_id = _param_int(params, "reply_to_message_id")
            if message_id is None:
                return None
        stored = self._messages.get((reply_chat_id, message_id))
        if stored is None:
            if allow_without:
                return None
            raise _bad_request("message to be replied not found")
        return copy.deepcopy(stored)

    def _detect_entities(self, text: str) -> list[JsonDict]:
        entities: list[tuple[int, int, str]] = []  # (start, end) in code points, type
        for match in _COMMAND_RE.finditer(text):
            entities.append((match.start(), match.end(), "bot_command"))
        for match in _MENTION_RE.finditer(text):
            name = match.group(1)
            if not (5 <= len(name) <= 32 or name.lower() == self.bot_username.lower()):
                continue
            if any(start < match.end() and match.start() < end for start, end, _ in entities):
                continue
            entities.append((match.start(), match.end(), "mention"))
        entities.sort()
        return [
            {"offset": _utf16_len(text[:start]), "length": _utf16_len(text[start:end]), "type": kind}
            for start, end, kind in entities
        ]
