"""Start-up of ``AirlockHost`` with a channel whose capabilities file does not load: the host says why in one
line when it skips generating that channel's secrets (it used to skip silently: ``except Exception:
continue``), generates the other channels' secrets, and still starts them (issue 13, blind spots)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
import watguest
from conftest import InstallFn, minimal_caps
from servers import free_port

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.inbound.server import STARTING_RETRY_AFTER_S


async def test_a_channel_file_that_does_not_load_is_logged_in_one_line(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wasm = watguest.build_component(wat_dir, "good")
    good = minimal_caps("good")
    good["setup"] = {"required_secrets": [{"name": "good_hook_secret", "auto_generate": {"length": 24}}]}
    install_channel(wasm, good)
    channels = airlock_home / "channels"
    (channels / "broken.wasm").write_bytes(wasm.read_bytes())
    (channels / "broken.capabilities.json").write_text('{"name": "broken", "version": ')

    caplog.set_level(logging.INFO, logger="airlock")
    async with AirlockHost(HostConfig.build(home=airlock_home, listen_port=0)) as host:
        stored = host.secrets.get("good_hook_secret")
        assert stored is not None and len(stored) == 24
        assert host.manager.slots["good"].active
        assert "broken" not in host.manager.slots

    skipped = [r for r in caplog.records if "no secrets generated" in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in caplog.records]
    line = skipped[0]
    assert line.levelno == logging.WARNING and line.exc_info is None
    text = line.getMessage()
    assert text.startswith("channel broken: no secrets generated: ") and "\n" not in text
    assert "broken.capabilities.json: line 1 column 31: invalid JSON" in text


async def test_a_webhook_that_comes_while_the_channels_load_is_answered_503_not_404(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    """A single process listens before it loads its channels (a restarted node of a cluster does, with webhooks
    already coming): a webhook for a channel not loaded yet must be refused with a retryable 503, never 404 (a
    platform drops or disables a webhook that answers 404)."""
    wasm = watguest.build_component(wat_dir, "good")
    for name in ("aa", "ab", "good"):  # loaded in turn: the webhook of "good" waits for two loads and starts
        install_channel(wasm, minimal_caps(name))
    port = free_port()
    host = AirlockHost(HostConfig.build(home=airlock_home, listen_port=port, admin=False))
    starting = asyncio.create_task(host.start())
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as s:
            while not statuses or statuses[-1] != 200:
                try:
                    async with s.post(f"http://127.0.0.1:{port}/webhook/good", data=b"hi") as r:
                        statuses.append(r.status)
                        if r.status == 503:
                            assert r.headers["Retry-After"] == str(STARTING_RETRY_AFTER_S)
                except aiohttp.ClientConnectionError:  # not listening yet
                    pass
                await asyncio.sleep(0)
        await starting
    finally:
        await host.stop()
    assert 404 not in statuses, statuses
    assert 503 in statuses, f"no webhook came while the channels loaded: {statuses}"
    assert set(statuses) == {503, 200}
