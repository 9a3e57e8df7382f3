"""``airlock status`` against a real ``airlock serve`` subprocess: up and healthy (exit 0), a channel whose
callback times out (exit 2, its last error from the runtime file), an inactive channel, a gateway that is down
and a stale runtime file. Guests: the WAT test component (normal, and ``loop`` mode for the timeout)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, one_line_error, run_cli
from servers import free_port
from watguest import build_component


def caps_doc(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "0.1.0", "wit_version": "0.1.0",
            "capabilities": {"channel": {"allowed_paths": [f"/webhook/{name}"], "callback_timeout_secs": 1}},
            "config": {"dm_policy": "open"}, **extra}


@pytest.fixture(scope="module")
def wat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("status-wat")


def install(home: Path, tmp: Path, wasm: Path, doc: dict[str, Any]) -> None:
    caps = tmp / f"{doc['name']}.capabilities.json"
    caps.write_text(json.dumps(doc))
    proc = run_cli(home, "channels", "install", str(wasm), str(caps))
    assert proc.returncode == 0, proc.stderr


@contextmanager
def serving(home: Path, channels: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "airlock.cli", "serve", "--port", str(port)], env=cli_env(home),
                            cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # until every channel finished on-start and the runtime file is written
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve did not start"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    ready = len(json.loads(resp.read())["channels"]) == channels
            except (urllib.error.URLError, ConnectionError):
                ready = False
            if ready and (home / "run" / "gateway.json").exists():
                break
            time.sleep(0.1)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)


def status(home: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli(home, "status", "--json", *args)
    assert proc.returncode in (0, 2), proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["healthy"] is (proc.returncode == 0)
    return proc.returncode, doc


def test_status_healthy_then_a_failing_callback(airlock_home: Path, wat: Path, tmp_path: Path) -> None:
    install(airlock_home, tmp_path, build_component(wat), caps_doc("minimal"))
    install(airlock_home, tmp_path, build_component(wat, name="spin", mode="loop"), caps_doc("spin"))
    with serving(airlock_home, channels=2) as (proc, port):
        code, doc = status(airlock_home)
        assert code == 0 and doc["problems"] == [], doc
        gw = doc["gateway"]
        assert (gw["up"], gw["source"], gw["url"], gw["pid"]) == (True, "runtime file", f"http://127.0.0.1:{port}",
                                                                   proc.pid)
        assert gw["versions"]["airlock"] == doc["cli"]["airlock"] and gw["uptime_s"] >= 0
        api = gw["agent_api_url"]  # the agent API's real address (AIRLOCK_AGENT_API_PORT=0: a free port)
        assert api.startswith("http://127.0.0.1:") and not api.endswith(":0")
        with urllib.request.urlopen(f"{api}/v1/openapi.json", timeout=5) as resp:
            assert resp.status == 200
        assert [(c["name"], c["active"], c["last_error"]) for c in doc["channels"]] == [
            ("minimal", True, None), ("spin", True, None)]
        assert [(c["provenance"]["publisher"], c["provenance"]["recorded"]) for c in doc["channels"]] == [
            ("unsigned", True), ("unsigned", True)]  # bare installs, recorded as unsigned
        text = run_cli(airlock_home, "status")
        assert text.returncode == 0 and "gateway: up at" in text.stdout and "all good" in text.stdout
        assert f"agent API {api}" in text.stdout

        req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook/spin", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(req, timeout=20)
        assert failed.value.code == 500
        deadline = time.monotonic() + 10
        while (code_doc := status(airlock_home))[0] == 0:  # the runtime file is flushed within ~1 s
            assert time.monotonic() < deadline, "the error never reached the runtime file"
            time.sleep(0.2)
        code, doc = code_doc
        spin = next(c for c in doc["channels"] if c["name"] == "spin")
        assert spin["failures"] == 1
        assert (spin["last_error"]["callback"], spin["last_error"]["class"]) == ("on-http-request", "timeout")
        assert doc["problems"] == [f"channel spin: on-http-request failed {spin['last_error_age_s']} s ago "
                                   f"(timeout): {spin['last_error']['message']}"]
        text = run_cli(airlock_home, "status")
        assert text.returncode == 2
        assert "problem: channel spin: on-http-request failed" in text.stdout
    assert proc.returncode == 0
    assert not (airlock_home / "run" / "gateway.json").exists()  # removed at stop


def test_status_reports_an_inactive_channel(airlock_home: Path, wat: Path, tmp_path: Path) -> None:
    doc = caps_doc("minimal", setup={"required_secrets": [{"name": "minimal_token"}]})
    install(airlock_home, tmp_path, build_component(wat), doc)
    with serving(airlock_home, channels=1):
        code, report = status(airlock_home)
    assert code == 2
    assert report["problems"] == ["channel minimal: inactive: missing secrets minimal_token (airlock secrets set NAME)"]


def test_status_gateway_down_and_stale_runtime_file(airlock_home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, doc = status(airlock_home, "--url", url)
    assert code == 2 and doc["gateway"]["up"] is False and doc["gateway"]["source"] == "--url"
    assert doc["problems"][0].startswith(f"gateway not reachable at {url}: ")

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = airlock_home / "run"
    run_dir.mkdir()
    (run_dir / "gateway.json").write_text(json.dumps({"pid": int(dead.stdout), "url": url, "started_at": 1.0}))
    code, doc = status(airlock_home)
    assert code == 2 and doc["gateway"]["stale_pid"] == int(dead.stdout)
    assert any("which is not running" in p for p in doc["problems"])
    text = run_cli(airlock_home, "status")
    assert text.returncode == 2 and "gateway: DOWN" in text.stdout


def test_status_bad_options(airlock_home: Path) -> None:
    one_line_error(run_cli(airlock_home, "status", "--url", "ftp://x"), "--url")
    one_line_error(run_cli(airlock_home, "status", "--timeout", "0"), "--timeout")
    assert not (airlock_home / "run").exists()


def test_runtime_file_is_private(airlock_home: Path, wat: Path, tmp_path: Path) -> None:
    install(airlock_home, tmp_path, build_component(wat), caps_doc("minimal"))
    with serving(airlock_home, channels=1):
        mode = (airlock_home / "run" / "gateway.json").stat().st_mode & 0o777
    assert mode == 0o600, oct(mode)


def test_status_shows_capabilities_file_warnings(airlock_home: Path, wat: Path, tmp_path: Path) -> None:
    """A Meta webhook without an app secret runs (unsigned POSTs) and status says so, without failing."""
    hook = {"scheme": "meta", "secret_name": "meta_verify_token"}
    doc = caps_doc("meta")
    doc["capabilities"]["channel"].update(allowed_paths=["/webhook/meta"], webhook=hook)
    install(airlock_home, tmp_path, build_component(wat, name="meta"), doc)
    with serving(airlock_home, channels=1):
        _code, report = status(airlock_home)
        text = run_cli(airlock_home, "status")
    row = report["channels"][0]
    assert not any("app_secret_name" in p for p in report["problems"])  # a warning, not a failure
    assert len(row["warnings"]) == 1 and "app_secret_name is not set" in row["warnings"][0], row
    assert "warning: channel meta: webhook.app_secret_name is not set" in text.stdout
