"""End to end: the real WeChat component (Rust) in the real host, long-polling the fake iLink API on 127.0.0.1
(tests/fakes/fake_wechat.py, checked against the protocol's published samples in tests/fakes/test_fake_wechat.py).
The bot token is stored in the host's secret store and injected as a bearer token: the guest never sends it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from channel_e2e import assert_no_message, next_message, record_guest_http, running_host
from conftest import BUILT_CHANNELS, InstallFn
from fake_wechat import BOT_TOKEN, FakeWechat

from airlock.host import AirlockHost

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "wechat.wasm"
CAPS = BUILT_CHANNELS / "wechat.capabilities.json"
ALICE = "o9cq80alice@im.wechat"
# The shortest long poll the channel accepts, so an idle poll ends quickly when a test stops its host.
LONG_POLL_MS = 1000


@pytest.fixture
async def wechat() -> AsyncIterator[FakeWechat]:
    async with FakeWechat(hold_s=LONG_POLL_MS / 1000) as fake:
        yield fake


def host_for(home: Path, fake: FakeWechat) -> AbstractAsyncContextManager[AirlockHost]:
    return running_host(home, "wechat", {"wechat_bot_token": BOT_TOKEN}, {"ilinkai.weixin.qq.com": fake.base_url})


async def test_dm_round_trip_with_the_bearer_injected_by_the_host(
        airlock_home: Path, install_channel: InstallFn, wechat: FakeWechat, monkeypatch: pytest.MonkeyPatch) -> None:
    install_channel(WASM, CAPS, dm_policy="open", long_poll_timeout_ms=LONG_POLL_MS)
    guest_http = record_guest_http(monkeypatch)
    async with host_for(airlock_home, wechat) as host:
        wechat.push_text("你好, bot", from_user=ALICE)
        msg = await next_message(host)
        assert (msg.channel, msg.user_id, msg.content) == ("wechat", ALICE, "你好, bot")
        assert msg.metadata["context_token"] == f"ctx-{ALICE}"
        assert (await host.send_status(msg, "thinking")).ok
        await wechat.wait_for_records(wechat.typing, 1, 10.0, "typing")
        out = await host.respond(msg, "hello alice")
        assert out.ok, out.error
        sent = (await wechat.wait_for_sent(1))[0]
        assert (sent["to_user_id"], sent["text"], sent["context_token"]) == (ALICE, "hello alice", f"ctx-{ALICE}")
        assert (sent["msg"]["message_type"], sent["msg"]["message_state"]) == (2, 2)
        assert (await host.send_status(msg, "done")).ok
        await wechat.wait_for_records(wechat.typing, 2, 10.0, "typing")
        assert wechat.typing[0] == (ALICE, 1) and wechat.typing[-1] == (ALICE, 2)
        assert [c.path for c in wechat.calls].count("/ilink/bot/getconfig") == 1  # the ticket is reused
        # The same message offered again (a cursor the server did not see move) is not emitted twice.
        wechat.push(dict(wechat._queue[0]))
        await assert_no_message(host, LONG_POLL_MS / 1000 + 0.5)
    assert {c.headers.get("Authorization") for c in wechat.calls} == {f"Bearer {BOT_TOKEN}"}
    assert guest_http and all(BOT_TOKEN not in headers and BOT_TOKEN.encode() not in body
                              for _, headers, body in guest_http)
    assert all("Authorization" not in json.loads(headers) for _, headers, _ in guest_http)


async def test_pairing_code_then_approval(airlock_home: Path, install_channel: InstallFn, wechat: FakeWechat) -> None:
    install_channel(WASM, CAPS, dm_policy="pairing", long_poll_timeout_ms=LONG_POLL_MS)
    async with host_for(airlock_home, wechat) as host:
        wechat.push_text("let me in", from_user=ALICE)
        sent = (await wechat.wait_for_sent(1))[0]
        pending = host.pairing.pending("wechat")
        assert len(pending) == 1 and pending[0].code in sent["text"] and sent["to_user_id"] == ALICE
        await assert_no_message(host)
        host.pairing.approve("wechat", pending[0].code)
        wechat.push_text("now?", from_user=ALICE)
        assert (await next_message(host)).content == "now?"


async def test_cursor_survives_a_restart_and_groups_are_not_relayed(
        airlock_home: Path, install_channel: InstallFn, wechat: FakeWechat) -> None:
    install_channel(WASM, CAPS, dm_policy="open", long_poll_timeout_ms=LONG_POLL_MS)
    async with host_for(airlock_home, wechat) as host:
        wechat.push_text("in a group", from_user=ALICE, group_id="group-1@chatroom")
        wechat.push_text("first", from_user=ALICE)
        assert (await next_message(host)).content == "first"
    cursors = [c.body["get_updates_buf"] for c in wechat.calls if c.path.endswith("/getupdates")]
    wechat.push_text("second", from_user=ALICE)
    async with host_for(airlock_home, wechat) as host:
        assert (await next_message(host)).content == "second"
        await assert_no_message(host)
    after = [c.body["get_updates_buf"] for c in wechat.calls if c.path.endswith("/getupdates")][len(cursors)]
    assert after == "buf-2"  # the restarted channel asked from the saved cursor, not from the start
