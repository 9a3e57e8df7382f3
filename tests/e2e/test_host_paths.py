"""The host's own rules around a guest, through the real aiohttp server and a real (WAT) component:
routing and HTTP errors, backpressure, endpoint and polling grants, host-side admission, typing refresh."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from conftest import InstallFn, minimal_caps

from airlock.channels import replies as replies_mod
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.inbound.server import MAX_BODY_BYTES

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def host_with(home: Path, **config: Any) -> AsyncIterator[AirlockHost]:
    async with AirlockHost(HostConfig.build(home=home, listen_port=0, **config)) as host:
        yield host


async def post(host: AirlockHost, path: str, body: bytes = b"hi", method: str = "POST") -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, f"{host.base_url}{path}", data=body) as r:
        return r.status, await r.text(), r.headers


async def test_routing_and_http_errors(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> None:
    install_channel(watguest.build_component(wat_dir), minimal_caps())
    async with host_with(airlock_home) as host:
        assert (await post(host, "/webhook/nobody"))[0] == 404
        status, _, headers = await post(host, "/webhook/minimal", method="PUT")
        assert status == 405 and headers["Allow"] == "POST"
        assert (await post(host, "/webhook/minimal", b"x" * (MAX_BODY_BYTES + 1)))[0] == 413
        assert (await post(host, "/webhook/minimal"))[0] == 200
        async with aiohttp.ClientSession() as s:
            assert (await s.get(f"{host.base_url}/health/nobody")).status == 404
            assert (await s.get(f"{host.base_url}/health/minimal")).status == 200


async def test_backpressure_503_when_agent_lags(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> None:
    install_channel(watguest.build_component(wat_dir), minimal_caps())
    async with host_with(airlock_home, bus_capacity=2) as host:
        assert [(await post(host, "/webhook/minimal"))[0] for _ in range(2)] == [200, 200]
        status, _, headers = await post(host, "/webhook/minimal")
        assert status == 503 and int(headers["Retry-After"]) > 0
        leased = await host.next_message()
        assert (await post(host, "/webhook/minimal"))[0] == 503  # handed over but not acknowledged: still counted
        assert await host.ack(leased)
        assert (await post(host, "/webhook/minimal"))[0] == 200
        assert host.bus.qsize() == 2  # nothing was lost, nothing grew past the bound


async def test_endpoint_outside_allowed_paths_not_registered(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir), minimal_caps(allowed_paths=["/webhook/other"]))
    async with host_with(airlock_home) as host:
        assert (await post(host, "/webhook/minimal"))[0] == 404
        assert host.manager.slots["minimal"].endpoints == {}


async def test_polling_clamped_to_capability_minimum(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir, poll_ms=5), minimal_caps(min_poll_interval_ms=45_000))
    async with host_with(airlock_home) as host:
        assert host.manager.slots["minimal"].poll_interval_s == 45.0


async def test_polling_not_granted_without_allow_polling(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir, poll_ms=5), minimal_caps(allow_polling=False))
    async with host_with(airlock_home) as host:
        assert host.manager.slots["minimal"].poll_interval_s is None


async def test_test_setting_lowers_poll_floor_and_says_so(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    install_channel(watguest.build_component(wat_dir, poll_ms=5), minimal_caps())
    async with host_with(airlock_home, min_poll_interval_override_ms=50) as host:
        await asyncio.sleep(0.6)
        slot = host.manager.slots["minimal"]
        assert slot.poll_interval_s == 0.05
        assert slot.polls >= 3  # idle short polls wait the interval instead of spinning
        assert slot.polls < 30
    assert "TEST SETTING" in caplog.text


async def test_host_rechecks_dm_policy_before_the_agent(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    caps = minimal_caps()
    caps["config"] = {"dm_policy": "pairing", "allow_from": []}
    install_channel(watguest.build_component(wat_dir), caps)
    async with host_with(airlock_home) as host:
        assert (await post(host, "/webhook/minimal"))[0] == 200
        await asyncio.sleep(0.2)
        assert host.bus.qsize() == 0  # the guest emitted for "u1", who is not paired
        code, _ = host.pairing.upsert_request("minimal", "u1", "{}")
        host.pairing.approve("minimal", code)
        assert (await post(host, "/webhook/minimal"))[0] == 200
        assert (await asyncio.wait_for(host.next_message(), 5)).user_id == "u1"


async def test_thinking_status_refreshes_until_reply(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replies_mod, "TYPING_REFRESH_S", 0.1)
    install_channel(watguest.build_component(wat_dir), minimal_caps())
    async with host_with(airlock_home) as host:
        await post(host, "/webhook/minimal")
        msg = await asyncio.wait_for(host.next_message(), 5)
        channel = host.manager.slots["minimal"].channel
        calls: list[str] = []
        original = channel.status
        monkeypatch.setattr(channel, "status", lambda u: calls.append(u.status) or original(u))
        await host.send_status(msg, "thinking")
        await asyncio.sleep(0.45)
        assert calls.count("thinking") >= 3
        await host.respond(msg, "done")
        settled = len(calls)
        await asyncio.sleep(0.3)
        assert len(calls) == settled
