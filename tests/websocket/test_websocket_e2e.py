"""End to end through the real host and real components: the probe guest (Python, componentize-py) on the fake
Discord gateway, and the WAT guest (near:agent world) on a generic websocket. Backoff sleeps are injected and
recorded (``ws_support.Sleeps``), so no test waits for a real backoff delay."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from conftest import REPO, InstallFn, cli_logging_restored, minimal_caps
from fake_base import serving
from fake_discord import DEFAULT_TOKEN, FakeDiscord
from typer.testing import CliRunner
from ws_support import DISCORD_WS, Sleeps, discord, fast_settings, sleeps

from airlock import cli
from airlock.agents.delivery import Delivery
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore

__all__ = ["discord", "sleeps"]  # fixtures used below

pytestmark = pytest.mark.e2e

PROBE = REPO / "build" / "test-guests"
PRESENCE = '{"op":3,"d":{"since":null,"activities":[],"status":"idle","afk":false}}'

StartHost = Callable[..., Awaitable[AirlockHost]]


def probe_caps(ws: dict[str, Any] | None = DISCORD_WS, **extra: Any) -> dict[str, Any]:
    caps: dict[str, Any] = json.loads((PROBE / "probe.capabilities.json").read_text())
    if ws is not None:
        caps["capabilities"]["websocket"] = ws
    caps.update(extra)
    return caps


@pytest.fixture
async def start_host(airlock_home: Path, install_channel: InstallFn, discord: FakeDiscord,
                     sleeps: Sleeps) -> AsyncIterator[StartHost]:
    """start_host(caps=probe_caps(), token=DEFAULT_TOKEN, wasm=probe) -> a started host (stopped at teardown)."""
    hosts: list[AirlockHost] = []

    async def start(caps: dict[str, Any] | None = None, token: str | None = DEFAULT_TOKEN,
                    wasm: Path = PROBE / "probe.wasm", overrides: dict[str, str] | None = None,
                    secrets: dict[str, str] | None = None) -> AirlockHost:
        install_channel(wasm, caps if caps is not None else probe_caps())
        store = SecretStore.open(airlock_home)
        if token is not None:
            store.set("discord_bot_token", token)
        for name, value in (secrets or {}).items():
            store.set(name, value)
        config = HostConfig.build(home=airlock_home, listen_port=0, upstream_overrides=overrides or {
            "gateway.discord.gg": discord.base_url, "discord.com": discord.base_url})
        host = AirlockHost(config, secrets=store)
        host.manager.sockets = fast_settings(config.upstream_overrides, sleeps)
        hosts.append(host)
        await host.start()
        return host

    yield start
    for host in hosts:
        await host.stop()


async def next_message(host: AirlockHost, timeout: float = 30.0) -> Delivery:
    return await asyncio.wait_for(host.next_message(), timeout)


async def health(host: AirlockHost, channel: str = "probe") -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{host.base_url}/health/{channel}") as r:
        doc: dict[str, Any] = await r.json()
        return doc


async def wait_socket_state(host: AirlockHost, state: str, channel: str = "probe") -> dict[str, Any]:
    for _ in range(1000):
        doc = await health(host, channel)
        if doc["websocket"]["state"] == state:
            return doc
        await asyncio.sleep(0.02)
    raise AssertionError(f"websocket never reached {state}: {doc}")


def airlock_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("airlock"))


async def test_identify_ready_message_create_and_guest_send(
        start_host: StartHost, discord: FakeDiscord, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host = await start_host()
    ready = await next_message(host)
    frame = json.loads(ready.content)
    assert frame["op"] == 0 and frame["t"] == "READY" and frame["d"]["user"]["id"] == discord.bot_user["id"]
    assert ready.metadata["source"] == "websocket" and ready.metadata["validated"] is True
    assert ready.metadata["method"] == "POST" and ready.metadata["content_type"] == "application/json"
    assert discord.connections[0].identify is not None
    assert discord.connections[0].identify["token"] == DEFAULT_TOKEN  # the host identified, not the guest

    await discord.dispatch("MESSAGE_CREATE", discord.message_create("ws-send:" + PRESENCE))
    got = await next_message(host)
    assert json.loads(got.content)["t"] == "MESSAGE_CREATE"
    await discord.wait_for(lambda: bool(discord.connections[0].commands), "the guest's op 3")
    assert discord.connections[0].commands == [json.loads(PRESENCE)]

    await discord.dispatch("MESSAGE_CREATE", discord.message_create('ws-send:{"op":2,"d":{"token":"x"}}'))
    await next_message(host)
    refused = await next_message(host)
    assert refused.content.startswith("send failed:") and "sent by the host" in refused.content

    doc = await health(host)
    assert doc["active"] is True and doc["websocket"]["state"] == "connected"
    assert doc["websocket"]["protocol"] == "discord" and doc["websocket"]["connections"] == 1
    assert doc["websocket"]["frames_out"] == 1
    assert DEFAULT_TOKEN not in airlock_log(caplog) and DEFAULT_TOKEN not in json.dumps(doc)


async def test_frames_reach_the_guest_in_order(start_host: StartHost, discord: FakeDiscord) -> None:
    host = await start_host()
    await next_message(host)  # READY
    for i in range(40):
        await discord.dispatch("MESSAGE_CREATE", discord.message_create(f"n{i}"))
    got = [json.loads((await next_message(host)).content) for _ in range(40)]
    assert [g["d"]["content"] for g in got] == [f"n{i}" for i in range(40)]
    assert [g["s"] for g in got] == list(range(2, 42))
    assert (await health(host))["failures"] == 0


async def test_resumable_close_reconnects_with_backoff_and_resumes(
        start_host: StartHost, discord: FakeDiscord, sleeps: Sleeps) -> None:
    host = await start_host()
    await next_message(host)  # READY
    await discord.close_current(4000)
    resumed = await next_message(host)
    assert json.loads(resumed.content)["t"] == "RESUMED"
    assert len(discord.connections) == 2 and discord.resume_count == 1 and discord.identify_count == 1
    assert discord.connections[1].resume is not None and discord.connections[1].resume["seq"] == 1
    assert sleeps.delays == [0.5]  # full jitter (rand 0.5) on attempt 0: 0.5 * 1 s
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("after resume"))
    assert json.loads((await next_message(host)).content)["d"]["content"] == "after resume"
    doc = await health(host)
    assert doc["websocket"]["connections"] == 2 and "4000" in doc["websocket"]["last_close"]
    assert host.observer is not None  # /metrics reads the same socket status
    metrics = host.observer.metrics.exposition().decode()
    assert 'airlock_websocket_state{channel="probe",state="connected"} 1.0' in metrics
    assert 'airlock_websocket_state{channel="probe",state="backoff"} 0.0' in metrics
    assert 'airlock_websocket_reconnects_total{channel="probe"} 1.0' in metrics
    assert 'airlock_websocket_connections_total{channel="probe"} 2.0' in metrics


async def test_disabling_the_channel_closes_its_socket_and_enabling_opens_a_new_one(
        start_host: StartHost, discord: FakeDiscord) -> None:
    host = await start_host()
    await next_message(host)  # READY
    await host.manager.disable("probe")
    doc = await health(host)
    assert doc["active"] is False and doc["websocket"]["state"] == "stopped"
    await asyncio.sleep(0.3)
    assert len(discord.connections) == 1  # closed, and no reconnect while disabled
    with pytest.raises(AssertionError, match="no session"):
        await discord.dispatch("MESSAGE_CREATE", discord.message_create("while disabled"))
    await host.manager.enable("probe")
    assert json.loads((await next_message(host)).content)["t"] == "READY"  # a fresh IDENTIFY
    assert len(discord.connections) == 2 and discord.identify_count == 2
    assert (await wait_socket_state(host, "connected"))["active"] is True


async def test_authentication_failed_stops_and_reports_without_a_reconnect_storm(
        start_host: StartHost, discord: FakeDiscord, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    host = await start_host(token="not-the-bot-token")
    doc = await wait_socket_state(host, "stopped")
    await asyncio.sleep(0.5)  # a retrying runtime would have reconnected ~100 times with the test backoff
    assert len(discord.connections) == 1 and sleeps.delays == []
    assert discord.connections[0].server_close_code == 4004
    assert "4004" in doc["websocket"]["reason"] and "authentication failed" in doc["websocket"]["reason"]
    assert doc["active"] is True  # the channel's webhooks keep working; only the socket stopped
    assert any(r.levelno == logging.ERROR and "4004" in r.getMessage() for r in caplog.records)
    assert "not-the-bot-token" not in airlock_log(caplog)


async def test_no_token_stored_never_opens_the_socket(
        start_host: StartHost, discord: FakeDiscord, airlock_home: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    host = await start_host(token=None)
    await asyncio.sleep(0.5)
    assert discord.connections == [] and discord.refused_upgrades == 0
    doc = await health(host)
    assert doc["active"] is True and doc["websocket"]["state"] == "not-started"
    assert "missing secret discord_bot_token" in doc["websocket"]["reason"]
    assert "missing secret discord_bot_token" in airlock_log(caplog)

    monkeypatch.setenv("AIRLOCK_HOME", str(airlock_home))
    monkeypatch.setenv("COLUMNS", "250")
    with cli_logging_restored():
        result = CliRunner().invoke(cli.app, ["channels", "list"])
    assert result.exit_code == 0, result.output
    assert "websocket not opened: missing secret discord_bot_token" in " ".join(result.output.split())


async def test_inactive_channel_never_opens_the_socket(start_host: StartHost, discord: FakeDiscord) -> None:
    setup = {"required_secrets": [{"name": "discord_bot_token", "prompt": "token"}]}
    host = await start_host(caps=probe_caps(setup=setup), token=None)
    await asyncio.sleep(0.3)
    doc = await health(host)
    assert doc["active"] is False and doc["websocket"]["state"] == "not-started"
    assert discord.connections == []


async def test_host_stop_is_clean(start_host: StartHost, discord: FakeDiscord,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    host = await start_host()
    await next_message(host)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("pending at shutdown"))
    await host.stop()
    await discord.wait_for(lambda: discord.connections[0].closed, "close seen by the gateway")
    assert discord.connections[0].client_close_code == 1000
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("ws-")] == []
    gc.collect()
    await asyncio.sleep(0.05)
    assert "Task was destroyed" not in caplog.text and "Unclosed" not in caplog.text
    assert host.manager.slots["probe"].socket is not None
    assert host.manager.slots["probe"].socket.status.state == "stopped"


@pytest.fixture
async def stream_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A generic websocket platform: records the identify frame, then sends 25 numbered text frames and echoes
    anything the client sends back as ``echo:<text>``."""
    seen: dict[str, Any] = {"identify": None, "received": [], "connections": 0}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seen["connections"] += 1
        first = await ws.receive()
        seen["identify"] = json.loads(first.data) if first.type == WSMsgType.TEXT else None
        for i in range(25):
            await ws.send_str(f"frame-{i}")
        await ws.send_bytes(b"\x00binary frames are not for the guest")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                seen["received"].append(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/stream", handler)
    async with serving(app, access_log=None) as url:
        yield url, seen


async def test_generic_socket_reaches_a_near_world_guest_in_order(
        start_host: StartHost, stream_server: tuple[str, dict[str, Any]]) -> None:
    """A near:agent component takes frames from its workspace event queue on on-poll (channels.event_queue); the
    compat guest (tests/guests/compat) emits each frame of the batch as a message."""
    base, seen = stream_server
    wasm = PROBE / "compat.wasm"
    caps = minimal_caps("stream")
    caps["wit_version"] = "0.3.1"
    caps["config"]["compat_name"] = "stream"
    caps["capabilities"]["websocket"] = {
        "url": "wss://stream.example.com/stream", "connect_on_start": True, "identify_secret_name": "stream_key",
        "identify": {"type": "hello", "_doc": "key goes where the placeholder is", "key": "Key {STREAM_KEY}"},
        "heartbeat_interval_ms": 5000,
    }
    host = await start_host(caps=caps, token=None, wasm=wasm, overrides={"stream.example.com": base},
                            secrets={"stream_key": "k-123"})
    got = [(await next_message(host)) for _ in range(25)]
    assert [m.content for m in got] == [f"frame-{i}" for i in range(25)]
    assert seen["identify"] == {"type": "hello", "key": "Key k-123"} and seen["connections"] == 1
    doc = await health(host, "stream")
    assert doc["world"].startswith("near:agent") and doc["websocket"]["protocol"] == "generic"
    assert doc["websocket"]["frames_in"] == 25  # the binary frame was not forwarded
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(host.next_message(), 0.3)
