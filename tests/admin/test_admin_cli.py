"""The admin listener through the real CLI: ``airlock admin token`` and ``airlock serve`` (a real process) with
the console on, JSON logs, and one-line errors for bad log settings or a taken admin port."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from servers import free_port

from airlock.admin.auth import TOKEN_FILENAME, TokenFile
from airlock.cli.serve import DEFAULT_ADMIN_PORT

pytestmark = pytest.mark.e2e

ADMIN_LINE = re.compile(r"admin console on (http://127\.0\.0\.1:\d+); "
                        r"login token \(shown once, only its hash is kept\): (alk_\S+)")


def cli_env(home: Path, master_key: str) -> dict[str, str]:
    host_dir = str(REPO / "host")  # this checkout's code, whatever the venv's editable install points at
    return {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_MASTER_KEY": master_key,
            "PYTHONPATH": os.pathsep.join(p for p in (host_dir, os.environ.get("PYTHONPATH")) if p)}


def airlock(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airlock.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_admin_token_replaces_the_stored_one(tmp_path: Path, master_key: str) -> None:
    env = cli_env(tmp_path / "home", master_key)
    first = airlock(env, "admin", "token")
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert token.startswith("alk_") and "shown once" in first.stderr
    stored = tmp_path / "home" / TOKEN_FILENAME
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and token not in stored.read_text()
    assert TokenFile(tmp_path / "home").check(token)
    second = airlock(env, "admin", "token", "--json")
    doc = json.loads(second.stdout)
    assert doc["file"] == str(stored) and doc["token"] != token
    assert TokenFile(tmp_path / "home").check(doc["token"]) and not TokenFile(tmp_path / "home").check(token)


def test_serve_with_the_console_and_json_logs(tmp_path: Path, master_key: str) -> None:
    env = cli_env(tmp_path / "home", master_key)
    proc = subprocess.Popen(
        [sys.executable, "-m", "airlock.cli", "serve", "--port", str(free_port()), "--admin-port", "0",
         "--log-format", "json", "--log-level", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(ADMIN_LINE.search(line) for line in lines):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        [found] = [m for m in map(ADMIN_LINE.search, lines) if m]
        url, token = found.group(1), found.group(2)
        req = urllib.request.Request(f"{url}/api/channels", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read()) == {"channels": []}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/api/channels", timeout=10)
        assert refused.value.code == 401
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    log_lines = [line for line in [*lines, *rest.splitlines(keepends=True)] if not ADMIN_LINE.search(line)]
    records = [json.loads(line) for line in log_lines if line.strip()]
    assert any(r["message"].startswith("admin console and API on http://127.0.0.1:") for r in records)
    assert {"ts", "level", "logger", "message", "channel", "callback", "trace_id"} <= set(records[0])
    assert token not in "".join(log_lines)  # shown on stderr once, never as a log record


def test_bad_log_settings_and_a_taken_admin_port_fail_in_one_line(tmp_path: Path, master_key: str) -> None:
    env = cli_env(tmp_path / "home", master_key)
    for args, fragment in ((["--log-format", "xml"], "log format 'xml'"), (["--log-level", "loud"], "log level"),
                           (["--port", "9000", "--admin-port", "9000"], "admin_port 9000 is the webhook port")):
        done = airlock(env, "serve", "--port", str(free_port()), *args)
        assert done.returncode == 1 and done.stderr.startswith("error: ") and fragment in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = airlock(env, "serve", "--port", str(free_port()), "--admin-port", str(port))
    assert done.returncode == 1, done.stderr
    assert f"error: cannot listen on 127.0.0.1:{port} for the admin console" in done.stderr


def test_serve_runs_without_the_console_when_the_default_port_is_taken(tmp_path: Path, master_key: str) -> None:
    env = cli_env(tmp_path / "home", master_key)
    with socket.socket() as holder:
        try:  # hold the default admin port; if that fails, something else holds it, which is the same case
            holder.bind(("127.0.0.1", DEFAULT_ADMIN_PORT))
            holder.listen()
        except OSError:
            pass
        proc = subprocess.Popen([sys.executable, "-m", "airlock.cli", "serve", "--port", str(free_port())],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            seen = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "serving on" not in seen:
                line = proc.stderr.readline()
                if not line:
                    break
                seen += line
            proc.send_signal(signal.SIGINT)
            _, rest = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, seen + rest
    assert f"admin console not started: 127.0.0.1:{DEFAULT_ADMIN_PORT} is in use" in seen
    assert "admin console on" not in seen + rest
