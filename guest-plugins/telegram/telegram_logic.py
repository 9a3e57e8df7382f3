"""Pure logic of the Telegram channel: configuration, update parsing, admission (message splitting and UTF-16
lengths: ``telegram_text``, re-exported here).

No host calls here, so everything is unit-testable on plain CPython.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from telegram_text import MAX_MESSAGE_UTF16, split_message, utf16_len, utf16_slice

from airlock_sdk import Message

__all__ = [
    "DM_POLICIES",
    "MAX_MESSAGE_UTF16",
    "Inbound",
    "TelegramConfig",
    "bot_is_addressed",
    "parse_inbound",
    "split_message",
    "static_dm_decision",
    "strip_bot_mention",
    "to_message",
    "utf16_len",
]

DM_POLICIES = ("open", "allowlist", "pairing", "disabled")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _as_int(value: Any, default: int, name: str, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {number}")
    return number


def _id_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class TelegramConfig:
    bot_username: str | None = None
    owner_id: str | None = None
    respond_to_all_group_messages: bool = False
    webhook_enabled: bool = False
    polling_enabled: bool = True
    poll_interval_ms: int = 30_000
    long_poll_timeout_s: int = 25
    dm_policy: str = "pairing"
    allow_from: list[str] = field(default_factory=list)
    instance_name: str = "telegram"
    """The channel instance's name, from the host's ``instance_name`` (``telegram``, or a second account's ``--as``
    name): the name the operator approves pairing codes on."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TelegramConfig:
        """Parse the ``config`` object of the capabilities file; raises ValueError on bad values."""
        username = raw.get("bot_username")
        username = str(username).strip().lstrip("@") if username else None
        policy = str(raw.get("dm_policy") or "pairing").strip().lower()
        if policy not in DM_POLICIES:
            raise ValueError(f"dm_policy must be one of {', '.join(DM_POLICIES)}, not {policy!r}")
        allow = raw.get("allow_from") or []
        if isinstance(allow, str):
            allow = [p for p in re.split(r"[,\s]+", allow) if p]
        if not isinstance(allow, list):
            raise ValueError("allow_from must be a list")
        return cls(
            bot_username=username or None,
            owner_id=_id_text(raw.get("owner_id")),
            respond_to_all_group_messages=_as_bool(raw.get("respond_to_all_group_messages"), False),
            webhook_enabled=_as_bool(raw.get("webhook_enabled"), False),
            polling_enabled=_as_bool(raw.get("polling_enabled"), True),
            poll_interval_ms=_as_int(raw.get("poll_interval_ms"), 30_000, "poll_interval_ms", 0, 0xFFFFFFFF),
            long_poll_timeout_s=_as_int(raw.get("long_poll_timeout_s"), 25, "long_poll_timeout_s", 0, 50),
            dm_policy=policy,
            allow_from=[t for t in (_id_text(a) for a in allow) if t],
            instance_name=_instance_name(raw.get("instance_name")),
        )

    def to_state(self) -> dict[str, Any]:
        """What later callbacks need (they never see the config)."""
        return {
            "bot_username": self.bot_username,
            "owner_id": self.owner_id,
            "respond_to_all_group_messages": self.respond_to_all_group_messages,
            "dm_policy": self.dm_policy,
            "allow_from": list(self.allow_from),
            "long_poll_timeout_s": self.long_poll_timeout_s,
            "instance_name": self.instance_name,
        }

    @classmethod
    def from_state(cls, state: Any) -> TelegramConfig:
        """Lenient read of ``to_state`` output; defaults for anything missing or broken."""
        if not isinstance(state, dict):
            return cls()
        try:
            return cls.from_dict(state)
        except ValueError:
            return cls()


# --------------------------------------------------------------------------- inbound updates


@dataclass
class Inbound:
    """A user message extracted from an Update (before admission)."""

    update_id: int | None
    chat_id: int | str
    chat_type: str
    message_id: int | None
    user_id: str
    username: str | None
    first_name: str | None
    text: str
    thread_id: int | None
    entities: list[dict[str, Any]]
    reply_to_username: str | None
    reply_to_is_bot: bool

    @property
    def is_private(self) -> bool:
        return self.chat_type == "private"

    @property
    def is_group(self) -> bool:
        return self.chat_type in ("group", "supergroup")

    @property
    def display_name(self) -> str | None:
        return self.username or self.first_name


def parse_inbound(update: Any) -> Inbound | None:
    """The message of an Update worth looking at, or None (edits, channel posts, bots, no text...)."""
    if not isinstance(update, dict):
        return None
    msg = update.get("message")
    if not isinstance(msg, dict):
        return None
    sender = msg.get("from")
    chat = msg.get("chat")
    if not isinstance(sender, dict) or not isinstance(chat, dict):
        return None
    if sender.get("is_bot") or sender.get("id") is None or chat.get("id") is None:
        return None
    text = msg.get("text")
    entities = msg.get("entities")
    if not isinstance(text, str):
        text = msg.get("caption")
        entities = msg.get("caption_entities")
    if not isinstance(text, str) or not text.strip():
        return None
    reply = msg.get("reply_to_message")
    reply_from = reply.get("from") if isinstance(reply, dict) else None
    thread = msg.get("message_thread_id")
    update_id = update.get("update_id")
    return Inbound(
        update_id=update_id if isinstance(update_id, int) else None,
        chat_id=chat["id"],
        chat_type=str(chat.get("type") or ""),
        message_id=msg.get("message_id") if isinstance(msg.get("message_id"), int) else None,
        user_id=str(sender["id"]),
        username=sender.get("username") or None,
        first_name=sender.get("first_name") or None,
        text=text,
        thread_id=thread if isinstance(thread, int) else None,
        entities=[e for e in entities if isinstance(e, dict)] if isinstance(entities, list) else [],
        reply_to_username=(reply_from.get("username") or None) if isinstance(reply_from, dict) else None,
        reply_to_is_bot=bool(reply_from.get("is_bot")) if isinstance(reply_from, dict) else False,
    )


def _same_name(a: str | None, b: str | None) -> bool:
    return bool(a and b) and str(a).lstrip("@").lower() == str(b).lstrip("@").lower()


def bot_is_addressed(inbound: Inbound, bot_username: str | None) -> bool:
    """True if a group message mentions the bot, replies to it, or is a /command@bot."""
    if not bot_username:
        return False
    if inbound.reply_to_is_bot and _same_name(inbound.reply_to_username, bot_username):
        return True
    for ent in inbound.entities:
        kind = ent.get("type")
        offset, length = ent.get("offset"), ent.get("length")
        if not isinstance(offset, int) or not isinstance(length, int):
            continue
        piece = utf16_slice(inbound.text, offset, length)
        if kind == "mention" and _same_name(piece, bot_username):
            return True
        if kind == "text_mention":
            user = ent.get("user")
            if isinstance(user, dict) and _same_name(user.get("username"), bot_username):
                return True
        if kind == "bot_command" and "@" in piece and _same_name(piece.split("@", 1)[1], bot_username):
            return True
    # entities missing (e.g. hand-made updates): fall back to the text itself
    return _mention_regex(bot_username).search(inbound.text) is not None or (
        _command_regex(bot_username).match(inbound.text) is not None
    )


def _mention_regex(bot_username: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w@])@" + re.escape(bot_username.lstrip("@")) + r"\b", re.IGNORECASE)


def _command_regex(bot_username: str) -> re.Pattern[str]:
    return re.compile(r"^(\s*/\w+)@" + re.escape(bot_username.lstrip("@")) + r"\b", re.IGNORECASE)


def strip_bot_mention(text: str, bot_username: str | None) -> str:
    """Remove ``@bot`` mentions and the ``@bot`` of a leading ``/command@bot``."""
    if not bot_username:
        return text.strip()
    out = _command_regex(bot_username).sub(r"\1", text)
    out = _mention_regex(bot_username).sub("", out)
    out = re.sub(r"[ \t]{2,}", " ", out)
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = re.sub(r"^[ \t]*[,:]\s*", "", out.strip())  # "@bot, do x" -> "do x"
    return out.strip()


def static_dm_decision(cfg: TelegramConfig, inbound: Inbound) -> str:
    """Admission of a private message without asking the host: "allow", "deny" or "pairing"."""
    if cfg.dm_policy == "open":
        return "allow"
    if cfg.dm_policy == "disabled":
        return "allow" if cfg.owner_id and inbound.user_id == cfg.owner_id else "deny"
    if cfg.owner_id and inbound.user_id == cfg.owner_id:
        return "allow"
    for entry in cfg.allow_from:
        if entry == "*" or entry == inbound.user_id:
            return "allow"
        if entry.startswith("@") and _same_name(entry, inbound.username):
            return "allow"
    return "deny" if cfg.dm_policy == "allowlist" else "pairing"


def to_message(inbound: Inbound, content: str) -> Message:
    metadata: dict[str, Any] = {
        "chat_id": inbound.chat_id,
        "message_id": inbound.message_id,
        "chat_type": inbound.chat_type,
    }
    if inbound.thread_id is not None:
        metadata["thread_id"] = inbound.thread_id
    if inbound.username:
        metadata["username"] = inbound.username
    return Message(
        user_id=inbound.user_id,
        content=content,
        user_name=inbound.display_name,
        thread_id=str(inbound.thread_id) if inbound.thread_id is not None else None,
        metadata=metadata,
    )


_INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""A channel name's shape (the host's ``manifest.base.NAME_RE``)."""


def _instance_name(value: Any) -> str:
    """The host's instance name when it has a channel name's shape, else ``telegram`` (an older host gives none)."""
    return value if isinstance(value, str) and _INSTANCE_NAME.fullmatch(value) else "telegram"


def pairing_text(code: str, instance: str = "telegram") -> str:
    return (
        f"To chat with this bot, ask the operator to approve pairing code {code} "
        f"(airlock pairing approve {instance} {code})"
    )
