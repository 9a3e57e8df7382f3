"""The Telegram channel class driven through the SDK dispatch with a fake host."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT / "sdk" / "python", ROOT / "guest-plugins" / "telegram"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from telegram_channel import API, TelegramChannel  # noqa: E402

from airlock_sdk import ChannelConfig, Endpoint, HttpResponse, Poll  # noqa: E402
from airlock_sdk import channel as ch  # noqa: E402
from airlock_sdk.testing import FakeHost, HttpCall  # noqa: E402

T = TelegramChannel
CAPS = ROOT / "guest-plugins" / "telegram" / "telegram.capabilities.json"


@pytest.fixture
def fake() -> Iterator[FakeHost]:
    with FakeHost(secrets={"telegram_bot_token"}) as f:
        yield f


def start(fake: FakeHost, **config: Any) -> ChannelConfig:
    return ch.call_on_start(T, json.dumps(config))


def ok(result: Any = True) -> dict[str, Any]:
    return {"ok": True, "result": result}


def msg_update(uid: int, text: str = "hello", user: int = 42, chat_type: str = "private", **extra: Any) -> Any:
    chat_id = user if chat_type == "private" else -1001
    message = {
        "message_id": uid * 10,
        "date": 0,
        "text": text,
        "chat": {"id": chat_id, "type": chat_type},
        "from": {"id": user, "is_bot": False, "first_name": "Al", "username": f"user{user}"},
    }
    message.update(extra)
    return {"update_id": uid, "message": message}


def api_method(call: HttpCall) -> str:
    return call.url.split("/")[-1].split("?")[0]


# --------------------------------------------------------------------------- capabilities file


def test_capabilities_file_adapted() -> None:
    caps = json.loads(CAPS.read_text())
    assert caps["wit_version"] == "0.1.0" and caps["name"] == "telegram"
    assert caps["capabilities"]["channel"]["durable_workspace_paths"] == ["state/offset"]
    cred = caps["capabilities"]["http"]["credentials"]["telegram_bot"]
    assert cred["location"] == {"type": "url_path", "placeholder": "{TELEGRAM_BOT_TOKEN}"}
    cfg = caps["config"]
    assert cfg["polling_enabled"] is True and cfg["long_poll_timeout_s"] == 25 and cfg["dm_policy"] == "pairing"
    assert "{TELEGRAM_BOT_TOKEN}" in API


# --------------------------------------------------------------------------- on_start


def test_on_start_polling_default(fake: FakeHost) -> None:
    caps_config = json.loads(CAPS.read_text())["config"]
    cfg = start(fake, **caps_config)
    assert cfg == ChannelConfig("Telegram", [], Poll(30_000, True))
    state = json.loads(fake.workspace["state/config"])
    assert state["dm_policy"] == "pairing" and state["allow_from"] == [] and state["bot_username"] is None
    assert fake.http_calls == []


def test_on_start_webhook(fake: FakeHost) -> None:
    cfg = start(fake, webhook_enabled=True, polling_enabled=False, bot_username="@AirBot", owner_id=7)
    assert cfg == ChannelConfig("Telegram", [Endpoint("/webhook/telegram", ["POST"], True)], None)
    state = json.loads(fake.workspace["state/config"])
    assert state["bot_username"] == "AirBot" and state["owner_id"] == "7"


def test_on_start_bad_config_is_err(fake: FakeHost) -> None:
    with pytest.raises(ch.CallbackFailed, match=r"^ValueError: dm_policy must be one of"):
        start(fake, dm_policy="whatever")
    assert "state/config" not in fake.workspace


def test_on_start_warns_without_token() -> None:
    with FakeHost() as fake:
        start(fake)
    assert any("telegram_bot_token" in m for m in fake.logs_at("warn"))


# --------------------------------------------------------------------------- on_poll


def test_poll_emits_and_advances_offset(fake: FakeHost) -> None:
    start(fake, dm_policy="open", long_poll_timeout_s=20)
    fake.queue_http(200, ok([msg_update(5), msg_update(6, "second", user=43)]))
    ch.call_on_poll(T)
    call = fake.http_calls[0]
    assert call.method == "GET"
    assert call.url == "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getUpdates?timeout=20"
    assert call.timeout_ms == 25_000
    assert [(m.user_id, m.content, m.user_name) for m in fake.emitted] == [
        ("42", "hello", "user42"),
        ("43", "second", "user43"),
    ]
    assert fake.emitted[0].metadata == {
        "chat_id": 42,
        "message_id": 50,
        "chat_type": "private",
        "username": "user42",
    }
    assert fake.workspace["state/offset"] == "7"

    fake.queue_http(200, ok([]))
    ch.call_on_poll(T)
    assert fake.http_calls[1].url.endswith("getUpdates?timeout=20&offset=7")
    assert fake.workspace["state/offset"] == "7"
    assert fake.logs_at("error") == []


def test_poll_without_start_uses_defaults(fake: FakeHost) -> None:
    fake.queue_http(200, ok([]))
    ch.call_on_poll(T)
    assert fake.http_calls[0].url.endswith("getUpdates?timeout=25") and fake.http_calls[0].timeout_ms == 30_000


@pytest.mark.parametrize(
    ("status", "body", "hint"),
    [
        (
            409,
            {"ok": False, "description": "Conflict: can't use getUpdates while webhook is active"},
            "webhook",
        ),
        (401, {"ok": False, "description": "Unauthorized"}, "telegram_bot_token"),
        (502, "bad gateway", "HTTP 502"),
    ],
)
def test_poll_api_failures_are_warnings(fake: FakeHost, status: int, body: Any, hint: str) -> None:
    fake.queue_http(status, body)
    ch.call_on_poll(T)
    warns = fake.logs_at("warn")
    assert len(warns) == 1 and hint in warns[0]
    assert "state/offset" not in fake.workspace and fake.logs_at("error") == []


def test_poll_transport_error(fake: FakeHost) -> None:
    fake.queue_http_error("rate limited")
    ch.call_on_poll(T)
    assert fake.logs_at("warn") == ["getUpdates failed: rate limited"]


def test_poll_bad_update_does_not_block_offset(fake: FakeHost) -> None:
    start(fake, dm_policy="pairing")
    fake.fail["pairing_upsert_request"] = "db locked"
    fake.queue_http(200, ok([{"update_id": 9, "message": "garbage"}, msg_update(10)]))
    ch.call_on_poll(T)
    assert fake.workspace["state/offset"] == "11"
    assert fake.emitted == []
    assert any("pairing_upsert failed" in m for m in fake.logs_at("warn"))


# --------------------------------------------------------------------------- DM pairing


def test_unknown_dm_gets_pairing_code_once(fake: FakeHost) -> None:
    start(fake)
    fake.http_handler = lambda call: HttpResponse(200, {}, json.dumps(ok({"message_id": 1})).encode())
    fake.queue_http(200, ok([msg_update(1)]))
    ch.call_on_poll(T)
    assert fake.emitted == []
    assert fake.pairing_meta[("telegram", "42")] == {"username": "user42", "first_name": "Al", "chat_id": 42}
    send = fake.http_calls[1]
    assert api_method(send) == "sendMessage" and send.method == "POST"
    body = send.json()
    code = fake.pairing_requests[("telegram", "42")]
    assert body["chat_id"] == 42
    assert body["text"] == (
        f"To chat with this bot, ask the operator to approve pairing code {code} "
        f"(airlock pairing approve telegram {code})"
    )
    # second message from the same user: the request already exists, nothing is sent again
    fake.queue_http(200, ok([msg_update(2)]))
    ch.call_on_poll(T)
    assert [api_method(c) for c in fake.http_calls] == ["getUpdates", "sendMessage", "getUpdates"]
    assert fake.emitted == []


def test_paired_user_is_admitted(fake: FakeHost) -> None:
    start(fake)
    fake.paired[("telegram", "42")] = "owner-1"
    fake.allow_from["telegram"] = ["43"]
    fake.queue_http(200, ok([msg_update(1), msg_update(2, "hi", user=43)]))
    ch.call_on_poll(T)
    assert [m.user_id for m in fake.emitted] == ["42", "43"]
    assert fake.pairing_requests == {}


def test_owner_and_allowlist_policies(fake: FakeHost) -> None:
    start(fake, dm_policy="allowlist", owner_id=42, allow_from=[44])
    fake.queue_http(200, ok([msg_update(1), msg_update(2, user=43), msg_update(3, user=44)]))
    ch.call_on_poll(T)
    assert [m.user_id for m in fake.emitted] == ["42", "44"]
    assert fake.pairing_requests == {} and len(fake.http_calls) == 1


# --------------------------------------------------------------------------- groups


def test_group_needs_mention(fake: FakeHost) -> None:
    start(fake, bot_username="AirBot")
    updates = [
        msg_update(1, "just chatting", chat_type="supergroup"),
        msg_update(
            2,
            "@AirBot what's the weather?",
            chat_type="supergroup",
            entities=[{"type": "mention", "offset": 0, "length": 7}],
            message_thread_id=77,
        ),
        msg_update(3, "@AirBot", chat_type="group", entities=[{"type": "mention", "offset": 0, "length": 7}]),
        {
            "update_id": 4,
            "channel_post": {"message_id": 1, "chat": {"id": -5, "type": "channel"}, "text": "x"},
        },
    ]
    fake.queue_http(200, ok(updates))
    ch.call_on_poll(T)
    (m,) = fake.emitted
    assert m.content == "what's the weather?" and m.thread_id == "77"
    assert m.metadata == {
        "chat_id": -1001,
        "message_id": 20,
        "chat_type": "supergroup",
        "thread_id": 77,
        "username": "user42",
    }
    assert fake.workspace["state/offset"] == "5"
    assert fake.pairing_requests == {}  # groups never trigger pairing


def test_group_respond_to_all(fake: FakeHost) -> None:
    start(fake, respond_to_all_group_messages=True)
    fake.queue_http(200, ok([msg_update(1, "anyone?", chat_type="group")]))
    ch.call_on_poll(T)
    assert [m.content for m in fake.emitted] == ["anyone?"]


# --------------------------------------------------------------------------- webhook


def webhook(body: bytes, validated: bool = True, path: str = "/webhook/telegram", method: str = "POST") -> Any:
    return ch.call_on_http_request(T, method, path, '{"Content-Type": "application/json"}', "{}", body, validated)


def test_webhook_requires_validated_secret(fake: FakeHost) -> None:
    start(fake, dm_policy="open", webhook_enabled=True)
    status, _, _ = webhook(json.dumps(msg_update(1)).encode(), validated=False)
    assert status == 401 and fake.emitted == []


def test_webhook_emits_and_answers_200(fake: FakeHost) -> None:
    start(fake, dm_policy="open", webhook_enabled=True)
    status, _, body = webhook(json.dumps(msg_update(1)).encode())
    assert status == 200 and json.loads(body) == {"ok": True}
    assert [m.content for m in fake.emitted] == ["hello"]
    assert "state/offset" not in fake.workspace


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"\xff\xfe", b'{"update_id": 3}'])
def test_webhook_malformed_is_200(fake: FakeHost, body: bytes) -> None:
    start(fake, dm_policy="open", webhook_enabled=True)
    status, _, _ = webhook(body)
    assert status == 200 and fake.emitted == [] and fake.logs_at("error") == []


def test_webhook_handler_failure_still_200(fake: FakeHost) -> None:
    start(fake, webhook_enabled=True)
    fake.fail["pairing_resolve_identity"] = "boom"
    fake.fail["pairing_read_allow_from"] = "boom"
    fake.fail["pairing_upsert_request"] = "boom"
    status, _, _ = webhook(json.dumps(msg_update(1)).encode())
    assert status == 200 and fake.emitted == []


def test_webhook_wrong_path_or_method(fake: FakeHost) -> None:
    assert webhook(b"{}", path="/other")[0] == 404
    assert webhook(b"{}", method="GET")[0] == 405


# --------------------------------------------------------------------------- outbound


def respond(content: str, metadata: dict[str, Any], thread_id: str | None = None) -> None:
    ch.call_on_respond(T, "m1", content, thread_id, json.dumps(metadata), [])


def test_respond_replies_in_thread(fake: FakeHost) -> None:
    fake.queue_http(200, ok({"message_id": 2}))
    respond("the answer", {"chat_id": -1001, "message_id": 20, "thread_id": 77, "chat_type": "supergroup"})
    (call,) = fake.http_calls
    assert call.url == "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/sendMessage"
    assert call.headers == {"Content-Type": "application/json"}
    assert call.json() == {
        "chat_id": -1001,
        "text": "the answer",
        "message_thread_id": 77,
        "reply_to_message_id": 20,
        "allow_sending_without_reply": True,
    }


def test_respond_splits_long_content(fake: FakeHost) -> None:
    fake.http_handler = lambda call: HttpResponse(200, {}, json.dumps(ok({"message_id": 3})).encode())
    text = "\n\n".join(f"paragraph {i} " + "x" * 1000 for i in range(10))
    respond(text, {"chat_id": 42, "message_id": 5})
    bodies = [c.json() for c in fake.http_calls]
    assert len(bodies) == 3
    assert all(len(b["text"]) <= 4096 for b in bodies)
    assert "reply_to_message_id" in bodies[0] and all("reply_to_message_id" not in b for b in bodies[1:])


def test_respond_failure_is_err(fake: FakeHost) -> None:
    fake.queue_http(400, {"ok": False, "description": "Bad Request: chat not found"})
    with pytest.raises(ch.CallbackFailed) as info:
        respond("x", {"chat_id": 1})
    assert info.value.message == "TelegramApiError: sendMessage failed: HTTP 400: Bad Request: chat not found"
    fake.queue_http(200, {"ok": False, "description": "weird"})
    with pytest.raises(ch.CallbackFailed, match="weird"):
        respond("x", {"chat_id": 1})
    fake.queue_http_error("not in allow-list")
    with pytest.raises(ch.CallbackFailed, match=r"^HttpError: not in allow-list$"):
        respond("x", {"chat_id": 1})
    with pytest.raises(ch.CallbackFailed, match="no chat_id"):
        respond("x", {})


def test_respond_with_attachment_uses_send_document(fake: FakeHost) -> None:
    fake.http_handler = lambda call: HttpResponse(200, {}, json.dumps(ok({})).encode())
    ch.call_on_respond(T, "m", "see file", None, '{"chat_id": 42}', [("r.txt", "text/plain", b"DATA")])
    send, doc = fake.http_calls
    assert api_method(send) == "sendMessage" and api_method(doc) == "sendDocument"
    assert doc.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert doc.body is not None and b'filename="r.txt"' in doc.body and b"DATA" in doc.body


def test_status_typing(fake: FakeHost) -> None:
    fake.queue_http(200, ok())
    ch.call_on_status(T, "thinking", "", json.dumps({"chat_id": "42", "thread_id": 3}))
    (call,) = fake.http_calls
    assert api_method(call) == "sendChatAction"
    assert call.json() == {"chat_id": 42, "action": "typing", "message_thread_id": 3}
    ch.call_on_status(T, "done", "", json.dumps({"chat_id": 42}))
    ch.call_on_status(T, "thinking", "", "{}")
    assert len(fake.http_calls) == 1
    fake.queue_http(429, {"ok": False, "description": "Too Many Requests"})
    ch.call_on_status(T, "thinking", "", json.dumps({"chat_id": 42}))
    assert fake.logs_at("error") == []


def test_broadcast(fake: FakeHost) -> None:
    fake.queue_http(200, ok())
    ch.call_on_broadcast(T, "42", "m", "news", None, "{}", [])
    assert fake.http_calls[0].json() == {"chat_id": 42, "text": "news"}


def test_shutdown(fake: FakeHost) -> None:
    ch.call_on_shutdown(T)
    assert fake.logs_at("info") == ["telegram channel shutting down"]


def test_delivery_is_recorded(fake: FakeHost) -> None:
    fake.queue_http(200, ok({"message_id": 555}))
    respond("hi", {"chat_id": 42, "message_id": 5})
    record = json.loads(fake.workspace["state/last_reply/42"])
    assert record == {"message_id": "m1", "telegram_message_ids": [555], "at": fake.now}
    # a refused workspace write does not turn a delivered reply into a failure
    fake.fail["workspace_write"] = "quota exceeded"
    fake.queue_http(200, ok({"message_id": 556}))
    respond("again", {"chat_id": 42})
    assert any("quota exceeded" in m for m in fake.logs_at("warn"))


def test_respond_returns_the_last_message_id_and_edits_use_edit_message_text(fake: FakeHost) -> None:
    fake.queue_http(200, ok({"message_id": 41}))
    assert fake.respond(TelegramChannel, "draft", metadata={"chat_id": 7, "message_id": 5}) == "41"
    fake.queue_http(200, ok({"message_id": 41, "text": "final"}))
    fake.edit(TelegramChannel, "41", "final", metadata={"chat_id": 7})
    edit = fake.http_calls[-1]
    assert edit.url == f"{API}/editMessageText"
    assert edit.json() == {"chat_id": 7, "message_id": 41, "text": "final"}
    # an unchanged text is a success; a message that cannot take an edit is a permanent error
    fake.queue_http(400, {"ok": False, "description": "Bad Request: message is not modified: specified new "
                                                      "message content and reply markup are exactly the same"})
    fake.edit(TelegramChannel, "41", "final", metadata={"chat_id": 7})
    fake.queue_http(400, {"ok": False, "description": "Bad Request: message to edit not found"})
    with pytest.raises(ch.CallbackFailed) as info:
        fake.edit(TelegramChannel, "41", "again", metadata={"chat_id": 7})
    assert info.value.send_class == "permanent"
    fake.queue_http(500, {"ok": False, "description": "Internal Server Error"})
    with pytest.raises(ch.CallbackFailed) as info:
        fake.edit(TelegramChannel, "41", "again", metadata={"chat_id": 7})
    assert info.value.send_class == "unclassified", "the host reads the 500 itself"
    with pytest.raises(ch.CallbackFailed) as info:
        fake.edit(TelegramChannel, "not-a-number", "x", metadata={"chat_id": 7})
    assert info.value.send_class == "permanent"
