"""route_input_from on what the real bundled channels emit, so a change to a guest's metadata that routing
relies on fails here: the Rust components (Slack, Feishu, WhatsApp, Discord, WeCom, WeChat) run in the real host
against the fakes on 127.0.0.1 with signed webhooks (and WeCom's socket, WeChat's long poll); the Telegram channel's
own message builder (``telegram_logic``, the code its component runs) is called on Bot API updates, sparing the
18 MB CPython guest's compile."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import BUILT_CHANNELS, REPO, InstallFn
from fake_discord import FakeDiscord, InteractionSigner
from fake_feishu import FakeFeishu, bot_mention
from fake_feishu import message_event as feishu_event
from fake_slack import BOT_USER_ID, FakeSlack, app_mention_event, message_event, signed_headers
from fake_wechat import BOT_TOKEN as WECHAT_TOKEN
from fake_wechat import FakeWechat
from fake_wecom import FakeWecom, callback_body, callback_query, encrypt_message, text_message_xml
from fake_wecom_ws import FakeWecomWs
from fake_whatsapp import FakeWhatsApp, sign, text_notification

from airlock.agents.delivery import Delivery
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.messages.routing import route, route_input_from
from airlock.messages.routing_models import RouteInput, RoutingConfig
from airlock.stores import SecretStore

for _path in (REPO / "sdk" / "python", REPO / "guest-plugins" / "telegram"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from telegram_logic import parse_inbound, to_message  # noqa: E402

pytestmark = pytest.mark.e2e

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WECOM_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
MESSAGE_TIMEOUT_S = 15.0
"""Longest wait for an emitted message (one local callback, maybe one call to a fake); only failures wait it out."""


@asynccontextmanager
async def running_host(home: Path, channel: str, secrets: dict[str, str],
                       upstream: dict[str, str]) -> AsyncIterator[AirlockHost]:
    store = SecretStore.open(home)
    for name, value in secrets.items():
        store.set(name, value)
    async with AirlockHost(HostConfig.build(home=home, listen_port=0, upstream_overrides=upstream),
                           secrets=store) as host:
        assert host.manager.slots[channel].active, host.manager.slots[channel].reason
        yield host


async def next_message(host: AirlockHost) -> Delivery:
    return await asyncio.wait_for(host.next_message(), MESSAGE_TIMEOUT_S)


def routed(msg: Delivery) -> RouteInput:
    return route_input_from(msg.channel, msg.channel, msg.user_id, msg.thread_id, msg.metadata)


async def post(host: AirlockHost, channel: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/{channel}", data=body,
                                                    headers=headers) as r:
        return r.status


def install(install_channel: InstallFn, name: str) -> None:
    install_channel(BUILT_CHANNELS / f"{name}.wasm", BUILT_CHANNELS / f"{name}.capabilities.json", dm_policy="open")


def test_telegram_private_group_and_topic() -> None:
    def update(chat: dict[str, Any], **extra: Any) -> RouteInput:
        raw = {"update_id": 1, "message": {"message_id": 9, "date": 1, "text": "hi", "chat": chat,
                                           "from": {"id": 42, "is_bot": False, "first_name": "Ada"}, **extra}}
        inbound = parse_inbound(raw)
        assert inbound is not None
        msg = to_message(inbound, "hi")
        return route_input_from("telegram", "telegram", msg.user_id, msg.thread_id, msg.metadata)

    assert update({"id": 42, "type": "private"}) == RouteInput("telegram", "telegram", "dm", "42")
    assert update({"id": -4001, "type": "group"}) == RouteInput("telegram", "telegram", "group", "-4001")
    assert update({"id": -1001, "type": "supergroup", "is_forum": True}, message_thread_id=7,
                  is_topic_message=True) == RouteInput("telegram", "telegram", "thread", "7", "-1001")


async def test_slack_dm_and_a_mention_thread_keep_one_session(airlock_home: Path,
                                                              install_channel: InstallFn) -> None:
    install(install_channel, "slack")
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        secrets = {"slack_bot_token": fake.token, "slack_signing_secret": SECRET}
        async with running_host(airlock_home, "slack", secrets, {"slack.com": fake.base_url}) as host:
            inputs = []
            for event in (message_event("hi", user="U0ALICE", channel="D0ALICE"),
                          app_mention_event(f"<@{BOT_USER_ID}> status?", channel="C0GEN", ts="1712000000.000100"),
                          app_mention_event(f"<@{BOT_USER_ID}> now?", channel="C0GEN", ts="1712000050.000300",
                                            thread_ts="1712000000.000100")):
                body = json.dumps(event).encode()
                assert await post(host, "slack", body, signed_headers(SECRET, body)) == 200
                inputs.append(routed(await next_message(host)))
    team = inputs[0].team_id
    assert team and inputs[0] == RouteInput("slack", "slack", "dm", "U0ALICE", team_id=team)
    assert inputs[1] == inputs[2] == RouteInput("slack", "slack", "thread", "1712000000.000100", "C0GEN",
                                                team_id=team)
    cfg = RoutingConfig()
    assert route(cfg, inputs[1]).session_key == route(cfg, inputs[2]).session_key


async def test_feishu_group_thread(airlock_home: Path, install_channel: InstallFn) -> None:
    install(install_channel, "feishu")
    async with FakeFeishu() as fake:
        secrets = {"feishu_app_id": fake.app_id, "feishu_app_secret": fake.app_secret,
                   "feishu_verification_token": "vtok-1"}
        async with running_host(airlock_home, "feishu", secrets,
                                            {"open.feishu.cn": fake.base_url}) as host:
            event = feishu_event("@_user_1 time?", token="vtok-1", open_id="ou_ada", chat_type="group",
                                 chat_id="oc_team", mentions=[bot_mention()], root_id="om_r", thread_id="omt_1")
            assert await post(host, "feishu", json.dumps(event).encode(), {"Content-Type": "application/json"}) == 200
            got = routed(await next_message(host))
    assert got == RouteInput("feishu", "feishu", "thread", "omt_1", "oc_team")


async def test_whatsapp_dm(airlock_home: Path, install_channel: InstallFn) -> None:
    install(install_channel, "whatsapp")
    async with FakeWhatsApp() as fake:
        secrets = {"whatsapp_access_token": fake.token, "whatsapp_app_secret": SECRET}
        async with running_host(airlock_home, "whatsapp", secrets,
                                            {"graph.facebook.com": fake.base_url}) as host:
            body = json.dumps(text_notification("hello", wa_id="15551234567")).encode()
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)}
            assert await post(host, "whatsapp", body, headers) == 200
            got = routed(await next_message(host))
    assert got == RouteInput("whatsapp", "whatsapp", "dm", "15551234567")


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval_ms=500, expected_intents=4609) as fake:
        yield fake


async def test_discord_slash_commands_in_a_guild_and_in_a_dm(airlock_home: Path, install_channel: InstallFn,
                                                             discord: FakeDiscord) -> None:
    install(install_channel, "discord")
    signer = InteractionSigner()
    secrets = {"discord_bot_token": discord.bot_token, "discord_public_key": signer.public_key_hex}
    overrides = {"gateway.discord.gg": discord.base_url, "discord.com": discord.base_url}
    async with running_host(airlock_home, "discord", secrets, overrides) as host:
        got = []
        for guild in ("1300000000000000001", None):
            payload = discord.new_interaction(user_id="803511", channel_id="1300000000000000777", guild_id=guild)
            status, _ = await discord.deliver_interaction(f"{host.base_url}/webhook/discord", payload, signer)
            assert status == 200
            got.append(routed(await next_message(host)))
    assert got == [RouteInput("discord", "discord", "group", "1300000000000000777", group_id="1300000000000000001"),
                   RouteInput("discord", "discord", "dm", "803511")]


async def test_wecom_bot_group_and_app_dm(airlock_home: Path, install_channel: InstallFn) -> None:
    install(install_channel, "wecom")
    async with FakeWecomWs() as bot, FakeWecom() as api:
        secrets = {"wecom_bot_id": bot.bot_id, "wecom_bot_secret": bot.secret, "wecom_corp_id": api.corp_id,
                   "wecom_callback_token": "tok-1", "wecom_callback_aes_key": WECOM_AES_KEY}
        upstream = {"openws.work.weixin.qq.com": bot.base_url, "qyapi.weixin.qq.com": api.base_url}
        async with running_host(airlock_home, "wecom", secrets, upstream) as host:
            await bot.wait_for(lambda: len(bot.connections) == 1, "subscribe")
            await bot.push_text("@Bot time?", userid="ada", chatid="wrkTeamChat")
            group = routed(await next_message(host))
            encrypted = encrypt_message(WECOM_AES_KEY, text_message_xml("hi", from_user="ada", msg_id=1), api.corp_id)
            async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/wecom",
                                                            params=callback_query("tok-1", encrypted),
                                                            data=callback_body(encrypted)) as r:
                assert r.status == 200
            dm = routed(await next_message(host))
    assert group == RouteInput("wecom", "wecom", "group", "wrkTeamChat")
    assert dm == RouteInput("wecom", "wecom", "dm", "ada")


async def test_wechat_dm(airlock_home: Path, install_channel: InstallFn) -> None:
    install_channel(BUILT_CHANNELS / "wechat.wasm", BUILT_CHANNELS / "wechat.capabilities.json", dm_policy="open",
                    long_poll_timeout_ms=1000)
    secrets = {"wechat_bot_token": WECHAT_TOKEN}
    async with FakeWechat(hold_s=1.0) as fake, running_host(
            airlock_home, "wechat", secrets, {"ilinkai.weixin.qq.com": fake.base_url}) as host:
        fake.push_text("hello", from_user="ada@im.wechat")
        got = routed(await next_message(host))
    assert got == RouteInput("wechat", "wechat", "dm", "ada@im.wechat")
