"""End to end: the real Feishu component (Rust) in the real host, against the fake Feishu Open Platform on
127.0.0.1. Event callbacks are made by the fake's builders (AES-256-CBC with ``cryptography``, X-Lark-Signature with
hashlib, both checked against Feishu's own SDK in tests/fakes/test_fake_feishu.py); the host verifies and decrypts
them before the guest runs. The tenant token request carries the app id and secret as body placeholders that the
host fills in."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import streaming_e2e
from channel_e2e import assert_no_message, next_message
from conftest import BUILT_CHANNELS, InstallFn
from fake_feishu import (
    BOT_OPEN_ID,
    FakeFeishu,
    bot_mention,
    encrypt_body,
    message_event,
    signed_headers,
    url_verification,
)

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "feishu.wasm"
CAPS = BUILT_CHANNELS / "feishu.capabilities.json"
VERIFY_TOKEN = "vtok-9b1f0c2e7d4a"
ENCRYPT_KEY = "enc-key-3c5e7a9b1d"
ALICE = "ou_user000000000000000000000000alice"

StartHost = Callable[..., Awaitable[AirlockHost]]


@pytest.fixture
async def feishu() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as fake:
        yield fake


class Hosts:
    """Starts hosts with the Feishu channel installed; stops whatever is still running at teardown."""

    def __init__(self, home: Path, install: InstallFn, feishu: FakeFeishu) -> None:
        self.home, self.install, self.feishu = home, install, feishu
        self.running: list[AirlockHost] = []

    async def start(self, *, encrypt_key: str | None = None, install: bool = True, **config: Any) -> AirlockHost:
        if install:
            self.install(WASM, CAPS, **{"dm_policy": "open", **config})
        store = SecretStore.open(self.home)
        store.set("feishu_app_id", self.feishu.app_id)
        store.set("feishu_app_secret", self.feishu.app_secret)
        store.set("feishu_verification_token", VERIFY_TOKEN)
        if encrypt_key is not None:
            store.set("feishu_encrypt_key", encrypt_key)
        config_ = HostConfig.build(home=self.home, listen_port=0,
                                   upstream_overrides={"open.feishu.cn": self.feishu.base_url})
        host = AirlockHost(config_, secrets=store)
        self.running.append(host)
        await host.start()
        return host

    async def stop(self, host: AirlockHost) -> None:
        self.running.remove(host)
        await host.stop()


@pytest.fixture
async def hosts(airlock_home: Path, install_channel: InstallFn, feishu: FakeFeishu) -> AsyncIterator[Hosts]:
    factory = Hosts(airlock_home, install_channel, feishu)
    yield factory
    for host in list(factory.running):
        await factory.stop(host)


@pytest.fixture
def start_host(hosts: Hosts) -> StartHost:
    """start_host(encrypt_key=None, install=True, **config) -> a started host with the Feishu channel."""
    return hosts.start


async def post_event(host: AirlockHost, payload: dict[str, Any], *, encrypt_key: str | None = None,
                     signed: bool = True, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST a callback as Feishu does: plain JSON, or encrypted (and signed unless ``signed`` is false)."""
    if encrypt_key is None:
        body = json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"}
    else:
        body = json.dumps(encrypt_body(payload, encrypt_key)).encode()
        sent = signed_headers(body, encrypt_key) if signed else {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/feishu", data=body,
                                                    headers=headers or sent) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


def dm(text: str, **kw: Any) -> dict[str, Any]:
    return message_event(text, token=VERIFY_TOKEN, open_id=ALICE, **kw)


# ---- challenge ------------------------------------------------------------------------------------------------


async def test_url_verification_plain_and_encrypted(hosts: Hosts) -> None:
    host = await hosts.start()
    assert await post_event(host, url_verification(VERIFY_TOKEN, "chal-plain")) == (200, {"challenge": "chal-plain"})
    assert (await post_event(host, url_verification("wrong-token", "x")))[0] == 403
    await hosts.stop(host)
    host = await hosts.start(encrypt_key=ENCRYPT_KEY, install=False)
    # Feishu sends the URL check encrypted but unsigned; events come signed.
    for signed in (False, True):
        answer = await post_event(host, url_verification(VERIFY_TOKEN, f"chal-{signed}"), encrypt_key=ENCRYPT_KEY,
                                  signed=signed)
        assert answer == (200, {"challenge": f"chal-{signed}"})


# ---- verification before the guest ----------------------------------------------------------------------------


async def test_bad_token_bad_or_missing_signature_rejected_before_the_guest(
        start_host: StartHost, monkeypatch: pytest.MonkeyPatch) -> None:
    host = await start_host(encrypt_key=ENCRYPT_KEY)
    channel = host.manager.slots["feishu"].channel
    calls: list[object] = []
    original = channel.http_request
    monkeypatch.setattr(channel, "http_request", lambda req: calls.append(req) or original(req))
    event = dm("sneaky")
    body = json.dumps(encrypt_body(event, ENCRYPT_KEY)).encode()
    wrong_sig = signed_headers(body, "not-the-key")
    assert (await post_event(host, event, headers=wrong_sig))[0] in (401, 403)
    assert (await post_event(host, event, encrypt_key=ENCRYPT_KEY, signed=False))[0] == 401  # unsigned event
    assert (await post_event(host, event))[0] == 401  # plaintext although an encrypt key is set
    assert (await post_event(host, message_event("x", token="wrong"), encrypt_key=ENCRYPT_KEY))[0] == 403
    assert (await post_event(host, event, encrypt_key="another-key"))[0] in (401, 403)
    assert calls == []
    await assert_no_message(host)


# ---- messages ---------------------------------------------------------------------------------------------------


async def test_dm_round_trip_encrypted(start_host: StartHost, feishu: FakeFeishu) -> None:
    host = await start_host(encrypt_key=ENCRYPT_KEY)
    event = dm("hello bot")
    assert (await post_event(host, event, encrypt_key=ENCRYPT_KEY)) == (200, {})
    msg = await next_message(host)
    assert (msg.channel, msg.content, msg.user_id) == ("feishu", "hello bot", ALICE)
    message_id = event["event"]["message"]["message_id"]
    assert msg.metadata["message_id"] == message_id and msg.metadata["chat_type"] == "p2p"
    out = await host.respond(msg, "hi alice")
    assert out.ok, out.error
    reply = feishu.replies[0]
    assert (reply["message_id"], reply["text"], reply["msg_type"]) == (message_id, "hi alice", "text")
    assert "reply_in_thread" not in reply
    assert feishu.token_requests == [{"app_id": feishu.app_id, "app_secret": feishu.app_secret}]
    assert feishu.calls[-1].authorization == f"Bearer {feishu.tokens_issued[0]}"


async def test_app_and_own_messages_ignored(start_host: StartHost) -> None:
    host = await start_host()
    assert (await post_event(host, dm("from the bot itself", sender_type="app")))[0] == 200
    assert (await post_event(host, dm("a picture", message_type="image")))[0] == 200
    assert (await post_event(host, dm("a real person")))[0] == 200
    assert (await next_message(host)).content == "a real person"
    await assert_no_message(host)


async def test_group_needs_a_mention_and_threads_are_kept(start_host: StartHost, feishu: FakeFeishu) -> None:
    host = await start_host()
    group = {"chat_type": "group", "chat_id": "oc_group00000000000000000000000team"}
    await post_event(host, dm("chatter among humans", **group))
    event = dm("@_user_1 what time is it", mentions=[bot_mention()], root_id="om_root0001",
               thread_id="omt_thread0001", **group)
    assert (await post_event(host, event))[0] == 200
    msg = await next_message(host)
    assert (msg.content, msg.thread_id) == ("what time is it", "omt_thread0001")
    assert msg.metadata["chat_type"] == "group" and msg.metadata["root_id"] == "om_root0001"
    await assert_no_message(host)
    assert (await host.respond(msg, "noon")).ok
    reply = feishu.replies[-1]
    assert reply["message_id"] == event["event"]["message"]["message_id"] and reply["reply_in_thread"] is True
    # The bot's open_id came from GET /open-apis/bot/v3/info, once.
    assert [c.path for c in feishu.calls].count("/open-apis/bot/v3/info") == 1
    assert BOT_OPEN_ID in host.manager.slots["feishu"].channel.workspace.get("state/bot")


async def test_redelivered_event_is_handled_once(start_host: StartHost) -> None:
    host = await start_host()
    event = dm("only once")
    for _ in range(2):
        assert (await post_event(host, event))[0] == 200
    assert (await next_message(host)).content == "only once"
    await assert_no_message(host)


async def test_dm_pairing_code_then_approval(start_host: StartHost, feishu: FakeFeishu) -> None:
    host = await start_host(dm_policy="pairing")
    await post_event(host, dm("let me in"))
    await feishu.wait_for("replies", 1)
    pending = host.pairing.pending("feishu")
    assert len(pending) == 1 and pending[0].code in feishu.replies[0]["text"]
    await assert_no_message(host)
    host.pairing.approve("feishu", pending[0].code)
    await post_event(host, dm("now?"))
    assert (await next_message(host)).content == "now?"


# ---- the tenant access token ------------------------------------------------------------------------------------


async def round_trip(host: AirlockHost, text: str) -> None:
    await post_event(host, dm(text))
    msg = await next_message(host)
    out = await host.respond(msg, f"re: {text}")
    assert out.ok, out.error


async def test_token_fetched_once_reused_then_refreshed_after_expiry(start_host: StartHost,
                                                                     feishu: FakeFeishu) -> None:
    feishu.token_ttl_s = 2  # the guest refreshes a quarter of the lifetime early: after 1.5 s
    host = await start_host()
    await round_trip(host, "one")
    await round_trip(host, "two")
    assert len(feishu.token_requests) == 1  # reused from the workspace by a later callback
    assert {c.authorization for c in feishu.calls if c.path.endswith("/reply")} == {
        f"Bearer {feishu.tokens_issued[0]}"}
    await asyncio.sleep(1.7)
    await round_trip(host, "three")
    assert len(feishu.token_requests) == 2
    assert feishu.calls[-1].authorization == f"Bearer {feishu.tokens_issued[1]}"


async def test_token_revoked_by_feishu_is_replaced_once(start_host: StartHost, feishu: FakeFeishu) -> None:
    host = await start_host()
    await round_trip(host, "one")
    feishu.expire_tokens()  # still fresh by the guest's clock, refused by Feishu (code 99991677)
    await round_trip(host, "two")
    assert len(feishu.token_requests) == 2
    codes = [c.code for c in feishu.calls if c.path.endswith("/reply")]
    assert codes == [0, 99991677, 0]


async def test_app_secret_never_written_to_the_workspace_or_logs(
        hosts: Hosts, feishu: FakeFeishu, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host = await hosts.start()
    await round_trip(host, "hello")
    values = host.manager.slots["feishu"].channel.workspace.snapshot()[0]
    token = feishu.tokens_issued[0]
    assert token in values["state/tenant_token"]
    assert not any(feishu.app_secret in v for v in values.values())
    await hosts.stop(host)
    # The durable store on disk holds the cached token (so this reads the right file) and never the secret.
    raw = host.config.state_db.read_bytes()
    for extra in ("-wal", "-journal"):
        side = host.config.state_db.with_name(host.config.state_db.name + extra)
        raw += side.read_bytes() if side.exists() else b""
    assert token.encode() in raw
    assert feishu.app_secret.encode() not in raw
    assert feishu.app_secret not in caplog.text
    # After a restart the cached token is used again: no new token request.
    host = await hosts.start(install=False)
    await round_trip(host, "after restart")
    assert len(feishu.token_requests) == 1


async def test_streamed_reply_is_one_reply_then_paced_edits(start_host: StartHost, feishu: FakeFeishu) -> None:
    """World 0.2.0: the reply returns Feishu's message id; a 12-text stream is one reply, then "edit message" (PUT)
    at most once per second, the final text last."""
    host = await start_host()
    assert host.manager.slots["feishu"].channel.loaded.optional_exports == ("delivery", "edits")
    await post_event(host, dm("stream please"))
    msg = await next_message(host)
    final = "A streamed reply on Feishu: one reply, then edited in place, ending with this sentence."
    elapsed = await streaming_e2e.stream_reply(host, msg, final)
    await feishu.wait_for("replies", 1)
    new_id = feishu.replies[0]["new_id"]
    await streaming_e2e.wait_for_text(lambda: feishu.texts.get(new_id), final)
    await asyncio.sleep(streaming_e2e.EDIT_INTERVAL_S + 0.2)
    assert all(e["message_id"] == new_id and e["msg_type"] == "text" for e in feishu.edits)
    calls = [streaming_e2e.Sent(kind, at, text) for kind, at, _id, text in feishu.timeline]
    streaming_e2e.check_stream(calls, final, elapsed)


async def test_past_the_edit_limit_partials_are_dropped_and_the_final_text_is_a_new_message(
        start_host: StartHost, feishu: FakeFeishu) -> None:
    """Feishu refuses edits past its limit (code 230072): the channel says so for good, the host drops the partial
    texts and sends the final one as a message of its own; nothing is dead-lettered."""
    feishu.max_edits = 1
    host = await start_host()
    await post_event(host, dm("stream please"))
    msg = await next_message(host)
    final = "the whole answer, at last"
    await streaming_e2e.stream_reply(host, msg, final)
    await feishu.wait_for("replies", 2)
    assert feishu.replies[-1]["text"] == final and feishu.replies[-1]["message_id"] == msg.metadata["message_id"]
    assert len(feishu.edits) == 1
    assert any(c.code == 230072 for c in feishu.calls), "the limit was reached"
    assert await asyncio.to_thread(host.log.list_outbox, "failed") == []
