"""``airlock secrets rotate-key`` through the real command: killed with SIGKILL after each step, the store still
opens with the old key or the new one, and a second run finishes; ``AIRLOCK_MASTER_KEY`` users are told what to
do; a running gateway or a home without secrets refuses in one line and changes nothing (issue 9, item 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import MASTER_KEY, cli_env, one_line_error, run_cli, tree

from airlock.errors import SecretStoreError
from airlock.stores import SecretStore
from airlock.stores.homelock import HomeLock
from airlock.stores.keyrotation import PAUSE_ENV_VAR
from airlock.stores.masterkey import KEY_ENV_VAR, parse_master_key

VALUES = {"telegram_bot_token": "123:abc", "slack_signing_secret": "s3cret", "empty_ish": " "}
NO_ENV_KEY = {KEY_ENV_VAR: ""}  # the key comes from HOME/master.key


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    home = tmp_path / "home"
    store = SecretStore.open(home)
    for name, value in VALUES.items():
        store.set(name, value)
    return home


def _keys(home: Path) -> list[bytes]:
    return [parse_master_key(line) for line in (home / "master.key").read_text().splitlines()]


def _opens_with(home: Path, key: bytes) -> bool:
    try:
        store = SecretStore(home / "secrets.json", key)
        return {n: store.get(n) for n in store.names()} == VALUES
    except SecretStoreError:
        return False


def _kill_after(home: Path, step: str, **env: str) -> None:
    """Run rotate-key until it pauses after ``step``, then SIGKILL it (no clean-up of any kind)."""
    proc = subprocess.Popen([sys.executable, "-m", "airlock.cli", "secrets", "rotate-key"],
                            env=cli_env(home, **{PAUSE_ENV_VAR: step, **env}), cwd=home.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # blocks until the pause (or the end, on failure)
    assert line.strip() == f"rotate-key: paused after {step}", (line, proc.communicate())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_a_rotation_killed_after_any_step_leaves_a_working_key(home: Path) -> None:
    # Each run is killed one step later than the one before; every run starts over from whichever key works.
    for step, works_with in (("verified", "old"), ("both-keys", "old"), ("store-rewritten", "new")):
        (old,) = _keys(home)[-1:] if len(_keys(home)) == 1 else [k for k in _keys(home) if _opens_with(home, k)]
        _kill_after(home, step, **NO_ENV_KEY)
        keys = _keys(home)
        new = keys[0] if keys[0] != old else None
        assert _opens_with(home, old) is (works_with == "old"), step
        assert new is None or _opens_with(home, new) is (works_with == "new"), step
        store = SecretStore.open(home)  # what every command and the gateway do
        assert {n: store.get(n) for n in store.names()} == VALUES, step
    done = run_cli(home, "secrets", "rotate-key", **NO_ENV_KEY)  # run again: finishes
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"re-encrypted 3 secrets with a new master key in {home / 'master.key'}"
    (final,) = _keys(home)
    assert final not in (old, new) and _opens_with(home, final) and not _opens_with(home, old)
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600
    assert (home / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert not list(home.glob(".*.tmp"))


def test_an_env_key_is_not_changed_and_the_operator_is_told_what_to_do(home: Path) -> None:
    # the store of this home is under the file's key: move it under an env key first
    (key,) = _keys(home)
    (home / "master.key").unlink()
    env = {KEY_ENV_VAR: key.hex()}
    before = tree(home)
    err = one_line_error(run_cli(home, "secrets", "rotate-key", **env), "AIRLOCK_MASTER_KEY",
                         "AIRLOCK_NEW_MASTER_KEY=<new key> airlock secrets rotate-key")
    assert "set AIRLOCK_MASTER_KEY to the new key" in err
    one_line_error(run_cli(home, "secrets", "rotate-key", AIRLOCK_NEW_MASTER_KEY="short", **env), "64 hex")
    one_line_error(run_cli(home, "secrets", "rotate-key", AIRLOCK_NEW_MASTER_KEY=key.hex(), **env),
                   "is the current key")
    assert tree(home) == before
    new = os.urandom(32)
    _kill_after(home, "verified", AIRLOCK_NEW_MASTER_KEY=new.hex(), **env)
    assert _opens_with(home, key) and not _opens_with(home, new)
    done = run_cli(home, "secrets", "rotate-key", AIRLOCK_NEW_MASTER_KEY=new.hex(), **env)
    assert done.returncode == 0, done.stderr
    assert "set AIRLOCK_MASTER_KEY to it now" in done.stdout
    assert _opens_with(home, new) and not _opens_with(home, key) and not (home / "master.key").exists()


def test_refused_while_a_gateway_runs_or_without_secrets(home: Path, tmp_path: Path) -> None:
    before = tree(home)
    with HomeLock(home):  # this test process stands for a running gateway
        one_line_error(run_cli(home, "secrets", "rotate-key", **NO_ENV_KEY),
                       f"a gateway (pid {os.getpid()}) is running on {home}")
    assert {k: v for k, v in tree(home).items() if k != "serve.lock"} == \
        {k: v for k, v in before.items() if k != "serve.lock"}
    empty = tmp_path / "empty"
    one_line_error(run_cli(empty, "secrets", "rotate-key", AIRLOCK_MASTER_KEY=MASTER_KEY), "nothing to rotate")
    assert not empty.exists()


def test_doctor_notes_an_interrupted_rotation(home: Path) -> None:
    from airlock.cli.doctor_checks import home as home_checks
    from airlock.host_config import HostConfig

    (key,) = _keys(home)
    assert [c.status for c in home_checks(HostConfig.build(home=home)) if c.area == "master key"] == ["ok"]
    (home / "master.key").write_text(f"{os.urandom(32).hex()}\n{key.hex()}\n")
    [check] = [c for c in home_checks(HostConfig.build(home=home)) if c.area == "master key"]
    assert check.status == "note" and "interrupted rotation" in check.detail
    assert {n: SecretStore.open(home).get(n) for n in VALUES} == VALUES  # the old key (second line) still opens it
