"""The ``wecom_aibot`` websocket protocol (IronClaw's wecom file), and what happens to a protocol the host lacks.

End to end: IronClaw's own wecom capabilities file, the compat guest (near:agent) and a fake WeCom long connection
on 127.0.0.1 (``tests/fakes/fake_wecom_ws.py``): the host subscribes with the bot id and secret from the secret
store, pings, hands the message callback to the guest through the event queue, and carries the guest's
``aibot_respond_msg`` back. The runtime cases (refusals, a dead connection, ``disconnected_event``) drive the real
``SocketRuntime`` against the same fake, with recorded backoff sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from compat_support import ironclaw_caps, next_message, running, start_config_of
from conftest import InstallFn
from fake_wecom_ws import FakeWecomWs
from typer.testing import CliRunner

from airlock import cli
from airlock.capabilities.websocket import WebsocketCapability
from airlock.channels.socket_runtime import SocketRuntime, SocketSettings
from airlock.channels.wecom_socket import MAX_SUBSCRIBE_REFUSALS, WecomDriver
from airlock.manifest import WebsocketCapability as WebsocketSpec
from airlock.runtime.linker import GuestFault

pytestmark = pytest.mark.e2e

WECOM_HOST = "openws.work.weixin.qq.com"


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWecomWs]:
    async with FakeWecomWs() as fake:
        yield fake


def wecom_caps(**config: Any) -> dict[str, Any]:
    caps = ironclaw_caps("wecom", dm_policy="open", **config)
    caps["capabilities"]["websocket"]["heartbeat_interval_ms"] = 150  # so the test sees pings
    return caps


async def test_wecom_message_and_reply_through_the_host(
        airlock_home: Path, install_channel: InstallFn, wecom: FakeWecomWs) -> None:
    secrets = {"wecom_bot_id": wecom.bot_id, "wecom_bot_secret": wecom.secret}
    async with running(airlock_home, install_channel, wecom_caps(), secrets=secrets,
                       upstream={WECOM_HOST: wecom.base_url}) as host:
        await wecom.wait_for(lambda: len(wecom.connections) == 1, "subscribe")
        assert wecom.connections[0] == {"bot_id": wecom.bot_id, "secret": wecom.secret}
        req_id = await wecom.push_text("hello wecom", userid="alice")
        got = await next_message(host)
        assert (got.user_id, got.content, got.metadata["ws_req_id"]) == ("alice", "hello wecom", req_id)
        out = await host.respond(got, "echo: hello wecom")
        assert out.ok, out.error
        await wecom.wait_for(lambda: len(wecom.commands) == 1, "the reply")
        reply = wecom.commands[0]
        assert reply["cmd"] == "aibot_respond_msg" and reply["headers"]["req_id"] == req_id
        assert reply["body"]["stream"]["content"] == "echo: hello wecom"
        await wecom.wait_for(lambda: wecom.pings >= 2, "pings")
        slot = host.manager.slots["wecom"]
        assert slot.socket is not None and slot.socket.status.protocol == "wecom_aibot"
        assert slot.socket.status.state == "connected" and slot.socket.status.connections == 1
        assert "wecom_bot_secret" not in json.dumps(start_config_of(host, "wecom"))


def test_channels_check_accepts_wecom_and_refuses_an_unsupported_protocol(tmp_path: Path) -> None:
    def check(caps: dict[str, Any]) -> tuple[int, str]:
        path = tmp_path / "wecom.capabilities.json"
        path.write_text(json.dumps(caps))
        result = CliRunner().invoke(cli.app, ["--home", str(tmp_path / "home"), "channels", "check", str(path)])
        return result.exit_code, result.output

    code, output = check(ironclaw_caps("wecom"))
    assert code == 0 and output.startswith("ok: ")
    caps = ironclaw_caps("wecom")
    caps["capabilities"]["websocket"]["protocol"] = "slack_socket_mode"
    code, output = check(caps)
    assert code == 1 and "protocol 'slack_socket_mode' is not supported" in output


async def test_an_unsupported_protocol_is_an_inactive_channel(
        airlock_home: Path, install_channel: InstallFn, wecom: FakeWecomWs) -> None:
    caps = wecom_caps()
    caps["capabilities"]["websocket"]["protocol"] = "slack_socket_mode"
    secrets = {"wecom_bot_id": wecom.bot_id, "wecom_bot_secret": wecom.secret}
    async with running(airlock_home, install_channel, caps, secrets=secrets,
                       upstream={WECOM_HOST: wecom.base_url}) as host:
        slot = host.manager.slots["wecom"]
        assert not slot.active and "'slack_socket_mode' is not supported" in slot.reason
        assert slot.channel.workspace.get("state/start_config") is None  # on-start never ran
        assert wecom.connections == []
    listed = CliRunner().invoke(cli.app, ["--home", str(airlock_home), "channels", "list"], env={"COLUMNS": "400"})
    row = next(line for line in listed.stdout.splitlines() if "wecom" in line)
    assert "inactive: websocket protocol 'slack_socket_mode' is not supported" in row


@pytest.fixture
async def runtimes() -> AsyncIterator[Callable[..., SocketRuntime]]:
    made: list[SocketRuntime] = []
    delays: list[float] = []

    async def fast_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0.001)

    def make(base: str, secrets: dict[str, str], frames: list[str], **ws: Any) -> SocketRuntime:
        spec = WebsocketSpec.model_validate({
            "url": f"wss://{WECOM_HOST}", "connect_on_start": True, "protocol": "wecom_aibot",
            "bot_id_secret_name": "bid", "bot_secret_name": "bsec", **ws})

        async def collect(text: str) -> None:
            frames.append(text)

        rt = SocketRuntime("wecom", spec, secret_lookup=secrets.get, capability=WebsocketCapability("wecom"),
                           deliver=collect, settings=SocketSettings(upstream_overrides={WECOM_HOST: base},
                                                                    sleep=fast_sleep, rand=lambda: 0.5))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.stop()


async def wait_state(rt: SocketRuntime, state: str) -> None:
    for _ in range(1000):
        if rt.status.state == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"state {rt.status.state} ({rt.status.reason}), wanted {state}")


async def test_a_wrong_secret_is_not_retried_forever(
        wecom: FakeWecomWs, runtimes: Callable[..., SocketRuntime]) -> None:
    rt = runtimes(wecom.base_url, {"bid": wecom.bot_id, "bsec": "wrong-secret-0000000"}, [])
    assert await rt.start()
    await wait_state(rt, "stopped")
    assert wecom.refused == MAX_SUBSCRIBE_REFUSALS
    assert "subscribe refused: errcode 853000" in rt.status.reason and "wrong-secret" not in rt.status.reason


async def test_unanswered_pings_reconnect_and_frames_skip_the_host_acks(
        wecom: FakeWecomWs, runtimes: Callable[..., SocketRuntime]) -> None:
    frames: list[str] = []
    rt = runtimes(wecom.base_url, {"bid": wecom.bot_id, "bsec": wecom.secret}, frames,
                  heartbeat_interval_ms=50, max_missed_heartbeat_acks=2)
    assert await rt.start()
    await wecom.wait_for(lambda: wecom.pings >= 2, "acknowledged pings")
    req_id = await wecom.push_text("one")
    await wecom.wait_for(lambda: len(frames) == 1, "the callback")
    assert json.loads(frames[0])["headers"]["req_id"] == req_id  # the subscribe and ping acks were not forwarded
    wecom.ack_pings = False
    await wecom.wait_for(lambda: len(wecom.connections) == 2, "a reconnect after unanswered pings")
    assert rt.status.last_close is not None and "ping(s) not acknowledged" in rt.status.last_close


async def test_disconnected_event_stops_the_socket(wecom: FakeWecomWs,
                                                   runtimes: Callable[..., SocketRuntime]) -> None:
    rt = runtimes(wecom.base_url, {"bid": wecom.bot_id, "bsec": wecom.secret}, [])
    assert await rt.start()
    await wait_state(rt, "connected")
    await wecom.wait_for(lambda: len(wecom.connections) == 1, "subscribe")
    await asyncio.sleep(0.05)
    await wecom.push_event("disconnected_event")
    await wait_state(rt, "stopped")
    assert "disconnected_event" in rt.status.reason and len(wecom.connections) == 1


@pytest.mark.parametrize(("frame", "problem"), [
    ('{"cmd":"ping","headers":{"req_id":"r"}}', "only these WeCom commands"),
    ('{"cmd":"aibot_subscribe","headers":{"req_id":"r"},"body":{}}', "only these WeCom commands"),
    ('{"cmd":"aibot_respond_msg","cmd":"ping","headers":{"req_id":"r"}}', "may not repeat a key"),
    ('{"cmd":"aibot_respond_msg","body":{}}', "headers.req_id"),
    ('["aibot_respond_msg"]', "only these WeCom commands"),
    ("not json", "must be a JSON object"),
])
def test_guest_commands_are_checked(frame: str, problem: str) -> None:
    spec = WebsocketSpec.model_validate({"url": f"wss://{WECOM_HOST}", "protocol": "wecom_aibot"})
    driver = WecomDriver("wecom", spec, bot_id="b", secret="s")
    with pytest.raises(GuestFault, match=problem):
        driver.check_guest_frame(frame)
    driver.check_guest_frame('{"cmd":"aibot_respond_msg","headers":{"req_id":"r"},"body":{"msgtype":"text"}}')
