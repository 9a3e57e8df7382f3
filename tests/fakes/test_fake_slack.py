"""The fake Slack Web API, driven by the real slack_sdk clients (sync WebClient in a thread, AsyncWebClient)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from fake_slack import (
    BOT_ID,
    BOT_USER_ID,
    MAX_TEXT_CHARS,
    FakeSlack,
    app_mention_event,
    message_event,
    signed_headers,
    url_verification,
)
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_sync_webclient_posts_and_auth_test(fake: FakeSlack) -> None:
    client = WebClient(token=fake.token, base_url=fake.api_url)
    who = await asyncio.to_thread(client.auth_test)
    assert (who["user_id"], who["bot_id"]) == (BOT_USER_ID, BOT_ID)
    resp = await asyncio.to_thread(client.chat_postMessage, channel="D0ALICE", text="hi", thread_ts="1.000100")
    assert resp["ok"] and resp["channel"] == "D0ALICE" and resp["message"]["thread_ts"] == "1.000100"
    posted = await fake.wait_for_posted(1)
    assert posted[0]["channel"] == "D0ALICE" and posted[0]["text"] == "hi" and posted[0]["ts"] == resp["ts"]
    assert fake.calls[-1].authorization == f"Bearer {fake.token}"
    assert fake.calls[-1].content_type == "application/json"
    fake.add_user("U0ALICE", "alice", display_name="Alice A.")
    info = await asyncio.to_thread(client.users_info, user="U0ALICE")
    assert info["user"]["profile"]["display_name"] == "Alice A."
    with pytest.raises(SlackApiError) as err:
        await asyncio.to_thread(client.users_info, user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"


async def test_async_webclient_errors(fake: FakeSlack) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as info:
        await bad.chat_postMessage(channel="D1", text="x")
    assert info.value.response["error"] == "invalid_auth"
    client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="D1", text="x" * (MAX_TEXT_CHARS + 1))
    assert info.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="", text="x")
    assert info.value.response["error"] == "channel_not_found"
    fake.fail_next("chat.postMessage", "ratelimited")
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="D1", text="x")
    assert info.value.response["error"] == "ratelimited"
    assert (await client.chat_postMessage(channel="D1", text="x"))["ok"]
    assert len(fake.posted) == 1
    assert [c.error for c in fake.calls] == ["invalid_auth", "msg_too_long", "channel_not_found", "ratelimited", None]


async def test_missing_token_and_unknown_method(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{fake.api_url}chat.postMessage", json={"channel": "D1", "text": "x"})
        assert r.status == 200 and (await r.json()) == {"ok": False, "error": "not_authed"}
        form = await s.post(f"{fake.api_url}chat.postMessage", data={"token": fake.token, "channel": "D1", "text": "y"})
        assert (await form.json())["ok"] is True
        r = await s.post(f"{fake.api_url}users.list", headers={"Authorization": f"Bearer {fake.token}"})
        assert r.status == 404 and (await r.json())["error"] == "unknown_method"
    assert [p["text"] for p in fake.posted] == ["y"]


def test_event_builders_are_signed_like_slack_signs() -> None:
    body = json.dumps(message_event("hello", thread_ts="1.5")).encode()
    headers = signed_headers("s3cret", body)
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = signed_headers("s3cret", body, timestamp=int(time.time()) - 301)
    assert not SignatureVerifier("s3cret").is_valid_request(body, stale)
    event = json.loads(body)["event"]
    assert (event["type"], event["channel_type"], event["thread_ts"]) == ("message", "im", "1.5")
    assert message_event("x", subtype="bot_message", user=None)["event"].get("user") is None
    assert app_mention_event(f"<@{BOT_USER_ID}> hi")["event"]["type"] == "app_mention"
    assert url_verification("abc") == {"token": "deprecated-verification-token", "challenge": "abc",
                                       "type": "url_verification"}
