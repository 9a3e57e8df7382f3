"""The per-channel guest-log budget through the running host (issue 13, defect 5: 20 webhooks wrote 83 MB of
host log in 2.9 s). ``HostConfig.log_bytes_per_minute`` reaches each channel; a flooding channel's lines past
the budget are dropped and reported in one line a minute (the budget's clock is injected); another channel's
budget is its own."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import fuzzguest
import pytest
import watguest
from conftest import InstallFn, minimal_caps

from airlock.errors import ConfigError
from airlock.host import AirlockHost
from airlock.host_config import HostConfig

LOG = fuzzguest.FUNCTIONS.index("log")
INFO = 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def guest_lines(caplog: pytest.LogCaptureFixture, channel: str) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "airlock.guest"]
    return [line for line in lines if line.startswith(f"[{channel}] ")]


async def test_a_flooding_channel_is_held_to_its_log_budget(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install_channel(fuzzguest.build_component(wat_dir), minimal_caps("fuzz"))
    install_channel(watguest.build_component(wat_dir, "quiet"), minimal_caps("quiet"))
    caplog.set_level(logging.INFO, logger="airlock.guest")
    clock = FakeClock()
    config = HostConfig.build(home=airlock_home, listen_port=0, log_bytes_per_minute=10_000)
    async with AirlockHost(config) as host, aiohttp.ClientSession() as http:
        budget = host.manager.slots["fuzz"].channel.log_budget
        assert budget.bytes_per_minute == 10_000
        budget.clock = clock

        async def post(channel: str, body: bytes) -> None:
            async with http.post(f"{host.base_url}/webhook/{channel}", data=body) as resp:
                assert resp.status == 200, await resp.text()

        for i in range(20):
            clock.now += 1
            await post("fuzz", fuzzguest.encode(LOG, INFO, f"{i:02d}".encode() + b"x" * 3998))
        await post("quiet", b"hi")  # the other channel's budget is untouched
        assert [line[:10] for line in guest_lines(caplog, "fuzz")] == ["[fuzz] 00x", "[fuzz] 01x"]
        assert guest_lines(caplog, "quiet") == ["[quiet] /webhook/quiet"]
        assert budget.dropped_total == 18

        caplog.clear()
        clock.now += 60
        await post("fuzz", fuzzguest.encode(LOG, INFO, b"next minute"))
        assert guest_lines(caplog, "fuzz") == [
            "[fuzz] 18 guest log lines (72000 bytes) dropped in the last minute: over the log budget of 10000 "
            "bytes per minute",
            "[fuzz] next minute",
        ]


def test_the_budget_is_a_positive_host_setting_with_a_default() -> None:
    assert HostConfig().log_bytes_per_minute == 256 * 1024
    with pytest.raises(ConfigError, match="log_bytes_per_minute"):
        HostConfig.build(log_bytes_per_minute=0)
