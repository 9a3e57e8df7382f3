"""One ``airlock serve`` per home (``stores.homelock``): a second real process exits at once with one line naming
the first's PID, and a gateway killed with SIGKILL leaves no lock behind. The same gateways show what serve does
with an installed capabilities file that has an unknown key: refused, or loaded with ``--lenient`` (issue 9,
item 1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clirun import cli_env, one_line_error, run_cli
from conftest import minimal_caps
from servers import free_port
from watguest import build_component

from airlock.errors import ConfigError
from airlock.stores.homelock import LOCK_FILE, HomeLock


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    """A real gateway (no agent, no admin listener), returned once it holds the lock and serves."""
    proc = subprocess.Popen([sys.executable, "-m", "airlock.cli", "serve", "--port", str(free_port()),
                             "--no-admin", "--agent", "none", *args], env=cli_env(home), cwd=home.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    runfile = home / "run" / "gateway.json"  # a killed gateway leaves its own behind: wait for this one's PID
    while not (runfile.exists() and f'"pid": {proc.pid},' in runfile.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)
    return proc


def test_a_second_serve_names_the_first_and_a_killed_one_frees_the_home(airlock_home: Path, tmp_path: Path) -> None:
    # An installed file with an unknown key: the first gateway refuses that channel, the third (--lenient) runs it.
    doc = minimal_caps("typo")
    doc["capabilities"]["channel"]["allowed_pathz"] = ["/webhook/other"]
    (airlock_home / "channels" / "typo.capabilities.json").write_text(json.dumps(doc))
    (airlock_home / "channels" / "typo.wasm").write_bytes(build_component(tmp_path / "wat", "typo").read_bytes())
    first = _start(airlock_home)
    try:
        second = run_cli(airlock_home, "serve", "--port", str(free_port()), "--no-admin", "--agent", "none",
                         timeout=60)
        one_line_error(second, f"another airlock serve (pid {first.pid}) is using {airlock_home}")
        assert first.poll() is None  # the first one is untouched
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up at all: the kernel drops the lock with the process
        _, first_err = first.communicate(timeout=20)
    assert "channel typo not loaded: " in first_err
    assert "$.capabilities.channel.allowed_pathz: unknown key (did you mean 'allowed_paths'?)" in first_err
    third = _start(airlock_home, "--lenient")
    third.send_signal(signal.SIGINT)
    _, err = third.communicate(timeout=30)
    assert third.returncode == 0, err
    assert "allowed_pathz: unknown key ignored" in err and "channel typo: airlock:channel" in err


def test_the_lock_in_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with HomeLock(home):
        assert (home / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert (home / LOCK_FILE).stat().st_mode & 0o777 == 0o600
        # flock locks belong to the open file description: a second open in this process is refused too
        other = HomeLock(home)
        try:
            other.acquire()
            raise AssertionError("a second lock on the same home was granted")
        except ConfigError as exc:
            assert str(exc).startswith(f"another airlock serve (pid {os.getpid()}) is using {home}")
    with HomeLock(home):  # released: taken again
        pass
