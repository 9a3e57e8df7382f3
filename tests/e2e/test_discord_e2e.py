"""End to end: the real Discord component (Rust) in the real host, against the fake Discord (gateway + REST) on
127.0.0.1. Interactions are signed with PyNaCl (the fake's InteractionSigner) and checked by the host; the gateway
session (HELLO, IDENTIFY with the stored token, heartbeats) is run by the host, dispatches reach the guest."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import streaming_e2e
from channel_e2e import assert_no_message, next_message
from conftest import BUILT_CHANNELS, InstallFn
from fake_discord import FakeDiscord, InteractionSigner

from airlock.channels.socket_runtime import SocketSettings
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.runtime.values import Attachment
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "discord.wasm"
CAPS = BUILT_CHANNELS / "discord.capabilities.json"
USER = "80351110224678912"
DM_CHANNEL = "1200000000000000001"
GUILD = "1300000000000000001"
THREAD = "1300000000000000777"

StartHost = Callable[..., Awaitable[AirlockHost]]


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval_ms=500, expected_intents=4609) as fake:
        yield fake


@pytest.fixture
def signer() -> InteractionSigner:
    return InteractionSigner()


class Backoff:
    """Backoff sleeps of the socket runtime: recorded, and cut to a few milliseconds."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def record(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, 0.005))


@pytest.fixture
def backoff() -> Backoff:
    return Backoff()


@pytest.fixture
async def start_host(airlock_home: Path, install_channel: InstallFn, discord: FakeDiscord,
                     signer: InteractionSigner, backoff: Backoff) -> AsyncIterator[StartHost]:
    """start_host(token=<the fake's>, **config) -> a started host with the Discord channel (stopped at teardown)."""
    hosts: list[AirlockHost] = []

    async def start(*, token: str | None = discord.bot_token, **config: Any) -> AirlockHost:
        install_channel(WASM, CAPS, **{"dm_policy": "open", **config})
        store = SecretStore.open(airlock_home)
        if token is not None:
            store.set("discord_bot_token", token)
        store.set("discord_public_key", signer.public_key_hex)
        overrides = {"gateway.discord.gg": discord.base_url, "discord.com": discord.base_url}
        host = AirlockHost(HostConfig.build(home=airlock_home, listen_port=0, upstream_overrides=overrides),
                           secrets=store)
        # Backoff delays are recorded, not waited for (the real schedule is the runtime's business).
        host.manager.sockets = SocketSettings(upstream_overrides=overrides, sleep=backoff.record, rand=lambda: 0.5)
        hosts.append(host)
        await host.start()
        return host

    yield start
    for host in hosts:
        await host.stop()


def workspace(host: AirlockHost) -> dict[str, str]:
    return host.manager.slots["discord"].channel.workspace.snapshot()[0]


async def gateway_ready(host: AirlockHost, discord: FakeDiscord) -> None:
    """The host identified, READY was dispatched and the guest stored its bot user id."""
    await discord.wait_for(lambda: discord.ready_count >= 1, "READY")
    deadline = time.monotonic() + 10
    while "state/bot_user" not in workspace(host):
        assert time.monotonic() < deadline, "the guest never stored the bot user from READY"
        await asyncio.sleep(0.02)


def endpoint(host: AirlockHost) -> str:
    return f"{host.base_url}/webhook/discord"


def ask(value: str) -> dict[str, Any]:
    return {"id": "1400000000000000001", "name": "ask", "type": 1,
            "options": [{"name": "question", "type": 3, "value": value}]}


# ---- interactions webhook ---------------------------------------------------------------------------------


async def test_ping_is_answered_with_pong(start_host: StartHost, discord: FakeDiscord,
                                          signer: InteractionSigner) -> None:
    host = await start_host()
    status, answer = await discord.deliver_interaction(endpoint(host), discord.new_interaction(type=1), signer)
    assert (status, answer) == (200, {"type": 1})
    await assert_no_message(host, 0.2)


async def test_bad_missing_and_stale_signatures_rejected_before_the_guest(
        start_host: StartHost, discord: FakeDiscord, signer: InteractionSigner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    host = await start_host()
    channel = host.manager.slots["discord"].channel
    calls: list[object] = []
    original = channel.http_request
    # Gateway frames also arrive as requests (POST /__websocket): only webhook calls count here.
    monkeypatch.setattr(channel, "http_request",
                        lambda req: (req.path == "/webhook/discord" and calls.append(req)) or original(req))
    payload = discord.new_interaction(data=ask("sneaky"))
    body = json.dumps(payload).encode()
    forged = InteractionSigner().headers(body)  # a valid signature, by a key that is not the application's
    missing = {"Content-Type": "application/json"}
    tampered = signer.headers(body)
    tampered["X-Signature-Ed25519"] = ("0" if tampered["X-Signature-Ed25519"][0] != "0" else "1") + tampered[
        "X-Signature-Ed25519"][1:]
    for headers in (forged, missing, tampered):
        status, _ = await discord.deliver_interaction(endpoint(host), payload, signer, headers=headers)
        assert status == 401
    stale = str(int(time.time()) - 600)  # correctly signed, ten minutes old
    status, answer = await discord.deliver_interaction(endpoint(host), payload, signer, timestamp=stale)
    assert status == 401 and "sneaky" not in json.dumps(answer)
    assert calls == []
    await assert_no_message(host, 0.3)


async def test_slash_command_is_deferred_then_answered_by_editing(
        start_host: StartHost, discord: FakeDiscord, signer: InteractionSigner) -> None:
    host = await start_host()
    payload = discord.new_interaction(data=ask("what is the weather"), user_id=USER, channel_id=THREAD,
                                      guild_id=GUILD)
    status, answer = await discord.deliver_interaction(endpoint(host), payload, signer)
    assert (status, answer) == (200, {"type": 5})
    msg = await next_message(host)
    assert (msg.channel, msg.content, msg.user_id, msg.user_name) == ("discord", "what is the weather", USER, "alice")
    meta = msg.metadata
    assert meta["application_id"] == discord.application_id and meta["interaction_token"] == payload["token"]
    assert (meta["channel_id"], meta["guild_id"], meta["command"]) == (THREAD, GUILD, "ask")
    long_reply = "first part. " + "x" * 1980 + "\n\n" + "second part"  # 2005 characters: two messages
    out = await host.respond(msg, long_reply)
    assert out.ok, out.error
    interaction = discord.interactions[payload["id"]]
    assert [e["message_id"] for e in interaction.edits] == ["@original"]
    assert interaction.edits[0]["content"].startswith("first part.")
    assert [f["content"] for f in interaction.followups] == ["second part"]
    assert interaction.edits[0]["allowed_mentions"] == {"parse": [], "replied_user": False}


async def test_slash_command_in_dm_from_stranger_gets_ephemeral_pairing_code(
        start_host: StartHost, discord: FakeDiscord, signer: InteractionSigner) -> None:
    host = await start_host(dm_policy="pairing")
    payload = discord.new_interaction(data=ask("hello?"), user_id=USER, channel_id=DM_CHANNEL)
    status, answer = await discord.deliver_interaction(endpoint(host), payload, signer)
    assert status == 200 and answer["type"] == 4 and answer["data"]["flags"] == 64
    pending = host.pairing.pending("discord")
    assert len(pending) == 1 and pending[0].code in answer["data"]["content"]
    await assert_no_message(host, 0.3)
    host.pairing.approve("discord", pending[0].code)
    again = discord.new_interaction(data=ask("now?"), user_id=USER, channel_id=DM_CHANNEL)
    assert (await discord.deliver_interaction(endpoint(host), again, signer)) == (200, {"type": 5})
    assert (await next_message(host)).content == "now?"


# ---- gateway ------------------------------------------------------------------------------------------------


async def test_gateway_identify_ready_dm_round_trip(start_host: StartHost, discord: FakeDiscord) -> None:
    host = await start_host()
    await gateway_ready(host, discord)
    identify = discord.connections[0].identify
    assert identify is not None and identify["token"] == discord.bot_token and identify["intents"] == 4609
    assert json.loads(workspace(host)["state/bot_user"])["id"] == discord.bot_user["id"]
    assert discord.bot_token not in json.dumps(workspace(host))  # the token never reached the guest
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("hello bot", author_id=USER,
                                                                    channel_id=DM_CHANNEL))
    msg = await next_message(host)
    assert (msg.content, msg.user_id, msg.thread_id) == ("hello bot", USER, None)
    assert msg.metadata["channel_id"] == DM_CHANNEL and msg.metadata["is_group"] is False
    assert (await host.send_status(msg, "thinking")).ok
    out = await host.respond(msg, "hi alice")
    assert out.ok, out.error
    await discord.wait_for(lambda: len(discord.messages) == 1, "the reply")
    reply = discord.messages[0]
    assert (reply["channel_id"], reply["content"]) == (DM_CHANNEL, "hi alice")
    assert "message_reference" not in reply
    assert DM_CHANNEL in discord.typing
    sent = [r for r in discord.requests if r.path.endswith("/messages") and r.method == "POST"]
    assert sent[0].headers["Authorization"] == f"Bot {discord.bot_token}"  # injected by the host


async def test_reply_files_sent_as_multipart(start_host: StartHost, discord: FakeDiscord) -> None:
    """Reply attachments (``messages.reply_files``): one message with the text and ``files[n]``, exact bytes."""
    host = await start_host()
    await gateway_ready(host, discord)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("files?", author_id=USER, channel_id=DM_CHANNEL))
    msg = await next_message(host)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000) + b"--airlock-discord-0000000000000000"
    pdf = b"%PDF-1.4\n" + os.urandom(3000)
    files = [Attachment("chart.png", "image/png", png), Attachment("report.pdf", "application/pdf", pdf)]
    out = await host.respond(msg, "two files", attachments=files)
    assert out.ok, out.error
    [reply] = discord.messages
    assert (reply["channel_id"], reply["content"]) == (DM_CHANNEL, "two files")
    assert [a["filename"] for a in reply["attachments"]] == ["chart.png", "report.pdf"]
    assert [(f["index"], f["filename"], f["content_type"], f["data"], f["message_id"]) for f in discord.files] == [
        (0, "chart.png", "image/png", png, reply["id"]), (1, "report.pdf", "application/pdf", pdf, reply["id"])]


async def test_guild_mentions_only_and_threads_kept(start_host: StartHost, discord: FakeDiscord) -> None:
    host = await start_host()
    await gateway_ready(host, discord)
    bot_id = discord.bot_user["id"]
    await discord.dispatch("MESSAGE_CREATE", discord.message_create(
        "chatter among humans", author_id=USER, channel_id=THREAD, guild_id=GUILD))
    mention = discord.message_create(f"<@{bot_id}> what time is it", author_id=USER, channel_id=THREAD,
                                     guild_id=GUILD, mentions=[{"id": bot_id, "username": "airlock-test"}])
    await discord.dispatch("MESSAGE_CREATE", mention)
    msg = await next_message(host)
    assert (msg.content, msg.thread_id) == ("what time is it", THREAD)
    assert msg.metadata["guild_id"] == GUILD and msg.metadata["message_id"] == mention["id"]
    await assert_no_message(host, 0.3)  # the message without a mention was not emitted
    assert (await host.respond(msg, "noon")).ok
    await discord.wait_for(lambda: len(discord.messages) == 1, "the reply")
    reply = discord.messages[0]
    assert reply["channel_id"] == THREAD
    assert reply["message_reference"] == {"message_id": mention["id"], "fail_if_not_exists": False}


async def test_bot_and_own_messages_ignored(start_host: StartHost, discord: FakeDiscord) -> None:
    host = await start_host()
    await gateway_ready(host, discord)
    bot_id = discord.bot_user["id"]
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("beep", author_id="999", author_bot=True,
                                                                    channel_id=DM_CHANNEL))
    await discord.dispatch("MESSAGE_CREATE", discord.message_create(f"<@{bot_id}> echo", author_id=bot_id,
                                                                    channel_id=THREAD, guild_id=GUILD))
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("real person", author_id=USER,
                                                                    channel_id=DM_CHANNEL))
    # Frames are delivered in order: once the third is emitted, the first two were seen and dropped.
    assert (await next_message(host)).content == "real person"
    await assert_no_message(host, 0.3)


async def test_dm_pairing_code_sent_by_rest_then_approval_admits(start_host: StartHost,
                                                                  discord: FakeDiscord) -> None:
    host = await start_host(dm_policy="pairing")
    await gateway_ready(host, discord)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("let me in", author_id=USER,
                                                                    channel_id=DM_CHANNEL))
    await discord.wait_for(lambda: len(discord.messages) == 1, "the pairing code")
    pending = host.pairing.pending("discord")
    assert len(pending) == 1 and pending[0].code in discord.messages[0]["content"]
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("again", author_id=USER, channel_id=DM_CHANNEL))
    await assert_no_message(host, 0.5)
    assert len(discord.messages) == 1  # the code is sent once
    host.pairing.approve("discord", pending[0].code)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("now?", author_id=USER, channel_id=DM_CHANNEL))
    assert (await next_message(host)).content == "now?"


async def test_broadcast_opens_a_dm(start_host: StartHost, discord: FakeDiscord) -> None:
    host = await start_host()
    out = await host.broadcast("discord", USER, "scheduled hello")
    assert out.ok, out.error
    assert discord.messages[0]["channel_id"] == discord.dm_channels[USER]
    assert discord.messages[0]["content"] == "scheduled hello"


async def test_without_a_token_the_gateway_is_never_opened(start_host: StartHost, discord: FakeDiscord,
                                                           signer: InteractionSigner) -> None:
    host = await start_host(token=None)
    await asyncio.sleep(0.5)
    assert discord.connections == []
    slot = host.manager.slots["discord"]
    assert not slot.active and "discord_bot_token" in slot.reason  # said in the log and `channels list`
    status, _ = await discord.deliver_interaction(endpoint(host), discord.new_interaction(type=1), signer)
    assert status == 404  # an inactive channel has no endpoint


async def socket_state(host: AirlockHost) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{host.base_url}/health/discord") as r:
        doc: dict[str, Any] = await r.json()
        return doc


async def test_resumable_close_reconnects_and_messages_keep_flowing(start_host: StartHost, discord: FakeDiscord,
                                                                    backoff: Backoff) -> None:
    host = await start_host()
    await gateway_ready(host, discord)
    await discord.close_current(4000)
    await discord.wait_for(lambda: discord.resume_count == 1 and discord.current is not None, "RESUME")
    assert discord.identify_count == 1 and len(backoff.delays) == 1  # one backoff, then resumed (no new IDENTIFY)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("after resume", author_id=USER,
                                                                    channel_id=DM_CHANNEL))
    msg = await next_message(host)
    assert msg.content == "after resume"
    assert (await host.respond(msg, "still here")).ok
    await discord.wait_for(lambda: len(discord.messages) == 1, "the reply")


async def test_authentication_failure_stops_the_gateway_without_a_storm(start_host: StartHost, discord: FakeDiscord,
                                                                        backoff: Backoff) -> None:
    host = await start_host(token="not-the-bot-token")
    for _ in range(500):
        doc = await socket_state(host)
        if doc["websocket"]["state"] == "stopped":
            break
        await asyncio.sleep(0.02)
    assert doc["websocket"]["state"] == "stopped" and "4004" in doc["websocket"]["reason"]
    await asyncio.sleep(0.5)  # with the cut backoff, a retrying runtime would reconnect dozens of times
    assert len(discord.connections) == 1 and backoff.delays == []
    assert "not-the-bot-token" not in json.dumps(doc)


async def test_streamed_reply_is_one_message_then_paced_patches(start_host: StartHost, discord: FakeDiscord) -> None:
    """World 0.2.0: a gateway DM's reply returns the message id; a 12-text stream is one POST, then PATCH of that
    message at most once per second, the final text last."""
    host = await start_host()
    assert host.manager.slots["discord"].channel.loaded.optional_exports == ("delivery", "edits")
    await gateway_ready(host, discord)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("stream please", author_id=USER,
                                                                    channel_id=DM_CHANNEL))
    msg = await next_message(host)
    final = "A streamed reply on Discord: posted once, then patched in place, and this is its end."
    elapsed = await streaming_e2e.stream_reply(host, msg, final)
    await discord.wait_for(lambda: len(discord.messages) == 1, "the first text")
    message_id = discord.messages[0]["id"]
    await streaming_e2e.wait_for_text(lambda: discord.messages[0]["content"], final)
    await asyncio.sleep(streaming_e2e.EDIT_INTERVAL_S + 0.2)
    assert all(e["message_id"] == message_id and e["channel_id"] == DM_CHANNEL for e in discord.edits)
    assert all(e["allowed_mentions"] == {"parse": [], "replied_user": False} for e in discord.edits)
    calls = [streaming_e2e.Sent(kind, at, text) for kind, at, _id, text in discord.timeline]
    streaming_e2e.check_stream(calls, final, elapsed)
