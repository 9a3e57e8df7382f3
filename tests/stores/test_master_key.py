"""A missing master key is never silently replaced while encrypted secrets exist (issue 13, defect 11).

Before: deleting ``master.key`` made the next command create a fresh key, and the one after that reported a
misleading "wrong master key or tampered store". Now every command says, in one line, that the key file is
missing and how to restore it or set ``AIRLOCK_MASTER_KEY``, and creates nothing. Through the real CLI in a
subprocess (``python -m airlock.cli``), as an operator runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airlock.errors import SecretStoreError
from airlock.stores import SecretStore
from airlock.stores.secrets import KEY_ENV_VAR


def airlock(home: Path, *args: str, input: str | None = None,
            key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV_VAR}
    env["AIRLOCK_HOME"] = str(home)
    if key is not None:
        env[KEY_ENV_VAR] = key
    return subprocess.run([sys.executable, "-m", "airlock.cli", *args], env=env, input=input, text=True,
                          capture_output=True, timeout=30)


def test_cli_refuses_to_replace_a_missing_key_and_says_how_to_restore_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert airlock(home, "secrets", "set", "bot_token", input="s3cret-value\n").returncode == 0
    key_file = home / "master.key"
    saved = key_file.read_text()
    key_file.unlink()

    for command in (["secrets", "list"], ["secrets", "set", "other"], ["serve", "--port", "0"]):
        run = airlock(home, *command, input="x\n")
        assert run.returncode == 1, (command, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr, run.stderr
        *_log_lines, err = run.stderr.strip().splitlines()  # serve logs its home first; the error is one line
        assert err.startswith("error: master key file ") and str(key_file) in err, err
        assert "is missing" in err and "restore master.key from a backup" in err and KEY_ENV_VAR in err, err
        assert "wrong master key" not in err and "s3cret-value" not in err
        assert not key_file.exists(), command  # nothing was created

    with_env = airlock(home, "secrets", "list", key=saved.strip())  # the key given in the environment works
    assert (with_env.returncode, with_env.stdout.split()) == (0, ["bot_token"]), with_env.stderr
    key_file.write_text(saved)  # and so does the restored file
    key_file.chmod(0o600)
    restored = airlock(home, "secrets", "list")
    assert (restored.returncode, restored.stdout.split()) == (0, ["bot_token"]), restored.stderr


def test_a_key_is_still_created_for_a_new_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    home = tmp_path / "fresh"
    SecretStore.open(home).set("a", "1")
    assert (home / "master.key").exists()
    assert SecretStore.open(home).get("a") == "1"
    (home / "master.key").unlink()
    with pytest.raises(SecretStoreError, match="is missing"):
        SecretStore.open(home)
    assert not (home / "master.key").exists()
