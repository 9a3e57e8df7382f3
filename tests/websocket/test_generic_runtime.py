"""The generic driver and the runtime's limits against small local websocket servers: identify with the
secret placed by the host, websocket-level pings, the inbound frame size limit, binary frames, and
Discord's HELLO deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from fake_base import serving
from ws_support import DISCORD_WS, HarnessFactory, Sleeps, fast_settings, harness, sleeps

from airlock.channels import discord_gateway
from airlock.channels.socket_base import MAX_INBOUND_FRAME_BYTES

__all__ = ["harness", "sleeps"]  # fixtures used below

Handler = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]
HOST = "stream.example.com"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[tuple[str, dict[str, Any]]]]]:
    servers = contextlib.AsyncExitStack()

    async def start(handler: Handler, *, autoping: bool = True) -> tuple[str, dict[str, Any]]:
        seen: dict[str, Any] = {"connections": 0, "frames": []}

        async def endpoint(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(autoping=autoping)
            await ws.prepare(request)
            seen["connections"] += 1
            await handler(ws, seen)
            return ws

        app = web.Application()
        app.router.add_get("/ws", endpoint)
        return await servers.enter_async_context(serving(app, access_log=None)), seen

    async with servers:
        yield start


def generic(**kw: Any) -> dict[str, Any]:
    return {"url": f"wss://{HOST}/ws?room=1", "connect_on_start": True, **kw}


async def record_until_closed(ws: web.WebSocketResponse, seen: dict[str, Any]) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            seen["frames"].append(msg.data)


async def test_identify_gets_the_secret_and_frames_flow_both_ways(
        serve: Any, harness: HarnessFactory, sleeps: Sleeps) -> None:
    async def handler(ws: web.WebSocketResponse, seen: dict[str, Any]) -> None:
        await ws.send_str("one")
        await ws.send_bytes(b"\x01\x02")
        await ws.send_str("two")
        await record_until_closed(ws, seen)

    base, seen = await serve(handler)
    spec = generic(identify_secret_name="room_key", identify={"op": "auth", "key": "{ROOM_KEY}", "_note": "x"})
    h = harness(spec, fast_settings({HOST: base}, sleeps), secrets={"room_key": "rk-9"})
    assert await h.runtime.start()
    await h.wait_frames(2)
    assert h.frames == ["one", "two"]  # binary dropped
    await asyncio.to_thread(h.capability.send_text, "from the guest")
    await asyncio.sleep(0.1)
    assert seen["frames"] == ['{"op":"auth","key":"rk-9"}', "from the guest"]
    assert h.runtime.status.protocol == "generic" and h.runtime.status.frames_out == 1


async def test_missing_identify_secret_never_connects(serve: Any, harness: HarnessFactory, sleeps: Sleeps) -> None:
    base, seen = await serve(record_until_closed)
    h = harness(generic(identify_secret_name="room_key", identify={"key": "{ROOM_KEY}"}),
                fast_settings({HOST: base}, sleeps), secrets={})
    assert not await h.runtime.start()
    await asyncio.sleep(0.2)
    assert seen["connections"] == 0 and h.runtime.status.state == "not-started"
    assert "missing secret room_key" in h.runtime.status.reason


async def test_unanswered_pings_drop_the_connection_and_reconnect(
        serve: Any, harness: HarnessFactory, sleeps: Sleeps) -> None:
    async def silent(ws: web.WebSocketResponse, seen: dict[str, Any]) -> None:
        await asyncio.sleep(5)  # never reads, so never answers a ping

    base, seen = await serve(silent, autoping=False)
    h = harness(generic(heartbeat_interval_ms=100), fast_settings({HOST: base}, sleeps))
    await h.runtime.start()
    for _ in range(300):
        if seen["connections"] >= 2:
            break
        await asyncio.sleep(0.01)
    assert seen["connections"] >= 2 and sleeps.delays


async def test_frames_over_the_inbound_limit_are_not_delivered(
        serve: Any, harness: HarnessFactory, sleeps: Sleeps) -> None:
    async def big(ws: web.WebSocketResponse, seen: dict[str, Any]) -> None:
        if seen["connections"] == 1:
            await ws.send_str("x" * (MAX_INBOUND_FRAME_BYTES + 1))
        else:
            await ws.send_str("x" * MAX_INBOUND_FRAME_BYTES)
        await record_until_closed(ws, seen)

    base, seen = await serve(big)
    h = harness(generic(), fast_settings({HOST: base}, sleeps))
    await h.runtime.start()
    await h.wait_frames(1)
    assert len(h.frames[0]) == MAX_INBOUND_FRAME_BYTES == 4 * 1024 * 1024
    assert seen["connections"] == 2 and "1009" in (h.runtime.status.last_close or "")


async def test_discord_without_hello_gives_up_on_the_connection(
        serve: Any, harness: HarnessFactory, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord_gateway, "HELLO_TIMEOUT_S", 0.2)

    async def mute(ws: web.WebSocketResponse, seen: dict[str, Any]) -> None:
        await record_until_closed(ws, seen)

    base, seen = await serve(mute)
    h = harness({**DISCORD_WS, "url": f"wss://{HOST}/ws", "protocol": "discord"},
                fast_settings({HOST: base}, sleeps))
    await h.runtime.start()
    for _ in range(300):
        if seen["connections"] >= 2:
            break
        await asyncio.sleep(0.01)
    assert seen["connections"] >= 2 and "no HELLO" in (h.runtime.status.last_close or "")
    assert seen["frames"] == []  # nothing, in particular no IDENTIFY, was sent before HELLO


async def test_discord_first_frame_must_be_hello(serve: Any, harness: HarnessFactory, sleeps: Sleeps) -> None:
    async def wrong(ws: web.WebSocketResponse, seen: dict[str, Any]) -> None:
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": 1, "d": {}}))
        await record_until_closed(ws, seen)

    base, seen = await serve(wrong)
    h = harness({**DISCORD_WS, "url": f"wss://{HOST}/ws", "protocol": "discord"},
                fast_settings({HOST: base}, sleeps))
    await h.runtime.start()
    for _ in range(300):
        if sleeps.delays:
            break
        await asyncio.sleep(0.01)
    assert h.frames == [] and seen["frames"] == []
    assert "not HELLO" in (h.runtime.status.last_close or "")
