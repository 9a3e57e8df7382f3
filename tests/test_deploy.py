"""deploy/airlock.service and the Dockerfile stay true to the repository.

The unit is checked by ``systemd-analyze verify`` (no warning allowed) with ExecStart pointed at this venv's
``airlock``. Docker cannot run where these tests run, so the Dockerfile is checked by reading it: three
stages, every COPY source exists, every Cargo workspace member is copied (cargo loads the whole workspace),
the channels it builds are the Makefile's, and the runtime runs as a non-root user with AIRLOCK_HOME on a
volume."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "airlock.service"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_without_warnings(tmp_path: Path) -> None:
    airlock = Path(sys.executable).with_name("airlock")
    assert airlock.exists(), "the venv's airlock console script (make venv)"
    copy = tmp_path / "airlock.service"
    copy.write_text(UNIT.read_text().replace("/opt/airlock/venv/bin/airlock", str(airlock)))
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_systemd_unit_runs_airlock_unprivileged_on_loopback() -> None:
    s = unit_settings()
    assert s["User"] == ["airlock"] and s["NoNewPrivileges"] == ["yes"]
    assert s["Environment"] == ["AIRLOCK_HOME=/var/lib/airlock"] and s["StateDirectory"] == ["airlock"]
    assert s["StateDirectoryMode"] == ["0700"]
    [exec_start] = s["ExecStart"]
    assert exec_start.split()[1:] == ["serve", "--host", "127.0.0.1", "--port", "8080"]
    assert "MemoryDenyWriteExecute" not in s  # wasmtime writes machine code at run time


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_dockerfile_stages_and_runtime_user() -> None:
    text = dockerfile()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert [name for _, name in stages] == ["guests", "wheel", ""]
    runtime = text[text.rindex("\nFROM "):]
    [user] = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    home = re.search(r"AIRLOCK_HOME=(\S+)", runtime)
    assert home is not None and f'VOLUME ["{home.group(1)}"]' in runtime
    assert "--uid 10001" in runtime and user == "10001:10001"


def test_dockerfile_copies_what_the_builds_need() -> None:
    text = dockerfile()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in src.split():
            assert (REPO / path).exists(), f"COPY {path}: not in the repository"
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE)
    flat = [p for line in copied for p in line.split()]
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    for member in members:
        assert any(member == p or member.startswith(p.rstrip("/") + "/") for p in flat), member
    makefile = (REPO / "Makefile").read_text()
    rust = re.search(r"^RUST_CHANNELS := (.+)$", makefile, re.MULTILINE)
    assert rust is not None
    built = re.search(r"for channel in ([a-z -]+); do", text)
    assert built is not None
    assert sorted(built.group(1).split()) == sorted(c for c in rust.group(1).split() if c != "template-rust")
    assert "scripts/build-python-guest.sh guest-plugins/telegram" in text
