"""Pure logic of the Telegram channel (config, update parsing, admission, splitting)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT / "sdk" / "python", ROOT / "guest-plugins" / "telegram"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from telegram_logic import (  # noqa: E402
    MAX_MESSAGE_UTF16,
    TelegramConfig,
    bot_is_addressed,
    pairing_text,
    parse_inbound,
    split_message,
    static_dm_decision,
    strip_bot_mention,
    to_message,
    utf16_len,
)


def update(
    text: str | None = "hello",
    chat_type: str = "private",
    user_id: int = 42,
    username: str | None = "al",
    entities: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": 7,
        "date": 0,
        "chat": {"id": 42 if chat_type == "private" else -100123, "type": chat_type},
        "from": {
            "id": user_id,
            "is_bot": False,
            "first_name": "Al",
            **({"username": username} if username else {}),
        },
    }
    if text is not None:
        msg["text"] = text
    if entities is not None:
        msg["entities"] = entities
    msg.update(extra)
    return {"update_id": 100, "message": msg}


# --------------------------------------------------------------------------- config


def test_config_defaults() -> None:
    cfg = TelegramConfig.from_dict({})
    assert cfg == TelegramConfig()
    assert cfg.polling_enabled and not cfg.webhook_enabled
    assert cfg.dm_policy == "pairing" and cfg.long_poll_timeout_s == 25 and cfg.poll_interval_ms == 30_000


def test_config_parsing() -> None:
    cfg = TelegramConfig.from_dict(
        {
            "bot_username": "@MyBot",
            "owner_id": 12345,
            "respond_to_all_group_messages": "true",
            "webhook_enabled": True,
            "polling_enabled": False,
            "poll_interval_ms": "60000",
            "long_poll_timeout_s": 10,
            "dm_policy": "Allowlist",
            "allow_from": [1, "@bob", ""],
        }
    )
    assert cfg == TelegramConfig(
        bot_username="MyBot",
        owner_id="12345",
        respond_to_all_group_messages=True,
        webhook_enabled=True,
        polling_enabled=False,
        poll_interval_ms=60_000,
        long_poll_timeout_s=10,
        dm_policy="allowlist",
        allow_from=["1", "@bob"],
    )
    assert TelegramConfig.from_dict({"allow_from": "1, 2 3"}).allow_from == ["1", "2", "3"]
    # null values from the capabilities file mean "default"
    assert TelegramConfig.from_dict({"bot_username": None, "owner_id": None}) == TelegramConfig()


@pytest.mark.parametrize(
    "raw",
    [
        {"dm_policy": "everyone"},
        {"long_poll_timeout_s": 90},
        {"poll_interval_ms": "soon"},
        {"polling_enabled": "maybe"},
        {"allow_from": 5},
    ],
)
def test_config_rejects_bad_values(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TelegramConfig.from_dict(raw)


def test_config_state_round_trip() -> None:
    cfg = TelegramConfig.from_dict({"bot_username": "b", "owner_id": 1, "dm_policy": "open", "allow_from": [2]})
    again = TelegramConfig.from_state(cfg.to_state())
    assert (again.bot_username, again.owner_id, again.dm_policy, again.allow_from) == (
        "b",
        "1",
        "open",
        ["2"],
    )
    assert TelegramConfig.from_state(None) == TelegramConfig()
    assert TelegramConfig.from_state({"dm_policy": "bogus"}) == TelegramConfig()


# --------------------------------------------------------------------------- parsing


def test_parse_private_message() -> None:
    inbound = parse_inbound(update(message_thread_id=5))
    assert inbound is not None
    assert (inbound.user_id, inbound.chat_id, inbound.chat_type, inbound.message_id) == (
        "42",
        42,
        "private",
        7,
    )
    assert inbound.display_name == "al" and inbound.thread_id == 5 and inbound.is_private
    msg = to_message(inbound, "hello")
    assert msg.user_id == "42" and msg.user_name == "al" and msg.thread_id == "5"
    assert msg.metadata == {
        "chat_id": 42,
        "message_id": 7,
        "chat_type": "private",
        "thread_id": 5,
        "username": "al",
    }


def test_parse_falls_back_to_first_name_and_caption() -> None:
    u = update(text=None, username=None, caption="a photo")
    inbound = parse_inbound(u)
    assert inbound is not None and inbound.text == "a photo" and inbound.display_name == "Al"
    msg = to_message(inbound, inbound.text)
    assert msg.thread_id is None and "thread_id" not in msg.metadata and "username" not in msg.metadata


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"update_id": 1},
        {"update_id": 1, "edited_message": update()["message"]},
        {"update_id": 1, "channel_post": {"chat": {"id": 1, "type": "channel"}, "text": "x"}},
        update(text=None),  # sticker etc.
        update(text="   "),
        {"update_id": 1, "message": {"chat": {"id": 1, "type": "private"}, "text": "no sender"}},
    ],
)
def test_parse_ignores(bad: Any) -> None:
    assert parse_inbound(bad) is None


def test_parse_ignores_bots() -> None:
    u = update()
    u["message"]["from"]["is_bot"] = True
    assert parse_inbound(u) is None


# --------------------------------------------------------------------------- mentions


def group(text: str, entities: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    inbound = parse_inbound(update(text=text, chat_type="supergroup", entities=entities, **extra))
    assert inbound is not None and inbound.is_group
    return inbound


def test_mention_entity_with_utf16_offsets() -> None:
    text = "😀 hey @AirBot what's up"  # the emoji is 2 UTF-16 units
    offset = utf16_len("😀 hey ")
    assert offset == len("😀 hey ") + 1
    inbound = group(text, [{"type": "mention", "offset": offset, "length": 7}])
    assert bot_is_addressed(inbound, "airbot")
    other = group("hey @OtherBot", [{"type": "mention", "offset": 4, "length": 9}])
    assert not bot_is_addressed(other, "airbot")


def test_command_and_reply_and_fallback() -> None:
    cmd = group("/ask@AirBot what time", [{"type": "bot_command", "offset": 0, "length": 11}])
    assert bot_is_addressed(cmd, "AirBot")
    assert not bot_is_addressed(group("/ask what", [{"type": "bot_command", "offset": 0, "length": 4}]), "AirBot")
    reply = group("yes please", reply_to_message={"from": {"id": 1, "is_bot": True, "username": "AirBot"}})
    assert bot_is_addressed(reply, "AirBot")
    human_reply = group("yes", reply_to_message={"from": {"id": 2, "is_bot": False, "username": "AirBot"}})
    assert not bot_is_addressed(human_reply, "AirBot")
    assert bot_is_addressed(group("hi @airbot"), "AirBot")  # no entities: text fallback
    assert not bot_is_addressed(group("mail me at x@airbot.com"), "AirBot")
    assert not bot_is_addressed(group("hi @airbot"), None)
    text_mention = group(
        "hi Air",
        [
            {
                "type": "text_mention",
                "offset": 3,
                "length": 3,
                "user": {"id": 9, "is_bot": True, "username": "AirBot"},
            }
        ],
    )
    assert bot_is_addressed(text_mention, "AirBot")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@AirBot what is 2+2?", "what is 2+2?"),
        ("what is @airbot doing", "what is doing"),
        ("@AirBot, summarise", "summarise"),
        ("/ask@AirBot now", "/ask now"),
        ("line one @AirBot\nline two", "line one\nline two"),
        ("@AirBotty hi", "@AirBotty hi"),
    ],
)
def test_strip_mention(text: str, expected: str) -> None:
    assert strip_bot_mention(text, "AirBot") == expected


# --------------------------------------------------------------------------- DM admission


@pytest.mark.parametrize(
    ("policy", "owner", "allow", "user", "username", "expected"),
    [
        ("open", None, [], "1", None, "allow"),
        ("pairing", None, [], "1", None, "pairing"),
        ("pairing", "1", [], "1", None, "allow"),
        ("pairing", None, ["1"], "1", None, "allow"),
        ("pairing", None, ["@Al"], "1", "al", "allow"),
        ("pairing", None, ["*"], "1", None, "allow"),
        ("allowlist", None, ["2"], "1", None, "deny"),
        ("allowlist", "1", [], "1", None, "allow"),
        ("disabled", None, ["1"], "1", None, "deny"),
        ("disabled", "1", [], "1", None, "allow"),
    ],
)
def test_static_dm_decision(
    policy: str, owner: str | None, allow: list[str], user: str, username: str | None, expected: str
) -> None:
    cfg = TelegramConfig(dm_policy=policy, owner_id=owner, allow_from=allow)
    inbound = parse_inbound(update(user_id=int(user), username=username))
    assert inbound is not None
    assert static_dm_decision(cfg, inbound) == expected


def test_pairing_text() -> None:
    text = pairing_text("ABCD2345")
    assert "ABCD2345" in text and "airlock pairing approve telegram ABCD2345" in text
    assert "airlock pairing approve support-bot ABCD2345" in pairing_text("ABCD2345", "support-bot")


def test_the_instance_name_comes_from_the_host_and_is_checked() -> None:
    assert TelegramConfig.from_dict({"instance_name": "support-bot"}).instance_name == "support-bot"
    for bad in (None, "", "Support Bot", "x" * 64, 7, "../etc"):
        assert TelegramConfig.from_dict({"instance_name": bad}).instance_name == "telegram"
    state = TelegramConfig.from_dict({"instance_name": "support-bot"}).to_state()
    assert TelegramConfig.from_state(state).instance_name == "support-bot"


# --------------------------------------------------------------------------- splitting


def assert_chunks_ok(chunks: list[str], limit: int) -> None:
    assert chunks
    for c in chunks:
        assert 0 < utf16_len(c) <= limit, utf16_len(c)
        # every chunk has balanced fences
        fences = [ln for ln in c.split("\n") if re.match(r"^\s{0,3}```", ln)]
        assert len(fences) % 2 == 0, c


def words(text: str) -> list[str]:
    return [w for w in re.split(r"\s+", text) if w and not w.startswith("```")]


def test_short_message_is_one_chunk() -> None:
    assert split_message("hi") == ["hi"]
    assert split_message("") == []
    exact = "x" * MAX_MESSAGE_UTF16
    assert split_message(exact) == [exact]


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    para = "word " * 150  # ~750 chars
    text = "\n\n".join(para.strip() for _ in range(10))
    chunks = split_message(text, limit=1000)
    assert_chunks_ok(chunks, 1000)
    assert all(c == para.strip() for c in chunks)  # cut exactly at paragraph breaks
    lines = "\n".join(f"line {i} " + "y" * 40 for i in range(100))
    chunks = split_message(lines, limit=500)
    assert_chunks_ok(chunks, 500)
    assert all(c.startswith("line ") and c.endswith("y") for c in chunks)
    assert "\n".join(chunks) == lines
    prose = " ".join(f"w{i}" for i in range(2000))
    chunks = split_message(prose, limit=300)
    assert_chunks_ok(chunks, 300)
    assert " ".join(chunks) == prose


def test_split_hard_cut_without_boundaries() -> None:
    text = "z" * 10_000
    chunks = split_message(text)
    assert_chunks_ok(chunks, MAX_MESSAGE_UTF16)
    assert "".join(chunks) == text


def test_split_counts_utf16_units() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units, 3000 code points
    chunks = split_message(text)
    assert len(chunks) == 2
    assert_chunks_ok(chunks, MAX_MESSAGE_UTF16)
    assert "".join(chunks) == text


def test_split_reopens_code_fence_with_language() -> None:
    code = "\n".join(f"    print({i})  # some code line" for i in range(200))
    text = "Intro paragraph.\n\n```python\n" + code + "\n```\n\nOutro paragraph."
    chunks = split_message(text, limit=1000)
    assert len(chunks) > 3
    assert_chunks_ok(chunks, 1000)
    for c in chunks[1:-1]:
        assert c.startswith("```python\n") and c.endswith("\n```")
    assert chunks[0].endswith("\n```") and "```python" in chunks[0]
    assert chunks[-1].endswith("Outro paragraph.")
    # no code line is lost or broken
    body = "\n".join(chunks)
    for i in range(200):
        assert f"    print({i})  # some code line" in body
    assert words(body) == words(text)


def test_split_fence_without_language_and_prose_after() -> None:
    code = "\n".join("x = 1" for _ in range(400))
    text = "```\n" + code + "\n```\n" + " ".join("after" for _ in range(600))
    chunks = split_message(text, limit=700)
    assert_chunks_ok(chunks, 700)
    assert chunks[1].startswith("```\nx = 1")
    assert not chunks[-1].startswith("```")
    assert words("\n".join(chunks)) == words(text)


def test_utf16_helpers_match_the_codec() -> None:
    from telegram_text import _index_at_utf16

    samples = ["", "abc", "é😀x", "😀😀", "a" * 50 + "😀" + "b" * 50, "日本語😀テキスト"]
    for text in samples:
        assert utf16_len(text) == len(text.encode("utf-16-le")) // 2
        for units in range(utf16_len(text) + 2):
            i = _index_at_utf16(text, units)
            assert utf16_len(text[:i]) <= units
            assert i == len(text) or utf16_len(text[: i + 1]) > units
