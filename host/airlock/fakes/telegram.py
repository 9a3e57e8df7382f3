"""A fake Telegram Bot API server for tests and the gateway's demo mode.

``FakeTelegram`` is an aiohttp application that speaks the Telegram Bot API wire format
(https://core.telegram.org/bots/api) closely enough that unmodified clients -- the Airlock
Telegram channel plugin, python-telegram-bot, plain HTTP -- can run against it on 127.0.0.1.

Wire format (Bot API docs, "Making requests"):

* Requests go to ``<base>/bot<token>/<method>``, with ``GET`` or ``POST``. Parameters may be
  passed in the query string, as ``application/x-www-form-urlencoded``, as
  ``multipart/form-data`` or as ``application/json``. In the form and query encodings every
  value is a string; object and array parameters (``reply_parameters``, ``allowed_updates``,
  ...) are JSON-serialized strings, numbers are decimal strings. Method names are
  case-insensitive.
* Every response is a JSON object. On success: ``{"ok": true, "result": ...}`` (sometimes with
  a ``description``). On failure: ``{"ok": false, "error_code": <int>, "description": <str>}``,
  and the HTTP status equals ``error_code``.

Implemented methods: ``getMe``, ``getUpdates``, ``sendMessage``, ``sendChatAction``,
``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``. Any other method name answers
``404 Not Found``; a wrong token answers ``401 Unauthorized``.

Where the fake deliberately differs from the real service, the docstring of the method says
so. The main differences: webhooks may be plain ``http://`` but must point at a loopback
host; failed webhook deliveries are retried a bounded number of times and then dropped;
message text is not parsed for markup (lengths are measured on the raw text); unknown
numeric chat ids are accepted (a chat is synthesized) instead of answering "chat not found".

Besides the Bot API, the server exposes a control API for tests and demos, both as Python
methods (``push_message``, ``push_update``, ``wait_for_sent``, ...) and over HTTP under
``/_control/`` (see :class:`FakeTelegram`). Call the Python methods from the event loop the
server runs on; from another thread or process use the HTTP control API.

Minimal use::

    async with FakeTelegram() as tg:
        bot = telegram.Bot(tg.token, base_url=f"{tg.base_url}/bot")
        tg.push_message("hello @airlock_test_bot", chat_type="group")
        ...
        sent = await tg.wait_for_sent(1)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, web

__all__ = [
    "CHAT_ACTIONS",
    "DEFAULT_BOT_USERNAME",
    "DEFAULT_FIRST_NAME",
    "DEFAULT_GROUP_CHAT_ID",
    "DEFAULT_SUPERGROUP_CHAT_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "DEFAULT_USER_ID",
    "GET_UPDATES_MAX_LIMIT",
    "LONG_POLL_MAX_TIMEOUT",
    "MAX_MESSAGE_LENGTH",
    "SECRET_TOKEN_HEADER",
    "ChatType",
    "FakeTelegram",
]

DEFAULT_TOKEN: Final = "123456:TEST-TOKEN"
DEFAULT_BOT_USERNAME: Final = "airlock_test_bot"

#: Defaults for the human sender of :meth:`FakeTelegram.push_message`.
DEFAULT_USER_ID: Final = 1001
DEFAULT_USERNAME: Final = "alice"
DEFAULT_FIRST_NAME: Final = "Alice"
#: Default chat ids when ``push_message`` is called without ``chat_id``. Basic groups have
#: negative ids; supergroup ids are negative and start with ``-100`` (Bot API docs, "Chat").
DEFAULT_GROUP_CHAT_ID: Final = -4001
DEFAULT_SUPERGROUP_CHAT_ID: Final = -1001234567890

#: sendMessage ``text``: "1-4096 characters after entities parsing" (Bot API docs,
#: sendMessage). The fake does not parse markup and counts Python characters (code points)
#: of the raw text.
MAX_MESSAGE_LENGTH: Final = 4096
#: getUpdates ``limit``: "Values between 1-100 are accepted. Defaults to 100."
GET_UPDATES_MAX_LIMIT: Final = 100
#: Upper bound, in seconds, for the getUpdates long-poll ``timeout``. The docs only say the
#: timeout "should be positive"; the fake caps it so a forgotten poll cannot hang a test.
LONG_POLL_MAX_TIMEOUT: Final = 50.0
#: Header carrying setWebhook's ``secret_token`` on every webhook request (Bot API docs,
#: setWebhook).
SECRET_TOKEN_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"

#: Values accepted for sendChatAction ``action`` (Bot API docs, sendChatAction).
CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
#: sendMessage ``parse_mode`` values ("Formatting options"); compared case-insensitively.
_PARSE_MODES: Final = frozenset({"html", "markdown", "markdownv2"})
#: Update types not delivered unless explicitly listed in ``allowed_updates`` (Bot API docs,
#: getUpdates: "Specify an empty list to receive all update types except chat_member,
#: message_reaction, and message_reaction_count (default)").
_DEFAULT_EXCLUDED_UPDATES: Final = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
#: setWebhook ``secret_token``: "1-256 characters. Only characters A-Z, a-z, 0-9, _ and - are
#: allowed."
_SECRET_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: Bot tokens look like ``<bot id>:<secret>`` (Bot API docs, "Authorizing your bot").
_TOKEN_RE: Final = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
#: setWebhook ``max_connections``: "1-100. Defaults to 40."
_WEBHOOK_MAX_CONNECTIONS_DEFAULT: Final = 40

# Entity detection for push_message, mimicking what official clients send. A mention is
# "@username" not glued to a preceding word character; usernames are 5-32 characters of
# a-z, 0-9 and underscores (the bot's own name is always recognized). A bot command is
# "/command" (1-32 characters), optionally "@botname", at the start of a word.
_MENTION_RE: Final = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]+)(?![A-Za-z0-9_])")
_COMMAND_RE: Final = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_/@])")

_WEBHOOK_CONFLICT: Final = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_POLL_CONFLICT: Final = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)

ChatType = Literal["private", "group", "supergroup"]
_CHAT_TYPES: Final = ("private", "group", "supergroup")

JsonDict = dict[str, Any]
_Handler = Callable[[JsonDict], Awaitable[Any]]


class _ApiError(Exception):
    """A Bot API failure: answered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True)
class _Described:
    """A successful result that also carries a top-level ``description`` (as setWebhook)."""

    result: Any
    description: str


def _error_response(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)


def _bad_request(detail: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {detail}")


# --------------------------------------------------------------------------------------
# Parameter coercion. JSON bodies carry typed values; query strings and forms carry strings
# (objects/arrays JSON-serialized), so every accessor accepts both.
# --------------------------------------------------------------------------------------


def _param_int(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad_request(f"invalid {name} specified")


def _param_number(params: Mapping[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _bad_request(f"invalid {name} specified")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _bad_request(f"invalid {name} specified")


def _param_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _bad_request(f"invalid {name} specified")


def _param_bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
    raise _bad_request(f"invalid {name} specified")


def _param_json(params: Mapping[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        if value == "":
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _bad_request(f"can't parse {name} JSON object") from None
    return value


async def _read_params(request: web.Request) -> JsonDict:
    """Merge query-string and body parameters (body wins), as the real API accepts both."""
    params: JsonDict = dict(request.query.items())
    if not request.body_exists:
        return params
    content_type = request.content_type
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = {"filename": value.filename, "content_type": value.content_type}
            else:
                params[key] = value
        return params
    raw = await request.read()
    if content_type == "application/json" or raw.lstrip().startswith(b"{"):
        if not raw.strip():
            return params
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _bad_request("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _bad_request("JSON object expected")
        params.update(body)
    return params


def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of MessageEntity offset/length (Bot API docs)."""
    return len(text.encode("utf-16-le")) // 2


def _is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _update_type(update: Mapping[str, Any]) -> str | None:
    """The update's type: its one optional field besides ``update_id`` (Bot API, "Update")."""
    for key in update:
        if key != "update_id":
            return key
    return None


class FakeTelegram:
    """A fake Telegram Bot API server on 127.0.0.1 with a control API for tests.

    Construct, then ``await start()`` (or ``async with FakeTelegram() as tg``); point the
    client at ``f"{tg.base_url}/bot{tg.token}/<method>"`` (python-telegram-bot:
    ``telegram.Bot(tg.token, base_url=f"{tg.base_url}/bot")`` -- PTB appends the token).

    Bot API (``GET``/``POST`` ``/bot<token>/<method>``): getMe, getUpdates, sendMessage,
    sendChatAction, setWebhook, deleteWebhook, getWebhookInfo. See each ``_api_*`` method.

    Records, appended as requests are served (tests read them directly):

    * ``requests: list[tuple[str, str]]`` -- ``(method name as sent, raw URL path without the
      query string)`` for every request to a ``/bot...`` path, including rejected ones, so a
      test can assert that the token arrived in the path.
    * ``sent_messages: list[dict]`` -- one per successful sendMessage: the normalized call
      parameters (``chat_id`` resolved to an int, JSON-string parameters decoded) plus
      ``"message"``: the Message object returned to the caller.
    * ``chat_actions: list[dict]`` -- one per successful sendChatAction: ``chat_id`` (int),
      ``action``, ``message_thread_id`` (int or None), ``time`` (Unix seconds, float).
    * ``webhook_deliveries: list[dict]`` -- one per webhook POST attempt: ``update_id``,
      ``url``, ``attempt`` (1-based), ``status`` (HTTP status or None when the connection
      failed), ``error`` (None on a 2xx answer, else the text reported by getWebhookInfo).

    Control API (Python, call from the server's event loop): :meth:`push_message`,
    :meth:`push_update`, :meth:`wait_for_sent`, :meth:`wait_for_chat_action`,
    :meth:`wait_for_webhook_deliveries`, :meth:`pending_updates`. The same over HTTP
    (responses use the Bot API envelope ``{"ok": true, "result": ...}``; bad input answers
    400 in the same error shape):

    * ``POST /_control/message`` -- JSON object with ``push_message``'s parameters
      (``text`` required) -> the Update.
    * ``POST /_control/update`` -- JSON object: a raw Update -> the stored Update.
    * ``GET /_control/sent`` -> ``sent_messages``; ``GET /_control/chat_actions`` ->
      ``chat_actions``; ``GET /_control/updates`` -> ``pending_updates()``;
      ``GET /_control/requests`` -> ``requests`` as ``[method, path]`` pairs.

    Webhook delivery tuning (instance attributes, change before ``setWebhook``):
    ``webhook_max_attempts`` (default 3 attempts per update), ``webhook_retry_delay``
    (default 0.05 s, multiplied by the attempt number), ``webhook_timeout`` (default 5.0 s
    per attempt).
    """

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
        self.chat_actions: list[JsonDict] = []
        self.webhook_deliveries: list[JsonDict] = []

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

        self._methods: dict[str, _Handler] = {
            "getme": self._api_get_me,
            "getupdates": self._api_get_updates,
            "sendmessage": self._api_send_message,
            "sendchataction": self._api_send_chat_action,
            "setwebhook": self._api_set_webhook,
            "deletewebhook": self._api_delete_webhook,
            "getwebhookinfo": self._api_get_webhook_info,
        }

    # ----------------------------------------------------------------------------------
    # Lifecycle
    # ----------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; return the base URL ``"http://<host>:<port>"`` (no trailing slash).

        ``port=0`` picks a free port. The server has no authentication beyond the bot token;
        keep it on a loopback address.
        """
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already started")
        self._closing = False
        app = web.Application()
        app.router.add_route("GET", "/bot{token}/{method}", self._handle_bot_api)
        app.router.add_route("POST", "/bot{token}/{method}", self._handle_bot_api)
        app.router.add_post("/_control/message", self._handle_control_message)
        app.router.add_post("/_control/update", self._handle_control_update)
        app.router.add_get("/_control/sent", self._handle_control_sent)
        app.router.add_get("/_control/chat_actions", self._handle_control_chat_actions)
        app.router.add_get("/_control/updates", self._handle_control_updates)
        app.router.add_get("/_control/requests", self._handle_control_requests)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        self._base_url = f"http://{url_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving: end pending long polls (they answer an empty list), cancel webhook
        delivery, close the server. Records and queued updates are kept. Idempotent."""
        self._closing = True
        self._notify_updates()
        await self._stop_webhook_task()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._base_url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:<port>"`` of the running server (RuntimeError if not started)."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """``"<base_url>/bot<token>"``: append ``/<method>`` to call the Bot API."""
        return f"{self.base_url}/bot{self.token}"

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

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL set with setWebhook, or None while getUpdates is in use."""
        return self._webhook_url

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

    async def wait_for_chat_action(self, n: int = 1, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until at least ``n`` sendChatAction calls succeeded; return ``chat_actions[:n]``.

        ``timeout`` is in seconds; raises TimeoutError.
        """
        return await self._wait_for_records(self.chat_actions, n, timeout, "chat actions")

    async def wait_for_webhook_deliveries(self, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until at least ``n`` webhook POST attempts (successful or not) were made;
        return ``webhook_deliveries[:n]``. ``timeout`` is in seconds; raises TimeoutError."""
        return await self._wait_for_records(self.webhook_deliveries, n, timeout, "webhook deliveries")

    # ----------------------------------------------------------------------------------
    # Bot API methods
    # ----------------------------------------------------------------------------------

    async def _api_get_me(self, params: JsonDict) -> Any:
        """getMe: the bot's User (``is_bot`` true, ``id`` = the token's numeric prefix)."""
        return self.bot_user

    async def _api_get_updates(self, params: JsonDict) -> Any:
        """getUpdates(offset, limit, timeout, allowed_updates) -> list of Update.

        Rules (Bot API docs, getUpdates):

        * ``offset``: updates with ``update_id < offset`` are confirmed and never returned
          again. A negative offset keeps only the last ``-offset`` queued updates and forgets
          the rest. 0/absent returns from the earliest unconfirmed update.
        * ``limit``: 1-100, default 100 (out-of-range values are clamped).
        * ``timeout``: seconds to long-poll; 0 (default) is short polling. The call returns
          as soon as at least one update is available, else an empty list when the timeout
          elapses (capped at :data:`LONG_POLL_MAX_TIMEOUT`).
        * ``allowed_updates``: JSON list of update types, remembered for later calls and
          webhooks; [] means all but chat_member, message_reaction, message_reaction_count.
          As documented, it only affects updates created after the call.
        * 409 "Conflict: can't use getUpdates method while webhook is active; ..." while a
          webhook is set; 409 "Conflict: terminated by other getUpdates request; ..." for a
          long poll overtaken by a newer getUpdates call.
        """
        if self._webhook_url is not None:
            raise _ApiError(409, _WEBHOOK_CONFLICT)
        offset = _param_int(params, "offset")
        limit = _param_int(params, "limit")
        limit = GET_UPDATES_MAX_LIMIT if limit is None else min(max(limit, 1), GET_UPDATES_MAX_LIMIT)
        timeout = _param_number(params, "timeout") or 0.0
        timeout = min(max(timeout, 0.0), LONG_POLL_MAX_TIMEOUT)
        self._set_allowed_updates(params)

        self._poll_generation += 1
        generation = self._poll_generation
        self._notify_updates()  # wake (and so terminate) an older long poll
        self._confirm(offset)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if generation != self._poll_generation:
                raise _ApiError(409, _POLL_CONFLICT)
            if self._webhook_url is not None:
                raise _ApiError(409, _WEBHOOK_CONFLICT)
            if self._updates:
                return copy.deepcopy(self._updates[:limit])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = self._update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _api_send_message(self, params: JsonDict) -> Any:
        """sendMessage(chat_id, text, parse_mode, entities, reply_parameters,
        reply_to_message_id, message_thread_id, reply_markup, ...) -> Message.

        Rules (Bot API docs, sendMessage / Message / ReplyParameters):

        * ``chat_id``: int, numeric string, or "@username" of a chat seen before. Missing ->
          400 "Bad Request: chat_id is empty"; unknown "@username" -> 400 "Bad Request: chat
          not found". Unknown numeric ids are accepted (fake leniency): a private chat for
          positive ids, a group (or supergroup for ``-100...``) for negative ones.
        * ``text``: empty or whitespace-only -> 400 "Bad Request: message text is empty";
          more than 4096 characters -> 400 "Bad Request: message is too long". Markup is not
          parsed: the returned ``text`` is the raw text and ``entities`` are echoed only when
          passed explicitly.
        * ``parse_mode``: HTML, Markdown or MarkdownV2 (any case), else 400 "Bad Request:
          unsupported parse_mode".
        * ``reply_parameters`` (``message_id``, optional ``chat_id``,
          ``allow_sending_without_reply``) or legacy ``reply_to_message_id``: the replied
          message must be known, else 400 "Bad Request: message to be replied not found"
          unless sending without reply is allowed.
        * The Message has ``message_id`` (per-chat counter), ``from`` (the bot), ``chat``,
          ``date`` (Unix seconds), ``text``, plus ``message_thread_id``, ``entities``,
          ``reply_to_message`` and an inline-keyboard ``reply_markup`` when given.
        """
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        text = _param_str(params, "text")
        if text is None or not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        parse_mode = _param_str(params, "parse_mode")
        if parse_mode and parse_mode.lower() not in _PARSE_MODES:
            raise _bad_request("unsupported parse_mode")
        message_thread_id = _param_int(params, "message_thread_id")
        entities = _param_json(params, "entities")
        if entities is not None and not isinstance(entities, list):
            raise _bad_request("can't parse entities JSON object")
        reply_markup = _param_json(params, "reply_markup")
        if reply_markup is not None and not isinstance(reply_markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        reply_parameters = _param_json(params, "reply_parameters")
        if reply_parameters is not None and not isinstance(reply_parameters, dict):
            raise _bad_request("can't parse reply parameters JSON object")

        reply = self._resolve_reply(params, reply_parameters, chat_id)

        message: JsonDict = {
            "message_id": self._alloc_message_id(chat_id),
            "from": self._bot_sender(),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
        message["text"] = text
        if entities:
            message["entities"] = entities
        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        if reply is not None:
            message["reply_to_message"] = reply
        if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup:
            message["reply_markup"] = reply_markup

        record: JsonDict = dict(params)
        record.update(chat_id=chat_id, text=text)
        for name, value in (
            ("parse_mode", parse_mode),
            ("message_thread_id", message_thread_id),
            ("entities", entities),
            ("reply_markup", reply_markup),
            ("reply_parameters", reply_parameters),
            ("reply_to_message_id", _param_int(params, "reply_to_message_id")),
            ("link_preview_options", _param_json(params, "link_preview_options")),
        ):
            if name in params:
                record[name] = value
        for name in ("disable_notification", "protect_content", "allow_sending_without_reply"):
            if name in params:
                record[name] = _param_bool(params, name)
        record["message"] = copy.deepcopy(message)
        self.sent_messages.append(record)
        self._notify_records()
        return message

    async def _api_send_chat_action(self, params: JsonDict) -> Any:
        """sendChatAction(chat_id, action, message_thread_id) -> true.

        ``action`` must be one of :data:`CHAT_ACTIONS` (Bot API docs, sendChatAction), else
        400 "Bad Request: wrong parameter action in request". ``chat_id`` as in sendMessage.
        """
        chat = self._resolve_chat(params)
        action = _param_str(params, "action")
        if action not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self.chat_actions.append(
            {
                "chat_id": chat["id"],
                "action": action,
                "message_thread_id": _param_int(params, "message_thread_id"),
                "time": time.time(),
            }
        )
        self._notify_records()
        return True

    async def _api_set_webhook(self, params: JsonDict) -> Any:
        """setWebhook(url, secret_token, allowed_updates, drop_pending_updates,
        max_connections, ...) -> true.

        Rules (Bot API docs, setWebhook):

        * ``url`` empty or absent removes the webhook (like deleteWebhook).
        * Fake restriction: the URL must be ``http`` or ``https`` and its host a loopback
          address or "localhost" (the real service demands public HTTPS on ports 443, 80,
          88 or 8443), else 400 "Bad Request: bad webhook: ...".
        * ``secret_token``: 1-256 characters of A-Z, a-z, 0-9, _ and -, else 400 "Bad
          Request: secret token contains unallowed characters". Sent back in the
          ``X-Telegram-Bot-Api-Secret-Token`` header of every delivery.
        * ``max_connections``: 1-100 (clamped), default 40; reported by getWebhookInfo only
          -- the fake delivers one update at a time, in order.
        * Queued updates are delivered too, unless ``drop_pending_updates`` is true.

        Delivery: each update is POSTed as JSON to the URL. A 2xx answer confirms it. Any
        other answer or a connection failure is retried up to ``webhook_max_attempts``
        attempts in total, ``webhook_retry_delay * attempt`` seconds apart; then the update
        is dropped (the real service keeps retrying for longer) and the failure is reported
        as ``last_error_date``/``last_error_message`` by getWebhookInfo. Method calls in the
        webhook's response body are not executed.
        """
        url = _param_str(params, "url") or ""
        drop_pending = _param_bool(params, "drop_pending_updates")
        if url == "":
            return await self._remove_webhook(drop_pending)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad_request("bad webhook: HTTPS url must be provided for webhook")
        if not _is_loopback_host(parts.hostname):
            raise _bad_request("bad webhook: the fake Telegram server only delivers to loopback hosts")
        secret = _param_str(params, "secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = _param_int(params, "max_connections")
        self._set_allowed_updates(params)

        unchanged = self._webhook_url == url
        self._webhook_url = url
        self._webhook_secret = secret or None
        self._webhook_max_connections = (
            _WEBHOOK_MAX_CONNECTIONS_DEFAULT if max_connections is None else min(max(max_connections, 1), 100)
        )
        if drop_pending:
            self._updates.clear()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._webhook_loop(), name="fake-telegram-webhook")
        self._notify_updates()  # long polls in progress now answer 409
        return _Described(True, "Webhook is already set" if unchanged else "Webhook was set")

    async def _api_delete_webhook(self, params: JsonDict) -> Any:
        """deleteWebhook(drop_pending_updates) -> true. Switches back to getUpdates; queued
        updates are kept unless ``drop_pending_updates`` is true (Bot API docs)."""
        return await self._remove_webhook(_param_bool(params, "drop_pending_updates"))

    async def _api_get_webhook_info(self, params: JsonDict) -> Any:
        """getWebhookInfo -> WebhookInfo: ``url`` ("" when none), ``has_custom_certificate``
        (false), ``pending_update_count``; with a webhook also ``max_connections``,
        ``ip_address`` and ``allowed_updates`` (if set); ``last_error_date`` (Unix seconds)
        and ``last_error_message`` after a failed delivery (Bot API docs, WebhookInfo)."""
        info: JsonDict = {
            "url": self._webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url is not None:
            info["ip_address"] = urlsplit(self._webhook_url).hostname
            info["max_connections"] = self._webhook_max_connections
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        if self._webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    # ----------------------------------------------------------------------------------
    # HTTP plumbing
    # ----------------------------------------------------------------------------------

    async def _handle_bot_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        self.requests.append((method, request.rel_url.raw_path))
        if token != self.token:
            return _error_response(401, "Unauthorized")
        handler = self._methods.get(method.lower())
        if handler is None:
            return _error_response(404, "Not Found")
        try:
            params = await _read_params(request)
            result = await handler(params)
        except _ApiError as exc:
            return _error_response(exc.code, exc.description)
        if isinstance(result, _Described):
            return web.json_response({"ok": True, "result": result.result, "description": result.description})
        return web.json_response({"ok": True, "result": result})

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return _error_response(404, "Not Found")

    async def _read_control_body(self, request: web.Request) -> JsonDict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _bad_request("control endpoints take a JSON object body") from None
        if not isinstance(body, dict):
            raise _bad_request("control endpoints take a JSON object body")
        return body

    async def _handle_control_message(self, request: web.Request) -> web.Response:
        allowed = {
            "text",
            "chat_id",
            "user_id",
            "username",
            "first_name",
            "chat_type",
            "chat_title",
            "entities",
            "reply_to",
            "message_thread_id",
        }
        try:
            body = await self._read_control_body(request)
            unknown = sorted(set(body) - allowed)
            if unknown:
                raise _bad_request(f"unknown parameters {unknown}")
            if not isinstance(body.get("text"), str):
                raise _bad_request("text must be a string")
            kwargs = {k: v for k, v in body.items() if k != "text"}
            try:
                update = self.push_message(body["text"], **kwargs)
            except (TypeError, ValueError) as exc:
                raise _bad_request(str(exc)) from None
        except _ApiError as exc:
            return _error_response(exc.code, exc.description)
        return web.json_response({"ok": True, "result": update})

    async def _handle_control_update(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_control_body(request)
            try:
                update = self.push_update(body)
            except (TypeError, ValueError) as exc:
                raise _bad_request(str(exc)) from None
        except _ApiError as exc:
            return _error_response(exc.code, exc.description)
        return web.json_response({"ok": True, "result": update})

    async def _handle_control_sent(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": self.sent_messages})

    async def _handle_control_chat_actions(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": self.chat_actions})

    async def _handle_control_updates(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": self._updates})

    async def _handle_control_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": [list(r) for r in self.requests]})

    # ----------------------------------------------------------------------------------
    # Internals
    # ----------------------------------------------------------------------------------

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

    async def _remove_webhook(self, drop_pending: bool) -> _Described:
        was_set = self._webhook_url is not None
        self._webhook_url = None
        self._webhook_secret = None
        await self._stop_webhook_task()
        if drop_pending:
            self._updates.clear()
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _webhook_loop(self) -> None:
        while self._webhook_url is not None and not self._closing:
            if not self._updates:
                event = self._update_event
                await event.wait()
                continue
            update = self._updates[0]
            await self._deliver(update)
            # Delivered, or given up on: either way it leaves the queue.
            self._updates = [u for u in self._updates if u is not update]

    async def _deliver(self, update: JsonDict) -> bool:
        if self._client is None:
            self._client = ClientSession()
        body = json.dumps(update)
        for attempt in range(1, max(self.webhook_max_attempts, 1) + 1):
            url = self._webhook_url
            if url is None:
                return False
            headers = {"Content-Type": "application/json"}
            if self._webhook_secret is not None:
                headers[SECRET_TOKEN_HEADER] = self._webhook_secret
            status: int | None = None
            error: str | None
            try:
                async with self._client.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=ClientTimeout(total=self.webhook_timeout),
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    await response.read()
                    ok = 200 <= status < 300
                    error = None if ok else f"Wrong response from the webhook: {status} {response.reason}"
            except ClientConnectorError:
                error = "Connection refused"
            except TimeoutError:
                error = "Read timeout expired"
            except ClientError as exc:
                error = f"Connection failed: {type(exc).__name__}"
            self.webhook_deliveries.append(
                {
                    "update_id": update.get("update_id"),
                    "url": url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                }
            )
            self._notify_records()
            if error is None:
                return True
            self._webhook_last_error = (int(time.time()), error)
            if attempt < self.webhook_max_attempts:
                await asyncio.sleep(self.webhook_retry_delay * attempt)
        return False
