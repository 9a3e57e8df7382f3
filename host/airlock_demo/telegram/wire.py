"""The fake Telegram server's constants (limits quoted from the Bot API docs), its error envelope, and the
coercion of request parameters (JSON bodies carry typed values; query strings and forms carry strings)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web

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
                params[key] = {"filename": value.filename, "content_type": value.content_type,
                               "data": value.file.read()}
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
