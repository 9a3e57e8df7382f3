"""End to end: the real Telegram component (CPython guest) in the real host, against the fake Bot API on
127.0.0.1, with real HTTP in both directions, the real SQLite files and the encrypted secret store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import streaming_e2e
from conftest import BUILT_CHANNELS, InstallFn

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "telegram.wasm"
CAPS = BUILT_CHANNELS / "telegram.capabilities.json"
USER = 777
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@asynccontextmanager
async def running_host(home: Path, fake: FakeTelegram) -> AsyncIterator[AirlockHost]:
    store = SecretStore.open(home)
    store.set("telegram_bot_token", fake.token)
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides={"api.telegram.org": fake.base_url})
    async with AirlockHost(config, secrets=store) as host:
        yield host


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(bot_username="airlock_test_bot") as f:
        yield f


def install_telegram(install: InstallFn, **config: Any) -> None:
    base: dict[str, Any] = {"bot_username": "airlock_test_bot", "long_poll_timeout_s": 25}
    base.update(config)
    install(WASM, CAPS, **base)


async def next_message(host: AirlockHost, timeout: float = 10.0) -> Any:
    return await asyncio.wait_for(host.next_message(), timeout)


async def assert_no_message(host: AirlockHost, wait: float = 1.0) -> None:
    await asyncio.sleep(wait)
    assert host.bus.qsize() == 0


async def test_dm_round_trip_by_polling(fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn) -> None:
    install_telegram(install_channel, polling_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        fake.push_message("hello bot", chat_id=USER, user_id=USER, username="alice")
        msg = await next_message(host)
        assert (msg.channel, msg.content, msg.user_id) == ("telegram", "hello bot", str(USER))
        out = await host.respond(msg, "hi alice")
        assert out.ok, out.error
        sent = await fake.wait_for_sent(1)
        assert sent[0]["chat_id"] == USER and sent[0]["text"] == "hi alice"
    # The token reached Telegram only in the URL path, injected by the host.
    assert any(path.startswith(f"/bot{fake.token}/") for _, path in fake.requests)


async def test_dm_round_trip_by_webhook(fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn) -> None:
    install_telegram(install_channel, polling_enabled=False, webhook_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        secret = host.secrets.get("telegram_webhook_secret")
        assert secret
        update = fake.push_message("via webhook", chat_id=USER, user_id=USER)
        async with aiohttp.ClientSession() as s:
            r = await s.post(f"{host.base_url}/webhook/telegram", json=update, headers={SECRET_HEADER: secret})
            assert r.status == 200
        msg = await next_message(host)
        assert msg.content == "via webhook"
        assert (await host.respond(msg, "got it")).ok
        assert (await fake.wait_for_sent(1))[0]["text"] == "got it"


async def test_webhook_secret_missing_or_wrong_rejected_before_guest(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_telegram(install_channel, polling_enabled=False, webhook_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        channel = host.manager.slots["telegram"].channel
        calls: list[object] = []
        original = channel.http_request
        monkeypatch.setattr(channel, "http_request", lambda req: calls.append(req) or original(req))
        update = fake.push_message("sneaky", chat_id=USER, user_id=USER)
        async with aiohttp.ClientSession() as s:
            missing = await s.post(f"{host.base_url}/webhook/telegram", json=update)
            wrong = await s.post(f"{host.base_url}/webhook/telegram", json=update, headers={SECRET_HEADER: "nope"})
            assert (missing.status, wrong.status) == (401, 403)
            assert "nope" not in await wrong.text()
        assert calls == []
        await assert_no_message(host, 0.3)


async def test_malformed_update_answers_200_and_emits_nothing(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_telegram(install_channel, polling_enabled=False, webhook_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        secret = host.secrets.get("telegram_webhook_secret") or ""
        async with aiohttp.ClientSession() as s:
            for body in (b"{not json", b"[]", json.dumps({"update_id": "x", "message": 5}).encode()):
                r = await s.post(f"{host.base_url}/webhook/telegram", data=body, headers={SECRET_HEADER: secret})
                assert r.status == 200
            health = await s.get(f"{host.base_url}/health/telegram")
            assert health.status == 200 and (await health.json())["active"] is True
        await assert_no_message(host, 0.3)


async def test_unknown_sender_gets_pairing_code_then_approval_admits(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_telegram(install_channel, polling_enabled=True, dm_policy="pairing")
    async with running_host(airlock_home, fake) as host:
        fake.push_message("let me in", chat_id=USER, user_id=USER)
        sent = await fake.wait_for_sent(1, timeout=10)
        pending = host.pairing.pending("telegram")
        assert len(pending) == 1 and pending[0].code in sent[0]["text"]
        await assert_no_message(host, 0.5)
        host.pairing.approve("telegram", pending[0].code)
        fake.push_message("now?", chat_id=USER, user_id=USER)
        msg = await next_message(host)
        assert msg.content == "now?"


async def test_group_message_without_mention_ignored(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_telegram(install_channel, polling_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        fake.push_message("chatter among humans", chat_id=-4001, user_id=USER, chat_type="group")
        fake.push_message("@airlock_test_bot what time is it", chat_id=-4001, user_id=USER, chat_type="group")
        msg = await next_message(host)
        assert msg.content.strip() == "what time is it"
        await assert_no_message(host, 0.5)


async def test_long_reply_split_without_breaking_code_blocks(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_telegram(install_channel, polling_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        fake.push_message("long please", chat_id=USER, user_id=USER)
        msg = await next_message(host)
        code = "```python\n" + "\n".join(f"print({i})" for i in range(700)) + "\n```"
        reply = "intro paragraph\n\n" + code + "\n\noutro " + "word " * 400
        assert (await host.respond(msg, reply)).ok
        await asyncio.sleep(0.5)
        texts = [m["text"] for m in fake.sent_messages]
        assert len(texts) >= 3 and all(len(t) <= 4096 for t in texts)
        assert all(t.count("```") % 2 == 0 for t in texts)
        joined = "".join(texts)
        assert all(f"print({i})" in joined for i in range(700))


async def test_polling_offset_survives_restart_without_duplicates(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_telegram(install_channel, polling_enabled=True, dm_policy="open")
    first = fake.push_message("first", chat_id=USER, user_id=USER)
    async with running_host(airlock_home, fake) as host:
        assert (await next_message(host)).content == "first"
        await asyncio.sleep(0.3)
    # A platform that never saw the confirmation offers the old update again, next to a new one.
    fake.push_update(first)
    fake.push_message("second", chat_id=USER, user_id=USER)
    async with running_host(airlock_home, fake) as host:
        assert (await next_message(host)).content == "second"
        await assert_no_message(host, 1.0)


async def test_reply_not_delayed_by_pending_long_poll(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_telegram(install_channel, polling_enabled=True, dm_policy="open", long_poll_timeout_s=25)
    async with running_host(airlock_home, fake) as host:
        fake.push_message("ping", chat_id=USER, user_id=USER)
        msg = await next_message(host)
        await asyncio.sleep(0.5)  # the channel is now inside a 25-second getUpdates
        started = time.monotonic()
        out = await host.respond(msg, "pong")
        await fake.wait_for_sent(1, timeout=1.0)
        assert out.ok and time.monotonic() - started < 1.0
        # Both callbacks write the workspace: the poll its offset, the reply its delivery record.
        fake.push_message("ping again", chat_id=USER, user_id=USER)
        await next_message(host)
        await asyncio.sleep(0.3)
        ws = host.manager.slots["telegram"].channel.workspace
        assert ws.get("state/offset") is not None
        assert ws.get(f"state/last_reply/{USER}") is not None


async def test_streamed_reply_is_one_send_then_paced_edits(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    """World 0.2.0 through the Python SDK: the reply returns the Telegram message id; a 12-text stream is one
    sendMessage, then editMessageText at most once per second, the final text last."""
    install_telegram(install_channel, polling_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        assert host.manager.slots["telegram"].channel.loaded.optional_exports == ("delivery", "edits", "reactions")
        fake.push_message("tell me more", chat_id=USER, user_id=USER, username="alice")
        msg = await next_message(host)
        final = "Telegram streams too: one message, edited in place about once a second, and this is the end."
        elapsed = await streaming_e2e.stream_reply(host, msg, final)
        sent = (await fake.wait_for_sent(1))[0]["message"]
        await streaming_e2e.wait_for_text(lambda: fake._messages[(USER, sent["message_id"])].get("text"), final)
        await asyncio.sleep(streaming_e2e.EDIT_INTERVAL_S + 0.2)
        outbox = await asyncio.to_thread(host.log.list_outbox)
        assert str(sent["message_id"]) in {e.platform_message_id for e in outbox}
    assert all(e["chat_id"] == USER and e["message_id"] == sent["message_id"] for e in fake.edited_messages)
    calls = [streaming_e2e.Sent("send" if m == "sendMessage" else "edit", at, text)
             for m, at, _id, text in fake.timeline]
    streaming_e2e.check_stream(calls, final, elapsed)


async def test_reactions_are_set_message_reaction(
    fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn
) -> None:
    """World 0.2.0 ``reactions``: ``host.react`` on a sent reply is setMessageReaction on the message Telegram gave
    the reply; remove clears the bot's reaction; an emoji Telegram does not offer is a permanent failure (the
    fake's REACTION_INVALID, Bot API ReactionTypeEmoji list), not retried."""
    install_telegram(install_channel, polling_enabled=True, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        fake.push_message("react to this", chat_id=USER, user_id=USER, username="alice")
        msg = await next_message(host)
        assert (await host.respond(msg, "here you go")).ok
        sent = (await fake.wait_for_sent(1))[0]["message"]
        [reply] = await asyncio.to_thread(host.log.list_outbox)
        assert (await host.react(reply.id, "👍")).ok
        assert (await host.react(reply.id, "👍", remove=True)).ok
        refused = await host.react(reply.id, "🦀")
        assert not refused.ok and "REACTION_INVALID" in str(refused.error)
        reacts = sorted((e for e in await asyncio.to_thread(host.log.list_outbox) if e.kind == "react"),
                        key=lambda e: e.id)  # ULIDs: in the order queued
        assert [(e.payload["emoji"], e.state, e.attempts) for e in reacts] == [
            ("👍", "sent", 1), ("👍", "sent", 1), ("🦀", "failed", 1)]  # the last: failed for good, not retried
    assert fake.reactions == [{"chat_id": USER, "message_id": sent["message_id"], "emoji": "👍"},
                              {"chat_id": USER, "message_id": sent["message_id"], "emoji": None}]
