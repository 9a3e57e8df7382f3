"""Strict capabilities files through the real command (a subprocess): ``channels check`` and ``channels install``
refuse an unknown key in one line with a "did you mean", ``--lenient`` turns it into a warning, and the gateway
refuses such an installed file unless ``lenient_capabilities`` is set (issue 9, item 1)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from clirun import one_line_error, run_cli, tree
from conftest import minimal_caps
from watguest import build_component

from airlock.host import AirlockHost
from airlock.host_config import HostConfig


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_component(tmp_path_factory.mktemp("strict-wat"), "typo")  # asks for /webhook/typo


def _typo_file(tmp_path: Path, *, key: str = "capabilities") -> Path:
    doc: dict[str, Any] = minimal_caps("typo")
    doc["capabilites" if key == "capabilities" else f"{key}x"] = doc.pop(key)
    path = tmp_path / "src" / "typo.capabilities.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_check_and_install_refuse_an_unknown_key_and_change_nothing(airlock_home: Path, wasm: Path,
                                                                    tmp_path: Path) -> None:
    caps = _typo_file(tmp_path)
    before = tree(airlock_home)
    expected = f"{caps}: $.capabilites: unknown key (did you mean 'capabilities'?)"
    assert one_line_error(run_cli(airlock_home, "channels", "check", str(caps))) == f"error: {expected}"
    assert one_line_error(run_cli(airlock_home, "channels", "install", str(wasm), str(caps))) == f"error: {expected}"
    assert tree(airlock_home) == before


def test_lenient_check_and_install_warn_and_say_what_serve_will_do(airlock_home: Path, wasm: Path,
                                                                   tmp_path: Path) -> None:
    caps = _typo_file(tmp_path)
    check = run_cli(airlock_home, "channels", "check", "--lenient", str(caps))
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("ok: ")
    assert "unknown key ignored (did you mean 'capabilities'?)" in check.stderr
    # installed leniently, that file would grant the component nothing: install's own check refuses it
    refused = run_cli(airlock_home, "channels", "install", "--lenient", str(wasm), str(caps))
    assert refused.returncode == 1 and "installed leniently" not in refused.stderr
    assert refused.stderr.splitlines()[-1].startswith("error: ") and "asks for /webhook/typo" in refused.stderr
    caps = _typo_file(tmp_path, key="config")  # "configx": the operator's config would be lost, the grants kept
    install = run_cli(airlock_home, "channels", "install", "--lenient", str(wasm), str(caps))
    assert install.returncode == 0, install.stderr
    assert "airlock serve refuses a file with unknown keys unless it runs with --lenient" in install.stderr
    [kept] = (airlock_home / "channels" / "typo").glob("*/capabilities.json")  # the version kept byte for byte
    assert kept.read_bytes() == caps.read_bytes()
    listed = json.loads(run_cli(airlock_home, "channels", "list", "--json").stdout)
    assert listed[0]["state"] == "invalid" and "unknown key" in listed[0]["status"]
    relaxed = run_cli(airlock_home, "channels", "list", "--json", AIRLOCK_LENIENT_CAPABILITIES="1")
    assert json.loads(relaxed.stdout)[0]["state"] == "active", relaxed.stderr


async def test_the_gateway_loads_an_unknown_key_only_when_lenient(airlock_home: Path, wasm: Path, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    channels = airlock_home / "channels"
    channels.mkdir(exist_ok=True)
    (channels / "typo.wasm").write_bytes(wasm.read_bytes())
    (channels / "typo.capabilities.json").write_bytes(_typo_file(tmp_path).read_bytes())
    caplog.set_level(logging.INFO, logger="airlock")
    async with AirlockHost(HostConfig.build(home=airlock_home, listen_port=0, agent_api_enabled=False)) as host:
        assert "typo" not in host.manager.slots
    assert any("channel typo not loaded" in m and "did you mean 'capabilities'" in m for m in caplog.messages)
    config = HostConfig.build(home=airlock_home, listen_port=0, agent_api_enabled=False, lenient_capabilities=True)
    async with AirlockHost(config) as host:
        assert host.manager.slots["typo"].active
