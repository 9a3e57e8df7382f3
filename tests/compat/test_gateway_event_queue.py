"""near:agent conformance: websocket frames reach the guest through the workspace event queue and on-poll.

IronClaw's contract (``src/channels/wasm/wrapper.rs``, ``host.rs``): the host appends each frame's raw text to a JSON
array at ``state/gateway_event_queue`` (at most 100, oldest dropped), moves it to
``state/gateway_event_queue_processing`` and calls on-poll; the guest reads that batch and clears it. Its Discord
channel parses every ``/__websocket`` request as an interaction, so without this contract no DM gets through.
Airlock's own world keeps one ``/__websocket`` request per frame (tests/websocket/test_websocket_e2e.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from compat_support import COMPAT_WASM, next_message, running
from conftest import InstallFn
from fake_discord import DEFAULT_TOKEN, FakeDiscord

from airlock.capabilities.workspace import Workspace
from airlock.channels.event_queue import (
    BATCH_PATH,
    MAX_QUEUE_BYTES,
    MAX_QUEUE_ITEMS,
    QUEUE_PATH,
    append_frame,
    take_batch,
)
from airlock.messages.sqlite import SqliteMessageLog

pytestmark = pytest.mark.e2e


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval_ms=5000) as fake:
        yield fake


def discord_caps() -> dict[str, Any]:
    from compat_support import ironclaw_caps

    return ironclaw_caps("discord", dm_policy="open")


async def test_a_discord_dm_reaches_a_near_agent_guest_through_the_queue(
        airlock_home: Path, install_channel: InstallFn, discord: FakeDiscord) -> None:
    secrets = {"discord_bot_token": DEFAULT_TOKEN, "discord_public_key": "ab" * 32}
    upstream = {"gateway.discord.gg": discord.base_url, "discord.com": discord.base_url}
    async with running(airlock_home, install_channel, discord_caps(), secrets=secrets, upstream=upstream) as host:
        await discord.wait_for(lambda: discord.ready_count == 1, "READY")
        await discord.dispatch("MESSAGE_CREATE", discord.message_create("hello from a DM", author_id="42"))
        got = await next_message(host)
        assert (got.user_id, got.content, got.channel) == ("42", "hello from a DM", "discord")
        slot = host.manager.slots["discord"]
        ws = slot.channel.workspace
        assert ws.get(QUEUE_PATH) == "[]" and ws.get(BATCH_PATH) == "[]"  # moved by the host, cleared by the guest
        assert slot.event_queue is not None and slot.event_queue.polls >= 1
        assert slot.socket is not None and slot.socket.status.frames_dropped == 0


@pytest.fixture
async def burst_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A generic websocket platform that sends ``n`` numbered frames (``?n=``) as fast as it can, then idles."""
    seen: dict[str, Any] = {"connections": 0}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seen["connections"] += 1
        for i in range(int(request.query.get("n", "0"))):
            await ws.send_str(f"frame-{i}")
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
        return ws

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


def stream_caps(frames: int, **channel: Any) -> dict[str, Any]:
    chan = {"allowed_paths": ["/webhook/stream"], "emit_rate_limit": {"messages_per_minute": 1000}, **channel}
    return {"name": "stream", "version": "0.1.0", "wit_version": "0.3.1",
            "capabilities": {"channel": chan, "websocket": {
                "url": f"wss://stream.example.com/stream?n={frames}", "connect_on_start": True}},
            "config": {"dm_policy": "open", "compat_name": "stream"}}


async def test_a_burst_larger_than_the_queue_arrives_in_order_and_whole(
        airlock_home: Path, install_channel: InstallFn, burst_server: tuple[str, dict[str, Any]]) -> None:
    """Delivery waits while the queue holds its 100 frames, so a burst slows reading instead of losing frames."""
    base, _ = burst_server
    total = MAX_QUEUE_ITEMS + 60
    async with running(airlock_home, install_channel, stream_caps(total), secrets={},
                       upstream={"stream.example.com": base}) as host:
        got = [await next_message(host) for _ in range(total)]
        assert [m.content for m in got] == [f"frame-{i}" for i in range(total)]
        assert all(m.user_id == "frame" and m.metadata["batch"] <= MAX_QUEUE_ITEMS for m in got)
        slot = host.manager.slots["stream"]
        assert slot.socket is not None and slot.socket.status.frames_dropped == 0
        assert slot.event_queue is not None and 2 <= slot.event_queue.polls < total  # batched, not one per frame


async def test_a_durable_queue_left_by_the_last_run_is_handed_over_at_start(
        airlock_home: Path, install_channel: InstallFn, burst_server: tuple[str, dict[str, Any]]) -> None:
    base, _ = burst_server
    store = SqliteMessageLog(airlock_home / "state.db")
    store.commit("stream", {QUEUE_PATH: json.dumps(["left-1", "left-2"])}, [], time.time())
    store.close()
    caps = stream_caps(0, durable_workspace_paths=["state/"])
    async with running(airlock_home, install_channel, caps, secrets={}, upstream={"stream.example.com": base}) as host:
        got = [await next_message(host) for _ in range(2)]
        assert [m.content for m in got] == ["left-1", "left-2"] and got[0].metadata["batch"] == 2
        await asyncio.sleep(0.05)
    store = SqliteMessageLog(airlock_home / "state.db")
    saved = store.load_workspace("stream")
    store.close()
    assert saved[QUEUE_PATH] == "[]" and saved[BATCH_PATH] == "[]"  # the move and the guest's clear were durable


def test_the_queue_is_bounded_in_frames_and_bytes_oldest_dropped() -> None:
    ws = Workspace("q")
    results = [append_frame(ws, f"f{i}") for i in range(MAX_QUEUE_ITEMS + 5)]
    assert results[MAX_QUEUE_ITEMS - 1] == (MAX_QUEUE_ITEMS, 0)
    assert results[-1] == (MAX_QUEUE_ITEMS, 1)
    assert json.loads(ws.get(QUEUE_PATH) or "")[:2] == ["f5", "f6"]

    ws = Workspace("q")
    big = "x" * (MAX_QUEUE_BYTES // 3)
    assert append_frame(ws, big) == (1, 0) and append_frame(ws, big) == (2, 0)
    assert append_frame(ws, big) == (2, 1)  # three would be over 1 MiB of JSON: the oldest goes
    assert len((ws.get(QUEUE_PATH) or "").encode()) <= MAX_QUEUE_BYTES
    assert append_frame(ws, "y" * MAX_QUEUE_BYTES) == (2, 1)  # too big by itself: only it is dropped
    assert json.loads(ws.get(QUEUE_PATH) or "") == [big, big]


def test_take_batch_moves_the_queue_and_reports_an_unconsumed_batch() -> None:
    ws = Workspace("q")
    assert take_batch(ws) == (0, 0) and ws.get(BATCH_PATH) is None  # nothing queued: nothing written
    append_frame(ws, '{"op":0,"t":"MESSAGE_CREATE"}')
    append_frame(ws, "two")
    assert take_batch(ws) == (2, 0)
    assert json.loads(ws.get(BATCH_PATH) or "") == ['{"op":0,"t":"MESSAGE_CREATE"}', "two"]  # raw frame texts
    assert ws.get(QUEUE_PATH) == "[]"
    append_frame(ws, "three")
    assert take_batch(ws) == (1, 2)  # the guest never cleared the first batch: it is replaced, and counted
    assert json.loads(ws.get(BATCH_PATH) or "") == ["three"]


def test_the_compat_guest_is_built() -> None:
    assert COMPAT_WASM.is_file(), "make test-guests builds tests/guests/compat"
