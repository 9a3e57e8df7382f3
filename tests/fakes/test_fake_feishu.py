"""The fake Feishu Open Platform, checked by Feishu's own Python SDK (lark-oapi): its client fetches a tenant
token from the fake and sends/replies to messages through it, and its event dispatcher decrypts, verifies and
parses the callbacks our builders make (so the builders follow the documented algorithm, not our code)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import lark_oapi as lark
import pytest
from fake_feishu import (
    APP_SECRET,
    BOT_OPEN_ID,
    FakeFeishu,
    bot_mention,
    encrypt_body,
    message_event,
    signed_headers,
    url_verification,
)
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    P2ImMessageReceiveV1,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)
from lark_oapi.core.exception import ObtainAccessTokenException
from lark_oapi.core.model import RawRequest

ENCRYPT_KEY = "kudryavtsev-encrypt-key-0001"
VERIFY_TOKEN = "v-token-abcdef0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    # lark-oapi caches tenant tokens process-wide by app id: a fresh id per test keeps tests apart.
    async with FakeFeishu(app_id=f"cli_{secrets.token_hex(8)}") as f:
        yield f


def lark_client(fake: FakeFeishu, app_secret: str | None = None) -> lark.Client:
    return (lark.Client.builder().app_id(fake.app_id).app_secret(app_secret or fake.app_secret)
            .domain(fake.base_url).log_level(lark.LogLevel.ERROR).build())


def reply_request(message_id: str, text: str) -> ReplyMessageRequest:
    body = ReplyMessageRequestBody.builder().content(json.dumps({"text": text})).msg_type("text").build()
    return ReplyMessageRequest.builder().message_id(message_id).request_body(body).build()


async def test_lark_client_gets_a_token_and_replies(fake: FakeFeishu) -> None:
    client = lark_client(fake)
    resp = await asyncio.to_thread(client.im.v1.message.reply, reply_request("om_parent1", "hello"))
    assert resp.success(), (resp.code, resp.msg)
    assert resp.data.parent_id == "om_parent1" and resp.data.sender.sender_type == "app"
    assert fake.token_requests == [{"app_id": fake.app_id, "app_secret": APP_SECRET}]
    assert fake.replies[0]["message_id"] == "om_parent1" and fake.replies[0]["text"] == "hello"
    assert fake.calls[-1].authorization == f"Bearer {fake.tokens_issued[0]}"
    # The SDK caches the token: a second call reuses it.
    resp = await asyncio.to_thread(client.im.v1.message.reply, reply_request("om_parent2", "again"))
    assert resp.success() and len(fake.token_requests) == 1


async def test_lark_client_creates_a_message(fake: FakeFeishu) -> None:
    body = (CreateMessageRequestBody.builder().receive_id("ou_someone").msg_type("text")
            .content(json.dumps({"text": "code 1234"})).build())
    req = CreateMessageRequest.builder().receive_id_type("open_id").request_body(body).build()
    resp = await asyncio.to_thread(lark_client(fake).im.v1.message.create, req)
    assert resp.success(), (resp.code, resp.msg)
    assert fake.sent[0]["receive_id"] == "ou_someone" and fake.sent[0]["text"] == "code 1234"


async def test_wrong_secret_and_bad_bearers_refused(fake: FakeFeishu) -> None:
    with pytest.raises(ObtainAccessTokenException, match="10014"):
        await asyncio.to_thread(lark_client(fake, "wrong").im.v1.message.reply, reply_request("om_1", "x"))
    assert fake.calls[-1].code == 10014
    assert fake.replies == []
    url = f"{fake.base_url}/open-apis/im/v1/messages/om_1/reply"
    body = {"msg_type": "text", "content": json.dumps({"text": "x"})}
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body) as r:
            assert (r.status, (await r.json())["code"]) == (400, 99991661)
        async with s.post(url, json=body, headers={"Authorization": "Bearer t-forged"}) as r:
            assert (await r.json())["code"] == 99991663
        async with s.post(f"{fake.base_url}/open-apis/auth/v3/tenant_access_token/internal",
                          json={"app_id": fake.app_id, "app_secret": fake.app_secret}) as r:
            token = (await r.json())["tenant_access_token"]
        fake.expire_tokens()
        async with s.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
            assert (await r.json())["code"] == 99991677
        fake.token_ttl_s = 3600
        async with s.post(f"{fake.base_url}/open-apis/auth/v3/tenant_access_token/internal",
                          json={"app_id": fake.app_id, "app_secret": fake.app_secret}) as r:
            fresh = await r.json()
        assert fresh["expire"] == 3600
        big = {"msg_type": "text", "content": json.dumps({"text": "x" * 160_000})}
        async with s.post(url, json=big, headers={"Authorization": f"Bearer {fresh['tenant_access_token']}"}) as r:
            assert (await r.json())["code"] == 230025
        async with s.get(f"{fake.base_url}/open-apis/bot/v3/info",
                         headers={"Authorization": f"Bearer {fresh['tenant_access_token']}"}) as r:
            assert (await r.json())["bot"]["open_id"] == BOT_OPEN_ID
    assert fake.replies == []


def dispatch(body: bytes, headers: dict[str, str], seen: list[Any]) -> Any:
    handler = (lark.EventDispatcherHandler.builder(ENCRYPT_KEY, VERIFY_TOKEN)
               .register_p2_im_message_receive_v1(seen.append).build())
    req = RawRequest()
    req.uri, req.headers, req.body = "/webhook/feishu", headers, body
    return handler.do(req)


def test_encrypted_signed_message_event_accepted_by_lark_dispatcher() -> None:
    event = message_event("@_user_1 hi there", token=VERIFY_TOKEN, chat_type="group", mentions=[bot_mention()])
    body = json.dumps(encrypt_body(event, ENCRYPT_KEY)).encode()
    seen: list[P2ImMessageReceiveV1] = []
    resp = dispatch(body, signed_headers(body, ENCRYPT_KEY), seen)
    assert resp.status_code == 200, resp.content
    msg = seen[0].event.message
    assert json.loads(msg.content) == {"text": "@_user_1 hi there"}
    assert msg.chat_type == "group" and msg.mentions[0].id.open_id == BOT_OPEN_ID
    # One flipped signature character is refused by the SDK.
    headers = signed_headers(body, ENCRYPT_KEY)
    headers["X-Lark-Signature"] = ("0" if headers["X-Lark-Signature"][0] != "0" else "1") + headers[
        "X-Lark-Signature"][1:]
    assert dispatch(body, headers, []).status_code == 500


def test_encrypted_url_verification_decrypts_to_the_challenge() -> None:
    plain = url_verification(VERIFY_TOKEN, "chal-123")
    body = json.dumps(encrypt_body(plain, ENCRYPT_KEY)).encode()
    resp = dispatch(body, signed_headers(body, ENCRYPT_KEY, timestamp=int(time.time())), [])
    assert json.loads(resp.content) == {"challenge": "chal-123"}
    assert encrypt_body(plain, ENCRYPT_KEY) != encrypt_body(plain, ENCRYPT_KEY)  # a random IV each time
