"""IronClaw's capabilities files as shipped: ``wit_version`` and what the host warns about.

Six of IronClaw's seven files say ``wit_version: 0.3.0`` while the components are built against 0.3.1; IronClaw
accepts a 0.3.x component for a 0.3.0 file, so installing one is silent. WhatsApp's file has no app secret, so
its POSTs cannot be verified: the warning stays, and is kept on the channel slot for status/doctor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compat_support import COMPAT_WASM, ironclaw_caps, running
from conftest import InstallFn
from typer.testing import CliRunner

from airlock import cli
from airlock.channels.activation import file_warnings, wit_version_note
from airlock.manifest import parse_capabilities

pytestmark = pytest.mark.e2e


def install(tmp_path: Path, compile_cache: Path, wit_version: str) -> tuple[int, str]:
    caps = ironclaw_caps("telegram")
    caps["wit_version"] = wit_version
    path = tmp_path / "src" / "telegram.capabilities.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(caps))
    home = tmp_path / f"home-{wit_version}"
    home.mkdir()
    (home / "cache").symlink_to(compile_cache, target_is_directory=True)  # the session's: compile once
    result = CliRunner().invoke(cli.app, ["--home", str(home), "channels", "install", str(COMPAT_WASM), str(path)])
    return result.exit_code, result.stderr


def test_an_older_wit_version_of_the_same_family_installs_silently(tmp_path: Path, compile_cache: Path) -> None:
    code, stderr = install(tmp_path, compile_cache, "0.3.0")  # as IronClaw ships it; the component is 0.3.1
    assert code == 0 and "wit_version" not in stderr
    code, stderr = install(tmp_path, compile_cache, "0.2.0")
    assert code == 0 and "$.wit_version: 0.2.0, but the component was built against near:agent/channel@0.3.1" in stderr


@pytest.mark.parametrize(("declared", "built", "silent"), [
    ("0.3.0", "0.3.1", True), ("0.3.1", "0.3.1", True), ("0.1.0", "0.1.0", True),
    ("0.3.1", "0.3.0", False),  # a file newer than the component
    ("0.2.0", "0.3.1", False), ("0.4.0", "0.3.1", False),  # 0.x: the minor version is the family
    ("1.2.0", "1.4.3", True), ("1.4.3", "1.2.0", False), ("1.0.0", "2.0.0", False),
    ("0.3", "0.3.1", False), ("v0.3.0", "0.3.1", False),
])
def test_wit_version_rule(declared: str, built: str, silent: bool) -> None:
    assert (wit_version_note(declared, built) is None) is silent


async def test_whatsapp_without_an_app_secret_keeps_its_warning_on_the_slot(
        airlock_home: Path, install_channel: InstallFn, caplog: pytest.LogCaptureFixture) -> None:
    caps = ironclaw_caps("whatsapp")
    async with running(airlock_home, install_channel, caps, secrets={"whatsapp_access_token": "EAAGtoken"},
                       upstream={}) as host:
        slot = host.manager.slots["whatsapp"]
        assert slot.active, slot.reason
        assert len(slot.warnings) == 1 and "app_secret_name is not set" in slot.warnings[0]
    assert "app_secret_name is not set" in caplog.text



def test_the_warning_goes_with_an_app_secret_or_a_guest_managed_webhook() -> None:
    def warnings(**webhook: object) -> list[str]:
        caps = ironclaw_caps("whatsapp")
        caps["capabilities"]["channel"]["webhook"].update(webhook)
        return file_warnings(parse_capabilities(json.dumps(caps), "whatsapp.capabilities.json"))

    assert len(warnings()) == 1
    assert warnings(app_secret_name="whatsapp_app_secret") == []
    assert warnings(managed_by_host=False) == []  # the guest checks its webhooks itself: nothing to warn about
