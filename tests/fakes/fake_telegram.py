"""Test-side access to the fake Telegram Bot API server.

The implementation lives in ``airlock_demo.telegram`` (host/airlock_demo, not shipped in the wheel) because
``make run``'s demo embeds it; this module only re-exports it for tests.

Note: this file is deliberately *not* named ``telegram.py``. ``tests/`` has no
``__init__.py`` files, so pytest (default "prepend" import mode) puts ``tests/fakes`` on
``sys.path``, and a ``tests/fakes/telegram.py`` would shadow python-telegram-bot's
``telegram`` package for the whole test session. Tests outside this directory should import
``airlock_demo.telegram`` directly.
"""

from airlock_demo.telegram import (
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
    FakeTelegram,
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
