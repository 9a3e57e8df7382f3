"""End to end: the real Slack component (Rust) in the real host and aiohttp server, signed Events API requests
(signatures by slack_sdk), replies to the fake Slack Web API on 127.0.0.1 with the bot token injected by the host.

A spy on the channel's on-http-request entry point proves that a refused request never reaches the guest; a spy
on the http-request host function shows what the guest itself sent (no token)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import channel_e2e
import pytest
import streaming_e2e
from channel_e2e import GuestHttp, assert_no_message, next_message, record_guest_http, spy_guest
from conftest import BUILT_CHANNELS, InstallFn
from fake_slack import (
    BOT_ID,
    BOT_USER_ID,
    FakeSlack,
    app_mention_event,
    message_event,
    signed_headers,
    url_verification,
)

from airlock.host import AirlockHost

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "slack.wasm"
CAPS = BUILT_CHANNELS / "slack.capabilities.json"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALICE = "U0ALICE"
DM = "D0ALICE"
SLACK_ANSWER_BUDGET_S = 3.0
"""Slack retries an event not answered with a 2xx within 3 seconds (Events API docs, "Responding to events")."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        f.add_user(ALICE, "alice", display_name="Alice")
        yield f


@pytest.fixture
def guest_http(monkeypatch: pytest.MonkeyPatch) -> GuestHttp:
    return record_guest_http(monkeypatch)


def running_host(home: Path, fake: FakeSlack) -> AbstractAsyncContextManager[AirlockHost]:
    secrets = {"slack_bot_token": fake.token, "slack_signing_secret": SIGNING_SECRET}
    return channel_e2e.running_host(home, "slack", secrets,
                                    {"slack.com": fake.base_url})


def install_slack(install: InstallFn, **config: Any) -> None:
    install(WASM, CAPS, **config)


async def post_event(host: AirlockHost, payload: Any, *, headers: dict[str, str] | None = None,
                     timestamp: int | None = None, body: bytes | None = None) -> tuple[int, str]:
    raw = body if body is not None else json.dumps(payload).encode()
    sent = headers if headers is not None else signed_headers(SIGNING_SECRET, raw, timestamp)
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/slack", data=raw, headers=sent) as r:
        return r.status, await r.text()


async def test_url_verification_answered(fake: FakeSlack, airlock_home: Path, install_channel: InstallFn) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        status, text = await post_event(host, url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"))
        assert status == 200
        assert json.loads(text) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_dm_round_trip_with_host_injected_token(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn, guest_http: list[tuple[str, str, bytes]]
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        started = time.monotonic()
        status, _ = await post_event(host, message_event("hello bot", user=ALICE, channel=DM))
        assert status == 200 and time.monotonic() - started < SLACK_ANSWER_BUDGET_S
        msg = await next_message(host)
        assert (msg.channel, msg.content, msg.user_id, msg.inbound.message.user_name) == (
            "slack", "hello bot", ALICE, "Alice")
        out = await host.respond(msg, "hi alice")
        assert out.ok, out.error
        posted = await fake.wait_for_posted(1)
        assert posted[0]["channel"] == DM and posted[0]["text"] == "hi alice"
        assert "thread_ts" not in posted[0]
    post_call = next(c for c in fake.calls if c.method == "chat.postMessage")
    assert post_call.authorization == f"Bearer {fake.token}"
    # The guest's own requests (before the host's credential injection) never carried the token.
    assert guest_http and all(fake.token not in h and fake.token.encode() not in b for _, h, b in guest_http)
    assert any(url == "https://slack.com/api/chat.postMessage" for url, _, _ in guest_http)


async def test_signature_missing_bad_or_stale_rejected_before_guest(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        calls = spy_guest(host, "slack", monkeypatch)
        event = message_event("sneaky", user=ALICE, channel=DM)
        raw = json.dumps(event).encode()
        good = signed_headers(SIGNING_SECRET, raw)
        missing = {"Content-Type": "application/json"}
        no_timestamp = {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"}
        wrong_secret = signed_headers("not-the-signing-secret", raw)
        stale = signed_headers(SIGNING_SECRET, raw, timestamp=int(time.time()) - 301)
        future = signed_headers(SIGNING_SECRET, raw, timestamp=int(time.time()) + 301)
        tampered = raw.replace(b"sneaky", b"evil!!")
        results = [
            await post_event(host, None, body=raw, headers=missing),
            await post_event(host, None, body=raw, headers=no_timestamp),
            await post_event(host, None, body=raw, headers=wrong_secret),
            await post_event(host, None, body=raw, headers=stale),
            await post_event(host, None, body=raw, headers=future),
            await post_event(host, None, body=tampered, headers=good),
        ]
        assert [status for status, _ in results] == [401, 401, 403, 403, 403, 403]
        assert all(SIGNING_SECRET not in text and "v0=" not in text for _, text in results)
        assert calls == []
        await assert_no_message(host, 0.3)
        # The same body correctly signed goes through (the checks above were not refusing everything).
        assert (await post_event(host, None, body=raw))[0] == 200
        assert (await next_message(host)).content == "sneaky"
        assert len(calls) == 1 and calls[0].secret_validated is True


async def test_replayed_request_rejected_by_host(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        calls = spy_guest(host, "slack", monkeypatch)
        raw = json.dumps(message_event("once", user=ALICE, channel=DM)).encode()
        headers = signed_headers(SIGNING_SECRET, raw)
        first = await post_event(host, None, body=raw, headers=headers)
        replay = await post_event(host, None, body=raw, headers=headers)
        assert (first[0], replay[0]) == (200, 403)
        assert len(calls) == 1
        assert (await next_message(host)).content == "once"
        await assert_no_message(host, 0.3)


async def test_slack_retry_with_new_signature_is_deduplicated_by_the_guest(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        event = message_event("only once", user=ALICE, channel=DM)
        assert (await post_event(host, event))[0] == 200
        retry = json.dumps(event).encode()
        headers = {**signed_headers(SIGNING_SECRET, retry, timestamp=int(time.time()) + 1),
                   "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert (await post_event(host, None, body=retry, headers=headers))[0] == 200
        assert (await next_message(host)).content == "only once"
        await assert_no_message(host, 0.5)


async def test_bot_self_and_edited_messages_ignored(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        ignored = [
            message_event("from another bot", user="U0OTHERBOT", channel=DM, bot_id="B0OTHER"),
            message_event("legacy bot", channel=DM, subtype="bot_message", user=None, bot_id=BOT_ID),
            message_event("my own echo", user=BOT_USER_ID, channel=DM),
            message_event("", channel=DM, subtype="message_changed", message={"text": "edited", "user": ALICE}),
            message_event("joined", user=ALICE, channel="C0GENERAL", channel_type="channel", subtype="channel_join"),
            message_event("channel chatter", user=ALICE, channel="C0GENERAL", channel_type="channel"),
        ]
        for event in ignored:
            assert (await post_event(host, event))[0] == 200
        assert (await post_event(host, message_event("real one", user=ALICE, channel=DM)))[0] == 200
        assert (await next_message(host)).content == "real one"
        await assert_no_message(host, 0.3)
    assert not fake.posted


async def test_threads_kept_for_dm_threads_and_mentions(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="allowlist")
    async with running_host(airlock_home, fake) as host:
        # A mention in a channel: admitted by the mention rule, answered in a thread under the mention.
        mention = app_mention_event(f"<@{BOT_USER_ID}> what is the status?", user="U0BOB", channel="C0GENERAL",
                                    ts="1712000000.000100")
        assert (await post_event(host, mention))[0] == 200
        msg = await next_message(host)
        assert (msg.content, msg.user_id, msg.thread_id) == ("what is the status?", "U0BOB", "1712000000.000100")
        assert (await host.respond(msg, "green")).ok
        # A reply inside an existing thread of a channel the bot was mentioned in stays in that thread.
        inner = app_mention_event(f"<@{BOT_USER_ID}> and now?", user="U0BOB", channel="C0GENERAL",
                                  ts="1712000050.000300", thread_ts="1712000000.000100")
        assert (await post_event(host, inner))[0] == 200
        assert (await host.respond(await next_message(host), "still green")).ok
        posted = await fake.wait_for_posted(2)
        assert [(p["channel"], p["thread_ts"], p["text"]) for p in posted] == [
            ("C0GENERAL", "1712000000.000100", "green"), ("C0GENERAL", "1712000000.000100", "still green")]


async def test_dm_thread_reply_carries_thread_ts(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        event = message_event("in a thread", user=ALICE, channel=DM, ts="1712000100.000200",
                              thread_ts="1712000090.000100")
        assert (await post_event(host, event))[0] == 200
        msg = await next_message(host)
        meta = json.loads(msg.inbound.message.metadata_json)
        assert (meta["channel"], meta["ts"], meta["thread_ts"]) == (DM, "1712000100.000200", "1712000090.000100")
        assert (await host.respond(msg, "threaded answer")).ok
        posted = await fake.wait_for_posted(1)
        assert (posted[0]["channel"], posted[0]["thread_ts"]) == (DM, "1712000090.000100")


async def test_pairing_code_then_approval_admits(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="pairing")
    async with running_host(airlock_home, fake) as host:
        assert (await post_event(host, message_event("let me in", user=ALICE, channel=DM)))[0] == 200
        posted = await fake.wait_for_posted(1)
        pending = host.pairing.pending("slack")
        assert len(pending) == 1 and pending[0].external_id == ALICE
        assert posted[0]["channel"] == DM and pending[0].code in posted[0]["text"]
        assert (await post_event(host, message_event("hello?", user=ALICE, channel=DM)))[0] == 200
        await assert_no_message(host, 0.5)
        assert len(fake.posted) == 1  # no second code for the same pending request
        host.pairing.approve("slack", pending[0].code)
        assert (await post_event(host, message_event("now?", user=ALICE, channel=DM)))[0] == 200
        msg = await next_message(host)
        assert (msg.content, msg.user_id) == ("now?", ALICE)


async def test_allowlist_drops_strangers_silently(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="allowlist", allow_from=["U0FRIEND"])
    async with running_host(airlock_home, fake) as host:
        assert (await post_event(host, message_event("hi", user=ALICE, channel=DM)))[0] == 200
        assert (await post_event(host, message_event("hi", user="U0FRIEND", channel="D0FRIEND")))[0] == 200
        assert (await next_message(host)).user_id == "U0FRIEND"
        await assert_no_message(host, 0.3)
        assert host.pairing.pending("slack") == []
    assert not fake.posted


async def test_slack_error_in_reply_is_reported(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        assert (await post_event(host, message_event("hi", user=ALICE, channel=DM)))[0] == 200
        msg = await next_message(host)
        fake.fail_next("chat.postMessage", "not_in_channel")
        out = await host.respond(msg, "can you see me?")
        assert not out.ok and "not_in_channel" in str(out.error)
        assert fake.token not in str(out.error)
        assert (await host.respond(msg, "second try")).ok
        assert [p["text"] for p in fake.posted] == ["second try"]


async def test_streamed_reply_is_one_post_then_paced_chat_updates(
    fake: FakeSlack, airlock_home: Path, install_channel: InstallFn
) -> None:
    """World 0.2.0: the reply returns its ts; a stream of 12 texts in 1.8 s is one chat.postMessage, then
    chat.update at most once per second, the final text last."""
    install_slack(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        assert host.manager.slots["slack"].channel.loaded.optional_exports == ("delivery", "edits")
        await post_event(host, message_event("tell me a story", user=ALICE, channel=DM))
        msg = await next_message(host)
        final = "Once upon a time a gateway streamed its replies, and every edit came in order."
        elapsed = await streaming_e2e.stream_reply(host, msg, final)
        ts = (await fake.wait_for_posted(1))[0]["ts"]
        await streaming_e2e.wait_for_text(lambda: fake.text_of(DM, ts), final)
        await asyncio.sleep(streaming_e2e.EDIT_INTERVAL_S + 0.2)  # nothing may follow the final text
        head = await asyncio.to_thread(host.log.list_outbox)
        assert any(e.platform_message_id == ts for e in head), "the reply's ts is kept with its outbox entry"
    calls = [streaming_e2e.Sent("send" if m == "chat.postMessage" else "edit", at, text)
             for m, at, _ts, text in fake.timeline]
    assert all(t == ts for _m, _at, t, _x in fake.timeline), "every edit names the one message sent"
    streaming_e2e.check_stream(calls, final, elapsed)
