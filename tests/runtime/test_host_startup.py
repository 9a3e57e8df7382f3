"""Start-up of ``AirlockHost`` with a channel whose capabilities file does not load: the host says why in one
line when it skips generating that channel's secrets (it used to skip silently: ``except Exception:
continue``), generates the other channels' secrets, and still starts them (issue 13, blind spots)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import watguest
from conftest import InstallFn, minimal_caps

from airlock.host import AirlockHost
from airlock.host_config import HostConfig


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
