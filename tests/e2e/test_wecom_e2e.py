"""End to end: the real WeCom component (Rust) in the real host, against two fakes on 127.0.0.1: the AI bot's
long connection (tests/fakes/fake_wecom_ws.py; the host subscribes and pings, the guest sees the frames) and the
server API of a self-built app (tests/fakes/fake_wecom.py: gettoken, message/send). App callbacks are encrypted
and signed by the fake's builders (checked against WeCom's official test vector in
tests/inbound/test_verify_wecom.py); the host verifies and decrypts them before the guest runs. The guest never
holds a stored secret: the host subscribes with the bot's, and adds the Corp ID and secret to gettoken."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest
from channel_e2e import assert_no_message, next_message, record_guest_http, running_host, spy_guest
from conftest import BUILT_CHANNELS, InstallFn
from fake_wecom import AGENT_ID, FakeWecom, callback_body, callback_query, encrypt_message, text_message_xml
from fake_wecom_ws import FakeWecomWs

from airlock.host import AirlockHost

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "wecom.wasm"
CAPS = BUILT_CHANNELS / "wecom.capabilities.json"
TOKEN = "Airlock-Callback-Token-0001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
USER = "zhangsan"


@pytest.fixture
async def bot() -> AsyncIterator[FakeWecomWs]:
    async with FakeWecomWs() as fake:
        yield fake


@pytest.fixture
async def api() -> AsyncIterator[FakeWecom]:
    async with FakeWecom() as fake:
        yield fake


def host_for(home: Path, bot: FakeWecomWs, api: FakeWecom) -> AbstractAsyncContextManager[AirlockHost]:
    secrets = {"wecom_bot_id": bot.bot_id, "wecom_bot_secret": bot.secret, "wecom_corp_id": api.corp_id,
               "wecom_corp_secret": api.corp_secret, "wecom_callback_token": TOKEN, "wecom_callback_aes_key": AES_KEY}
    upstream = {"openws.work.weixin.qq.com": bot.base_url, "qyapi.weixin.qq.com": api.base_url}
    return running_host(home, "wecom", secrets, upstream)


async def call(host: AirlockHost, method: str, query: dict[str, str], body: bytes = b"") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, f"{host.base_url}/webhook/wecom", params=query,
                                                       data=body) as r:
        return r.status, await r.text()


async def post_text(host: AirlockHost, text: str, msg_id: int, *, corp_id: str, token: str = TOKEN,
                    key: str = AES_KEY, timestamp: int | None = None) -> tuple[int, str]:
    encrypted = encrypt_message(key, text_message_xml(text, from_user=USER, msg_id=msg_id, to_user=corp_id), corp_id)
    return await call(host, "POST", callback_query(token, encrypted, timestamp=timestamp), callback_body(encrypted))


# ---- the AI bot's long connection -------------------------------------------------------------------------------


async def test_bot_dm_round_trip_over_the_host_socket(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, api: FakeWecom) -> None:
    install_channel(WASM, CAPS, dm_policy="open", welcome_text="欢迎 / welcome")
    async with host_for(airlock_home, bot, api) as host:
        await bot.wait_for(lambda: len(bot.connections) == 1, "subscribe")
        assert bot.connections[0] == {"bot_id": bot.bot_id, "secret": bot.secret}
        event_id = await bot.push_event("enter_chat", userid=USER)
        await bot.wait_for(lambda: len(bot.commands) == 1, "the welcome")
        welcome = bot.commands.pop()
        assert (welcome["cmd"], welcome["headers"]["req_id"]) == ("aibot_respond_welcome_msg", event_id)
        assert welcome["body"] == {"msgtype": "text", "text": {"content": "欢迎 / welcome"}}
        req_id = await bot.push_text("hello wecom", userid=USER)
        msg = await next_message(host)
        assert (msg.channel, msg.user_id, msg.content) == ("wecom", USER, "hello wecom")
        assert msg.metadata["req_id"] == req_id and msg.metadata["mode"] == "bot"
        out = await host.respond(msg, "hi zhangsan")
        assert out.ok, out.error
        await bot.wait_for(lambda: len(bot.commands) == 1, "the reply")
        reply = bot.commands[0]
        assert reply["cmd"] == "aibot_respond_msg" and reply["headers"]["req_id"] == req_id
        assert reply["body"]["msgtype"] == "stream" and reply["body"]["stream"]["finish"] is True
        assert reply["body"]["stream"]["content"] == "hi zhangsan"
        assert api.token_requests == []  # bot replies need no app token


async def test_bot_pairing_code_then_approval(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, api: FakeWecom) -> None:
    install_channel(WASM, CAPS, dm_policy="pairing")
    async with host_for(airlock_home, bot, api) as host:
        await bot.wait_for(lambda: len(bot.connections) == 1, "subscribe")
        req_id = await bot.push_text("let me in", userid=USER)
        await bot.wait_for(lambda: len(bot.commands) == 1, "the pairing code")
        pending = host.pairing.pending("wecom")
        assert len(pending) == 1 and bot.commands[0]["headers"]["req_id"] == req_id
        assert pending[0].code in bot.commands[0]["body"]["stream"]["content"]
        await assert_no_message(host)
        host.pairing.approve("wecom", pending[0].code)
        await bot.push_text("now?", userid=USER)
        assert (await next_message(host)).content == "now?"


# ---- a self-built app's callbacks ---------------------------------------------------------------------------------


async def test_app_url_check_and_dm_round_trip(airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs,
                                              api: FakeWecom, monkeypatch: pytest.MonkeyPatch) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    guest_http = record_guest_http(monkeypatch)
    async with host_for(airlock_home, bot, api) as host:
        echo = encrypt_message(AES_KEY, "8843961471427155218", api.corp_id)
        assert await call(host, "GET", callback_query(TOKEN, echo, echo=True)) == (200, "8843961471427155218")
        assert await post_text(host, "你好 from the app", 1001, corp_id=api.corp_id) == (200, "")
        msg = await next_message(host)
        assert (msg.user_id, msg.content, msg.metadata["mode"]) == (USER, "你好 from the app", "app")
        assert msg.metadata["agent_id"] == AGENT_ID
        out = await host.respond(msg, "reply from the agent")
        assert out.ok, out.error
        sent = (await api.wait_for("sent", 1))[0]
        assert sent == {"touser": USER, "msgtype": "text", "agentid": AGENT_ID,
                        "text": {"content": "reply from the agent"}, "safe": 0}
    # gettoken got the Corp ID and secret from the host, not from the guest.
    assert api.token_requests == [{"corpid": api.corp_id, "corpsecret": api.corp_secret}]
    assert guest_http and all(api.corp_secret not in url + headers and api.corp_secret.encode() not in body
                              for url, headers, body in guest_http)


async def test_app_callbacks_refused_before_the_guest(airlock_home: Path, install_channel: InstallFn,
                                                     bot: FakeWecomWs, api: FakeWecom,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot, api) as host:
        seen = spy_guest(host, "wecom", monkeypatch)
        assert (await post_text(host, "forged", 1, corp_id=api.corp_id, token="not-the-token"))[0] == 403
        other_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
        assert (await post_text(host, "wrong key", 2, corp_id=api.corp_id, key=other_key))[0] == 403
        assert (await post_text(host, "old", 3, corp_id=api.corp_id, timestamp=int(time.time()) - 3600))[0] == 403
        assert (await post_text(host, "other corp", 4, corp_id="ww0000000000000000"))[0] == 403
        assert (await call(host, "POST", {"timestamp": "1"}, b"<xml/>"))[0] == 401
        assert seen == []
        await assert_no_message(host)


async def test_app_pairing_code_by_message_send_and_token_refresh(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, api: FakeWecom) -> None:
    install_channel(WASM, CAPS, dm_policy="pairing")
    async with host_for(airlock_home, bot, api) as host:
        assert (await post_text(host, "let me in", 2001, corp_id=api.corp_id))[0] == 200
        code_message = (await api.wait_for("sent", 1))[0]
        pending = host.pairing.pending("wecom")
        assert len(pending) == 1 and pending[0].code in code_message["text"]["content"]
        assert code_message["touser"] == USER
        # A redelivery of the same MsgId (WeCom retries) neither emits nor sends a second code.
        assert (await post_text(host, "let me in", 2001, corp_id=api.corp_id))[0] == 200
        await assert_no_message(host)
        host.pairing.approve("wecom", pending[0].code)
        await post_text(host, "now?", 2002, corp_id=api.corp_id)
        msg = await next_message(host)
        assert msg.content == "now?"
        api.expire_tokens()  # WeCom says 42001: the guest fetches a new token once and sends again
        assert (await host.respond(msg, "welcome")).ok
        await api.wait_for("sent", 2)
        assert api.send_codes == [0, 42001, 0] and len(api.token_requests) == 2
        state = json.loads(host.manager.slots["wecom"].channel.workspace.get("state/access_token") or "{}")
        assert state["token"] == api.tokens_issued[1]
