"""The fake iLink API against the published request/response samples of Tencent/openclaw-weixin
``docs/protocol.md`` (sections "getUpdates", "sendMessage" and "Message model"): the documented request bodies are
sent verbatim and the answers must have the documented fields and values."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fake_wechat import BOT_TOKEN, FakeWechat

# protocol.md, "base_info" sample.
BASE_INFO = {"channel_version": "2.4.8", "bot_agent": "OpenClaw"}
# protocol.md, "getUpdates" request sample.
GET_UPDATES_SAMPLE = {"get_updates_buf": "", "base_info": BASE_INFO}
# protocol.md, "sendMessage" request sample.
SEND_MESSAGE_SAMPLE = {
    "msg": {"to_user_id": "<target user id>", "context_token": "<conversation context token>",
            "item_list": [{"type": 1, "text_item": {"text": "Hello"}}]},
    "base_info": BASE_INFO,
}
# protocol.md, "Message model": the WeixinMessage fields.
WEIXIN_MESSAGE_FIELDS = {"seq", "message_id", "from_user_id", "to_user_id", "create_time_ms", "message_type",
                         "message_state", "item_list", "context_token"}


def headers(token: str = BOT_TOKEN) -> dict[str, str]:
    # protocol.md, "Request headers".
    return {"Content-Type": "application/json", "AuthorizationType": "ilink_bot_token",
            "Authorization": f"Bearer {token}", "X-WECHAT-UIN": base64.b64encode(b"3456789012").decode()}


@pytest.fixture
async def fake() -> AsyncIterator[FakeWechat]:
    async with FakeWechat(hold_s=0.3) as f:
        yield f


async def post(fake: FakeWechat, op: str, body: Any, token: str = BOT_TOKEN) -> Any:
    async with aiohttp.ClientSession() as s, s.post(f"{fake.base_url}/ilink/bot/{op}", json=body,
                                                    headers=headers(token)) as r:
        assert r.status == 200  # application errors are in ret/errcode
        return await r.json()


async def test_getupdates_sample_answers_the_documented_shape(fake: FakeWechat) -> None:
    idle = await post(fake, "getupdates", GET_UPDATES_SAMPLE)
    # Documented response: {"ret": 0, "msgs": [], "get_updates_buf": "<next cursor>", "longpolling_timeout_ms": 35000}
    assert idle == {"ret": 0, "msgs": [], "get_updates_buf": "", "longpolling_timeout_ms": 35000}
    fake.push_text("你好", from_user="wx_user_peer_1@im.wechat")
    first = await post(fake, "getupdates", GET_UPDATES_SAMPLE)
    assert first["ret"] == 0 and len(first["msgs"]) == 1 and first["get_updates_buf"]
    message = first["msgs"][0]
    assert set(message) == WEIXIN_MESSAGE_FIELDS
    assert (message["message_type"], message["message_state"]) == (1, 2)  # user, finished
    assert message["item_list"] == [{"type": 1, "text_item": {"text": "你好"}}]
    # The next cursor has nothing new; the old one is offered the message again.
    again = await post(fake, "getupdates", {**GET_UPDATES_SAMPLE, "get_updates_buf": first["get_updates_buf"]})
    assert again["msgs"] == []
    assert len((await post(fake, "getupdates", GET_UPDATES_SAMPLE))["msgs"]) == 1


async def test_getupdates_is_held_until_a_message_arrives(fake: FakeWechat) -> None:
    fake.hold_s = 5.0
    poll = asyncio.create_task(post(fake, "getupdates", GET_UPDATES_SAMPLE))
    await asyncio.sleep(0.2)
    assert not poll.done()
    fake.push_text("late", from_user="u@im.wechat")
    assert (await asyncio.wait_for(poll, 2.0))["msgs"][0]["item_list"][0]["text_item"]["text"] == "late"


async def test_sendmessage_sample_is_accepted(fake: FakeWechat) -> None:
    # Documented response: {"ret": 0, "errmsg": ""}
    assert await post(fake, "sendmessage", SEND_MESSAGE_SAMPLE) == {"ret": 0, "errmsg": ""}
    assert fake.sent[0]["text"] == "Hello" and fake.sent[0]["context_token"] == "<conversation context token>"


async def test_getconfig_and_sendtyping_samples(fake: FakeWechat) -> None:
    # protocol.md, "getConfig" request sample -> {"ret": 0, "typing_ticket": "<base64 typing ticket>"}
    config = await post(fake, "getconfig", {"ilink_user_id": "<user id>", "context_token": "<ctx>",
                                            "base_info": BASE_INFO})
    assert set(config) == {"ret", "typing_ticket"} and config["ret"] == 0
    base64.b64decode(config["typing_ticket"], validate=True)
    # protocol.md, "sendTyping" request sample: status 1 typing, 2 cancel.
    for status in (1, 2):
        typing = {"ilink_user_id": "<user id>", "typing_ticket": config["typing_ticket"], "status": status,
                  "base_info": BASE_INFO}
        assert (await post(fake, "sendtyping", typing))["ret"] == 0
    assert fake.typing == [("<user id>", 1), ("<user id>", 2)]
    wrong = {"ilink_user_id": "<user id>", "typing_ticket": "other", "status": 1, "base_info": BASE_INFO}
    assert (await post(fake, "sendtyping", wrong))["ret"] == -1


async def test_bad_token_and_malformed_bodies_are_application_errors(fake: FakeWechat) -> None:
    assert (await post(fake, "getupdates", GET_UPDATES_SAMPLE, token="wrong"))["errcode"] == -14
    assert (await post(fake, "sendmessage", {"msg": {}, "base_info": BASE_INFO}))["ret"] == -1
    assert (await post(fake, "getupdates", {"get_updates_buf": ""}))["ret"] == -1  # no base_info
    assert fake.sent == []
