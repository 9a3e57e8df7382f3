"""Tests for the fake Telegram Bot API server, driven by python-telegram-bot and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import telegram
from aiohttp import web
from fake_telegram import (
    DEFAULT_GROUP_CHAT_ID,
    DEFAULT_TOKEN,
    DEFAULT_USER_ID,
    MAX_MESSAGE_LENGTH,
    SECRET_TOKEN_HEADER,
    FakeTelegram,
)
from telegram.error import BadRequest, Conflict


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(fake.token, base_url=f"{fake.base_url}/bot") as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, url: str, *, json_body: Any = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=json_body, **kwargs) as response:
        return response.status, await response.json()


class Receiver:
    """A tiny webhook endpoint on 127.0.0.1 that records what it gets."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, Any], str | None]] = []
        self.event = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=500)
        self.received.append((await request.json(), request.headers.get(SECRET_TOKEN_HEADER)))
        self.event.set()
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < n:
                self.event.clear()
                await self.event.wait()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    yield rec
    await rec.stop()


# --- python-telegram-bot against the fake ------------------------------------------------


async def test_get_me_and_token_in_path(fake: FakeTelegram, bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert me.is_bot
    assert me.id == 123456
    assert me.username == "airlock_test_bot"
    assert me.can_join_groups is True
    assert ("getMe", f"/bot{DEFAULT_TOKEN}/getMe") in fake.requests


async def test_send_message(fake: FakeTelegram, bot: telegram.Bot) -> None:
    first = await bot.send_message(DEFAULT_USER_ID, "hi")
    second = await bot.send_message(DEFAULT_USER_ID, "<b>there</b>", parse_mode="HTML")
    assert first.text == "hi"
    assert first.chat.id == DEFAULT_USER_ID
    assert first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert first.from_user.username == fake.bot_username
    assert second.message_id == first.message_id + 1
    assert abs(first.date.timestamp() - time.time()) < 5

    sent = await fake.wait_for_sent(2)
    assert [s["text"] for s in sent] == ["hi", "<b>there</b>"]
    assert sent[0]["chat_id"] == DEFAULT_USER_ID
    assert sent[1]["parse_mode"] == "HTML"
    assert sent[0]["message"]["message_id"] == first.message_id
    assert ("sendMessage", f"/bot{DEFAULT_TOKEN}/sendMessage") in fake.requests


async def test_get_updates_parses_pushed_message(fake: FakeTelegram, bot: telegram.Bot) -> None:
    pushed = fake.push_message("hello @airlock_test_bot", chat_type="group", username="bob")
    updates = await bot.get_updates(timeout=1)
    assert len(updates) == 1
    update = updates[0]
    assert update.update_id == pushed["update_id"]
    message = update.message
    assert message is not None
    assert message.text == "hello @airlock_test_bot"
    assert message.chat.id == DEFAULT_GROUP_CHAT_ID
    assert message.chat.type == "group"
    assert message.from_user is not None
    assert message.from_user.username == "bob"
    assert not message.from_user.is_bot
    mentions = message.parse_entities(["mention"])
    assert list(mentions.values()) == ["@airlock_test_bot"]


async def test_offset_confirms_updates(fake: FakeTelegram, bot: telegram.Bot) -> None:
    fake.push_message("one")
    fake.push_message("two")
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["one", "two"]
    # Not confirmed yet: the same updates come back.
    again = await bot.get_updates()
    assert [u.update_id for u in again] == [u.update_id for u in updates]
    # Offset = last + 1 confirms both; they are gone for good.
    assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()
    assert fake.pending_updates() == []
    assert await bot.get_updates() == ()
    fake.push_message("three")
    later = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert [u.message.text for u in later if u.message] == ["three"]


async def test_offset_partial_limit_and_negative(fake: FakeTelegram, bot: telegram.Bot) -> None:
    ids = [fake.push_message(f"m{i}")["update_id"] for i in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert [u.update_id for u in await bot.get_updates(offset=-2)] == ids[3:]
    assert [u["update_id"] for u in fake.pending_updates()] == ids[3:]


async def test_long_poll_returns_soon_after_push(fake: FakeTelegram, bot: telegram.Bot) -> None:
    pushed_at: list[float] = []

    async def push_later() -> None:
        await asyncio.sleep(0.3)
        pushed_at.append(time.monotonic())
        fake.push_message("late")

    start = time.monotonic()
    task = asyncio.create_task(push_later())
    updates = await bot.get_updates(timeout=5)
    done = time.monotonic()
    await task
    assert [u.message.text for u in updates if u.message] == ["late"]
    assert done - pushed_at[0] < 0.3
    assert done - start < 2


async def test_long_poll_times_out_empty(bot: telegram.Bot) -> None:
    start = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - start < 3


async def test_send_chat_action(fake: FakeTelegram, bot: telegram.Bot) -> None:
    assert await bot.send_chat_action(DEFAULT_USER_ID, "typing") is True
    actions = await fake.wait_for_chat_action()
    assert actions[0]["chat_id"] == DEFAULT_USER_ID
    assert actions[0]["action"] == "typing"
    with pytest.raises(BadRequest):
        await bot.send_chat_action(DEFAULT_USER_ID, "dancing")


async def test_webhook_blocks_get_updates(fake: FakeTelegram, bot: telegram.Bot, receiver: Receiver) -> None:
    assert await bot.set_webhook(receiver.url) is True
    info = await bot.get_webhook_info()
    assert info.url == receiver.url
    assert info.pending_update_count == 0
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""
    fake.push_message("after")
    assert len(await bot.get_updates()) == 1


async def test_webhook_delivery_with_secret(
    fake: FakeTelegram, bot: telegram.Bot, receiver: Receiver
) -> None:
    queued = fake.push_message("queued before webhook")
    assert await bot.set_webhook(receiver.url, secret_token="s3cr3t_-X")
    pushed = fake.push_message("hi hook")
    await receiver.wait_for(2)
    assert [body["update_id"] for body, _ in receiver.received] == [queued["update_id"], pushed["update_id"]]
    assert receiver.received[1][0]["message"]["text"] == "hi hook"
    assert all(secret == "s3cr3t_-X" for _, secret in receiver.received)
    # PTB must accept what was delivered.
    update = telegram.Update.de_json(receiver.received[1][0], bot)
    assert update.message is not None and update.message.text == "hi hook"
    await asyncio.sleep(0.05)
    assert fake.pending_updates() == []


async def test_webhook_without_secret_sends_no_header(
    bot: telegram.Bot, receiver: Receiver, fake: FakeTelegram
) -> None:
    await bot.set_webhook(receiver.url)
    fake.push_message("x")
    await receiver.wait_for(1)
    assert receiver.received[0][1] is None


async def test_webhook_retries_then_succeeds(
    fake: FakeTelegram, bot: telegram.Bot, receiver: Receiver
) -> None:
    receiver.failures = 2
    await bot.set_webhook(receiver.url)
    fake.push_message("retry me")
    await receiver.wait_for(1)
    attempts = [d["status"] for d in await fake.wait_for_webhook_deliveries(3)]
    assert attempts == [500, 500, 200]
    info = await bot.get_webhook_info()
    assert info.last_error_message is not None and "500" in info.last_error_message


async def test_webhook_gives_up_after_bounded_attempts(
    fake: FakeTelegram, bot: telegram.Bot, receiver: Receiver
) -> None:
    receiver.failures = 100
    fake.webhook_max_attempts = 2
    fake.webhook_retry_delay = 0.01
    await bot.set_webhook(receiver.url)
    fake.push_message("doomed")
    fake.push_message("also doomed")
    deliveries = await fake.wait_for_webhook_deliveries(4)
    assert [(d["attempt"], d["status"]) for d in deliveries] == [(1, 500), (2, 500), (1, 500), (2, 500)]
    await asyncio.sleep(0.05)
    assert len(fake.webhook_deliveries) == 4
    assert fake.pending_updates() == []
    assert fake.pending_updates() == []


async def test_webhook_rejects_bad_secret_and_remote_host(bot: telegram.Bot, receiver: Receiver) -> None:
    with pytest.raises(BadRequest, match="unallowed characters"):
        await bot.set_webhook(receiver.url, secret_token="no:colons")
    with pytest.raises(BadRequest, match=r"(?i)bad webhook"):
        await bot.set_webhook("https://example.com/hook")


async def test_newer_poll_terminates_older(
    bot: telegram.Bot, fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    older = asyncio.create_task(call(http, f"{fake.api_url}/getUpdates", json_body={"timeout": 5}))
    await asyncio.sleep(0.1)
    assert await bot.get_updates() == ()
    status, body = await asyncio.wait_for(older, 2)
    assert status == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")


async def test_stop_ends_long_poll(http: aiohttp.ClientSession) -> None:
    server = FakeTelegram()
    await server.start()
    poll = asyncio.create_task(call(http, f"{server.api_url}/getUpdates", json_body={"timeout": 30}))
    await asyncio.sleep(0.1)
    start = time.monotonic()
    await server.stop()
    status, body = await asyncio.wait_for(poll, 2)
    assert (status, body) == (200, {"ok": True, "result": []})
    assert time.monotonic() - start < 2


# --- raw wire format ------------------------------------------------------------------------


async def test_wrong_token_and_unknown_method(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, f"{fake.base_url}/bot654321:WRONG/getMe")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    status, body = await call(http, f"{fake.api_url}/frobnicate")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert ("getMe", "/bot654321:WRONG/getMe") in fake.requests


async def test_get_and_query_string_and_case_insensitive(
    fake: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{fake.api_url}/GETME") as response:
        body = await response.json()
    assert body["ok"] is True and body["result"]["username"] == fake.bot_username
    async with http.get(f"{fake.api_url}/sendMessage", params={"chat_id": "42", "text": "q"}) as response:
        body = await response.json()
    assert body["result"]["chat"]["id"] == 42
    assert body["result"]["text"] == "q"


async def test_form_encoded_params(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    original = fake.push_message("question")["message"]
    form = {
        "chat_id": str(DEFAULT_USER_ID),
        "text": "answer",
        "reply_parameters": json.dumps({"message_id": original["message_id"]}),
        "disable_notification": "true",
    }
    async with http.post(f"{fake.api_url}/sendMessage", data=form) as response:
        body = await response.json()
    assert body["ok"] is True, body
    message = body["result"]
    assert message["reply_to_message"]["text"] == "question"
    assert message["message_id"] == original["message_id"] + 1
    record = fake.sent_messages[0]
    assert record["chat_id"] == DEFAULT_USER_ID
    assert record["reply_parameters"] == {"message_id": original["message_id"]}
    assert record["disable_notification"] is True


async def test_send_message_validation(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    url = f"{fake.api_url}/sendMessage"
    cases = [
        ({"chat_id": 1, "text": ""}, "Bad Request: message text is empty"),
        ({"chat_id": 1, "text": "   "}, "Bad Request: message text is empty"),
        ({"chat_id": 1}, "Bad Request: message text is empty"),
        ({"chat_id": 1, "text": "x" * (MAX_MESSAGE_LENGTH + 1)}, "Bad Request: message is too long"),
        ({"text": "x"}, "Bad Request: chat_id is empty"),
        ({"chat_id": "@nobody", "text": "x"}, "Bad Request: chat not found"),
        ({"chat_id": 1, "text": "x", "parse_mode": "bbcode"}, "Bad Request: unsupported parse_mode"),
        (
            {"chat_id": 1, "text": "x", "reply_to_message_id": 999},
            "Bad Request: message to be replied not found",
        ),
    ]
    for params, description in cases:
        status, body = await call(http, url, json_body=params)
        assert (status, body) == (400, {"ok": False, "error_code": 400, "description": description}), params
    status, body = await call(http, url, json_body={"chat_id": 1, "text": "x" * MAX_MESSAGE_LENGTH})
    assert status == 200
    status, body = await call(
        http,
        url,
        json_body={
            "chat_id": 1,
            "text": "x",
            "reply_parameters": {"message_id": 999, "allow_sending_without_reply": True},
        },
    )
    assert status == 200 and "reply_to_message" not in body["result"]
    assert len(fake.sent_messages) == 2


async def test_send_message_in_thread_with_ptb(fake: FakeTelegram, bot: telegram.Bot) -> None:
    update = fake.push_message("topic msg", chat_type="supergroup", message_thread_id=7)
    incoming = update["message"]
    reply = await bot.send_message(
        incoming["chat"]["id"],
        "in topic",
        message_thread_id=7,
        reply_parameters=telegram.ReplyParameters(incoming["message_id"]),
    )
    assert reply.message_thread_id == 7
    assert reply.chat.type == "supergroup"
    assert reply.reply_to_message is not None and reply.reply_to_message.text == "topic msg"
    assert fake.sent_messages[0]["message_thread_id"] == 7


async def test_entities_use_utf16_offsets(fake: FakeTelegram) -> None:
    message = fake.push_message("😀 hi @airlock_test_bot and @someone_else, @ab")["message"]
    assert message["entities"] == [
        {"offset": 6, "length": 17, "type": "mention"},
        {"offset": 28, "length": 13, "type": "mention"},
    ]
    command = fake.push_message("/start@airlock_test_bot now")["message"]
    assert command["entities"] == [{"offset": 0, "length": 23, "type": "bot_command"}]
    plain = fake.push_message("no entities here")["message"]
    assert "entities" not in plain
    explicit = fake.push_message("@airlock_test_bot", entities=[])["message"]
    assert "entities" not in explicit


async def test_push_message_rules(fake: FakeTelegram) -> None:
    with pytest.raises(ValueError):
        fake.push_message("x", chat_type="private", chat_id=5, user_id=6)
    with pytest.raises(ValueError):
        fake.push_message("x", chat_type="group", chat_id=5)
    with pytest.raises(ValueError):
        fake.push_message("x", reply_to=12345)
    first = fake.push_message("x")["message"]
    second = fake.push_message("y", reply_to=first["message_id"])["message"]
    assert second["reply_to_message"]["message_id"] == first["message_id"]
    assert "reply_to_message" not in second["reply_to_message"]


async def test_push_update_raw_and_allowed_updates(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    raw = fake.push_update({"message": {"message_id": 1}})  # malformed on purpose
    status, body = await call(http, f"{fake.api_url}/getUpdates")
    assert status == 200 and body["result"] == [raw]
    # allowed_updates is remembered and filters updates created afterwards.
    await call(
        http,
        f"{fake.api_url}/getUpdates",
        json_body={"offset": raw["update_id"] + 1, "allowed_updates": ["callback_query"]},
    )
    fake.push_message("filtered out")
    fake.push_update({"callback_query": {"id": "1"}})
    status, body = await call(http, f"{fake.api_url}/getUpdates")
    assert [list(u) for u in body["result"]] == [["update_id", "callback_query"]]
    with pytest.raises(ValueError):
        fake.push_update({"update_id": "nope"})


async def test_control_http_api(fake: FakeTelegram, http: aiohttp.ClientSession) -> None:
    status, body = await call(
        http, f"{fake.base_url}/_control/message", json_body={"text": "via http", "chat_type": "supergroup"}
    )
    assert status == 200 and body["result"]["message"]["chat"]["type"] == "supergroup"
    status, body = await call(http, f"{fake.base_url}/_control/update", json_body={"edited_message": {}})
    assert status == 200 and "update_id" in body["result"]
    status, body = await call(http, f"{fake.base_url}/_control/message", json_body={"text": "x", "bogus": 1})
    assert status == 400
    assert len(fake.pending_updates()) == 2

    await call(http, f"{fake.api_url}/sendMessage", json_body={"chat_id": 7, "text": "out"})
    async with http.get(f"{fake.base_url}/_control/sent") as response:
        sent = (await response.json())["result"]
    assert [s["text"] for s in sent] == ["out"]
    assert fake.requests == [("sendMessage", f"/bot{DEFAULT_TOKEN}/sendMessage")]


async def test_wait_for_sent_times_out(fake: FakeTelegram) -> None:
    with pytest.raises(TimeoutError):
        await fake.wait_for_sent(1, timeout=0.1)


async def test_edit_message_text_with_python_telegram_bot(fake: FakeTelegram, bot: telegram.Bot) -> None:
    # python-telegram-bot drops "Bad Request: " and capitalizes the description: matches are case-insensitive
    sent = await bot.send_message(DEFAULT_USER_ID, "draft")
    edited = await bot.edit_message_text("final words", chat_id=DEFAULT_USER_ID, message_id=sent.message_id)
    assert isinstance(edited, telegram.Message)
    assert (edited.message_id, edited.text) == (sent.message_id, "final words") and edited.edit_date is not None
    assert fake.edited_messages == [{"chat_id": DEFAULT_USER_ID, "message_id": sent.message_id,
                                     "text": "final words"}]
    assert [(m, t) for m, _at, _id, t in fake.timeline] == [("sendMessage", "draft"),
                                                          ("editMessageText", "final words")]
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("final words", chat_id=DEFAULT_USER_ID, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=DEFAULT_USER_ID, message_id=sent.message_id + 100)
    pushed = fake.push_message("from a user", chat_id=DEFAULT_USER_ID)
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", chat_id=DEFAULT_USER_ID, message_id=pushed["message"]["message_id"])
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.edit_message_text("x" * (MAX_MESSAGE_LENGTH + 1), chat_id=DEFAULT_USER_ID,
                                    message_id=sent.message_id)


async def test_send_document_and_photo_keep_the_bytes(fake: FakeTelegram, bot: telegram.Bot) -> None:
    """python-telegram-bot's own multipart uploads (sendDocument, sendPhoto) parse into its Message types, and the
    fake keeps the exact bytes; the Bot API's error texts for a missing or empty file and a long caption."""
    data = bytes(range(256)) * 20
    doc = await bot.send_document(chat_id=42, document=data, filename="r.bin", caption="report")
    assert doc.document is not None and doc.document.file_name == "r.bin" and doc.document.file_size == len(data)
    assert doc.caption == "report"
    photo = await bot.send_photo(chat_id=42, photo=b"\x89PNG\r\n\x1a\n" + data, filename="p.png")
    assert photo.photo and photo.photo[-1].file_size == len(data) + 8
    first, second = await fake.wait_for_files(2)
    assert (first["method"], first["filename"], first["data"], first["chat_id"]) == (
        "sendDocument", "r.bin", data, 42)
    assert (second["method"], second["data"]) == ("sendPhoto", b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(BadRequest, match=r"(?i)file must be non-empty"):
        await bot.send_document(chat_id=42, document=b"", filename="e.txt")
    with pytest.raises(BadRequest, match=r"(?i)there is no document in the request"):
        await bot.send_document(chat_id=42, document="not-a-known-file-id")
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_document(chat_id=42, document=b"x", filename="x.txt", caption="c" * 1025)
