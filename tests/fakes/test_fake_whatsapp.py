"""The fake WhatsApp Cloud API, driven over plain HTTP (no official Python client exists)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fake_whatsapp import (
    MAX_TEXT_CHARS,
    PHONE_NUMBER_ID,
    FakeWhatsApp,
    media_notification,
    sign,
    status_notification,
    text_notification,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhatsApp]:
    async with FakeWhatsApp() as f:
        yield f


async def post(fake: FakeWhatsApp, body: Any, token: str | None, path: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = fake.base_url + (path or f"/v20.0/{PHONE_NUMBER_ID}/messages")
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


def text(to: str = "15551234567", body: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}, **extra}


async def test_text_message_accepted_and_recorded(fake: FakeWhatsApp) -> None:
    status, data = await post(fake, text(context={"message_id": "wamid.X"}), fake.token)
    assert status == 200 and data["messaging_product"] == "whatsapp"
    wamid = data["messages"][0]["id"]
    sent = await fake.wait_for_sent(1)
    assert sent[0]["id"] == wamid and sent[0]["to"] == "15551234567" and sent[0]["context"]["message_id"] == "wamid.X"
    assert fake.calls[0].authorization == f"Bearer {fake.token}"


@pytest.mark.parametrize(
    ("token", "body", "path", "status", "code"),
    [
        (None, text(), None, 400, 2500),
        ("wrong", text(), None, 401, 190),
        ("GOOD", text(), "/v20.0/999/messages", 400, 100),
        ("GOOD", text(), "/latest/" + PHONE_NUMBER_ID + "/messages", 400, 100),
        ("GOOD", {"to": "1", "type": "text", "text": {"body": "x"}}, None, 400, 100),
        ("GOOD", text(body=""), None, 400, 100),
        ("GOOD", text(body="x" * (MAX_TEXT_CHARS + 1)), None, 400, 100),
        ("GOOD", text(type="image"), None, 400, 100),
        ("GOOD", text(context={"message_id": 5}), None, 400, 100),
    ],
)
async def test_rejections(fake: FakeWhatsApp, token: str | None, body: Any, path: str | None, status: int,
                          code: int) -> None:
    got, data = await post(fake, body, fake.token if token == "GOOD" else token, path)
    assert (got, data["error"]["code"]) == (status, code)
    assert fake.sent == [] and fake.calls[0].status == status


async def test_limit_is_inclusive(fake: FakeWhatsApp) -> None:
    status, _ = await post(fake, text(body="x" * MAX_TEXT_CHARS), fake.token)
    assert status == 200


def test_sign_is_hmac_sha256_hex() -> None:
    # RFC 4231 test case 2 (key "Jefe"): an independent vector for the reference algorithm.
    assert sign("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_notification_shapes() -> None:
    note = text_notification("hello", wa_id="49170", name="Bob", reply_to="wamid.PREV")
    value = note["entry"][0]["changes"][0]["value"]
    assert note["object"] == "whatsapp_business_account"
    assert value["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
    assert value["contacts"][0] == {"profile": {"name": "Bob"}, "wa_id": "49170"}
    msg = value["messages"][0]
    assert (msg["from"], msg["type"], msg["text"]["body"], msg["context"]["id"]) == ("49170", "text", "hello",
                                                                                     "wamid.PREV")
    assert "messages" not in status_notification("wamid.A")["entry"][0]["changes"][0]["value"]
    assert media_notification("sticker")["entry"][0]["changes"][0]["value"]["messages"][0]["type"] == "sticker"
