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

Implemented methods: ``getMe``, ``getUpdates``, ``sendMessage``, ``sendChatAction``, ``editMessageText``,
``setMessageReaction``, ``sendDocument``, ``sendPhoto`` (multipart uploads; the bytes are kept in ``sent_files``),
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

from .server import FakeTelegram
from .wire import (
    CHAT_ACTIONS,
    DEFAULT_BOT_USERNAME,
    DEFAULT_FIRST_NAME,
    DEFAULT_GROUP_CHAT_ID,
    DEFAULT_SUPERGROUP_CHAT_ID,
    DEFAULT_TOKEN,
    DEFAULT_USER_ID,
    DEFAULT_USERNAME,
    GET_UPDATES_MAX_LIMIT,
    LONG_POLL_MAX_TIMEOUT,
    MAX_MESSAGE_LENGTH,
    SECRET_TOKEN_HEADER,
    ChatType,
)

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
