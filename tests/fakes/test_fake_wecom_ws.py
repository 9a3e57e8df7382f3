"""The fake WeCom AI-bot long connection against the frame shapes WeCom publishes: the doc "智能机器人长连接"
(https://developer.work.weixin.qq.com/document/path/101463) and its official SDK WecomTeam/aibot-node-sdk
(``src/types/api.ts``: ``WsFrame``, ``StreamReplyBody``, ``SendMarkdownMsgBody``; ``src/types/message.ts``:
``BaseMessage``, ``TextMessage``). A client that speaks those frames subscribes, receives a message callback and
gets its replies acknowledged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fake_wecom_ws import FakeWecomWs

# aibot-node-sdk types/message.ts, BaseMessage: required and optional fields of a message callback body.
MESSAGE_REQUIRED = {"msgid", "aibotid", "chattype", "from", "msgtype"}
MESSAGE_OPTIONAL = {"chatid", "create_time", "response_url", "quote", "text", "image", "mixed", "voice", "file"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeWecomWs]:
    async with FakeWecomWs() as f:
        yield f


async def frame(ws: aiohttp.ClientWebSocketResponse) -> Any:
    return json.loads((await asyncio.wait_for(ws.receive(), 5)).data)


async def test_documented_frames_round_trip(fake: FakeWecomWs) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(fake.base_url) as ws:
        # WsFrame "认证发送": {cmd: "aibot_subscribe", headers: {req_id}, body: {secret, bot_id}}
        await ws.send_json({"cmd": "aibot_subscribe", "headers": {"req_id": "sub-1"},
                            "body": {"bot_id": fake.bot_id, "secret": fake.secret}})
        # "认证/心跳响应": {headers: {req_id}, errcode: 0, errmsg: "ok"}
        assert await frame(ws) == {"headers": {"req_id": "sub-1"}, "errcode": 0, "errmsg": "ok"}
        await ws.send_json({"cmd": "ping", "headers": {"req_id": "ping-1"}})
        assert await frame(ws) == {"headers": {"req_id": "ping-1"}, "errcode": 0, "errmsg": "ok"}
        for chat in (None, "wrkGroupChat01"):
            req_id = await fake.push_text("hello", userid="zhangsan", chatid=chat)
            callback = await frame(ws)
            assert callback["cmd"] == "aibot_msg_callback" and callback["headers"] == {"req_id": req_id}
            body = callback["body"]
            assert MESSAGE_REQUIRED <= set(body) <= MESSAGE_REQUIRED | MESSAGE_OPTIONAL
            assert body["from"] == {"userid": "zhangsan"} and body["text"] == {"content": "hello"}
            assert body["chattype"] == ("group" if chat else "single") and body.get("chatid") == chat
            # StreamReplyBody: {msgtype: "stream", stream: {id, finish, content}}
            reply = {"cmd": "aibot_respond_msg", "headers": {"req_id": req_id},
                     "body": {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": "hi"}}}
            await ws.send_json(reply)
            assert (await frame(ws))["errcode"] == 0
        # SendMarkdownMsgBody over aibot_send_msg.
        push = {"cmd": "aibot_send_msg", "headers": {"req_id": "send-1"},
                "body": {"chatid": "zhangsan", "msgtype": "markdown", "markdown": {"content": "news"}}}
        await ws.send_json(push)
        assert await frame(ws) == {"headers": {"req_id": "send-1"}, "errcode": 0, "errmsg": "ok"}
    assert [c["cmd"] for c in fake.commands] == ["aibot_respond_msg", "aibot_respond_msg", "aibot_send_msg"]


async def test_wrong_secret_is_refused(fake: FakeWecomWs) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(fake.base_url) as ws:
        await ws.send_json({"cmd": "aibot_subscribe", "headers": {"req_id": "sub-1"},
                            "body": {"bot_id": fake.bot_id, "secret": "wrong"}})
        answer = await frame(ws)
        assert answer["errcode"] != 0 and answer["headers"] == {"req_id": "sub-1"}
    assert fake.refused == 1
