"""Tests for the ``airlock`` command line (``airlock.cli``), with the WAT test guest.

Every test runs against a temporary ``AIRLOCK_HOME`` with ``AIRLOCK_MASTER_KEY`` set; ``serve`` runs as a
real subprocess and is stopped with SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent / "guests"))

from servers import free_port
from watguest import build_component

from airlock import cli
from airlock.agents.loader import load_agent
from airlock.errors import ConfigError
from airlock.messages.sqlite import SqliteMessageLog
from airlock.stores import PairingStore, SecretStore

pytestmark = pytest.mark.usefixtures("restore_cli_logging")  # the CLI runs in-process and sets up logging

MASTER_KEY = "5f" * 32
WORLD = "airlock:channel/sandboxed-channel@0.1.0"


def minimal_caps(**channel: Any) -> dict[str, Any]:
    chan: dict[str, Any] = {"allowed_paths": ["/webhook/minimal"]}
    chan.update(channel)
    return {"name": "minimal", "version": "0.1.0", "wit_version": "0.1.0",
            "capabilities": {"channel": chan}, "config": {"dm_policy": "open"}}


@pytest.fixture(scope="module")
def wat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-wat")


@pytest.fixture(scope="module")
def wasm(wat_dir: Path) -> Path:
    return build_component(wat_dir)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("AIRLOCK_HOME", str(home))
    monkeypatch.setenv("AIRLOCK_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("COLUMNS", "200")
    return home


def write_caps(directory: Path, doc: dict[str, Any], name: str = "minimal.capabilities.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def caps(tmp_path: Path) -> Path:
    return write_caps(tmp_path / "src", minimal_caps())


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli.app, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.startswith("error: "), err
    assert "\n" not in err, err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in err, err
    return err


# ---- secrets ---------------------------------------------------------------------------------------


def test_secrets_set_list_rm_never_prints_values(home: Path) -> None:
    value = "tok-123:SECRETVALUE"
    r = run("secrets", "set", "bot_token", input=value + "\n")
    assert r.exit_code == 0, r.output
    assert "stored secret bot_token" in r.stdout
    assert value not in r.output
    assert SecretStore.open(home).get("bot_token") == value  # one trailing newline stripped

    r = run("secrets", "set", "two_lines", input="a\n\n")
    assert r.exit_code == 0
    assert SecretStore.open(home).get("two_lines") == "a\n"  # only ONE newline stripped

    r = run("secrets", "list")
    assert r.exit_code == 0
    assert r.stdout.split() == ["bot_token", "two_lines"]
    assert value not in r.output

    r = run("secrets", "rm", "bot_token")
    assert r.exit_code == 0 and "removed secret bot_token" in r.stdout
    assert run("secrets", "list").stdout.split() == ["two_lines"]
    assert_one_line_error(run("secrets", "rm", "bot_token"), "bot_token")


def test_secrets_set_prompts_hidden_on_a_terminal(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.secrets, "_stdin_is_tty", lambda: True)
    r = run("secrets", "set", "api_key", input="typed-secret\n")
    assert r.exit_code == 0, r.output
    assert "typed-secret" not in r.output
    assert SecretStore.open(home).get("api_key") == "typed-secret"


def test_secrets_set_rejects_bad_name_and_empty_value(home: Path) -> None:
    assert_one_line_error(run("secrets", "set", "Bad-Name", input="x"), "invalid secret name")
    assert_one_line_error(run("secrets", "set", "ok_name", input="\n"), "empty value")
    assert run("secrets", "list").stdout == ""


def test_secrets_set_checks_the_channels_validation_pattern(home: Path, wasm: Path, tmp_path: Path) -> None:
    doc = minimal_caps()
    doc["setup"] = {"required_secrets": [{"name": "bot_token", "validation": "^[0-9]+:"}]}
    assert run("channels", "install", str(wasm), str(write_caps(tmp_path / "v", doc))).exit_code == 0
    err = assert_one_line_error(run("secrets", "set", "bot_token", input="nope-secret\n"), "minimal")
    assert "nope-secret" not in err
    assert run("secrets", "set", "bot_token", input="123:abc\n").exit_code == 0


# ---- channels --------------------------------------------------------------------------------------


def test_channels_install_list_remove(home: Path, wasm: Path, caps: Path) -> None:
    r = run("channels", "install", str(wasm), str(caps))
    assert r.exit_code == 0, r.output
    assert "installed minimal 0.1.0+" in r.stdout
    channels = home / "channels"
    active = json.loads((channels / "minimal" / "instance.json").read_text())["active"]
    assert (channels / "minimal" / active / "component.wasm").read_bytes() == wasm.read_bytes()
    assert (channels / "minimal" / active / "capabilities.json").read_bytes() == caps.read_bytes()

    assert_one_line_error(run("channels", "install", str(wasm), str(caps)), "already installed", "--force")
    assert run("channels", "install", "--force", str(wasm), str(caps)).exit_code == 0

    r = run("channels", "list")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if "minimal" in line)
    for cell in ("0.1.0", WORLD, "7.", "active"):
        assert cell in row, row

    r = run("channels", "remove", "minimal")
    assert r.exit_code == 0 and "removed minimal" in r.stdout
    assert not (channels / "minimal").exists()
    assert_one_line_error(run("channels", "remove", "minimal"), "no channel named 'minimal'")
    assert_one_line_error(run("channels", "remove", "../etc"), "not a channel name")
    assert "no channels installed" in run("channels", "list").stderr


def test_channels_list_explains_missing_secrets(home: Path, wasm: Path, tmp_path: Path) -> None:
    doc = minimal_caps()
    doc["setup"] = {"required_secrets": [
        {"name": "bot_token"}, {"name": "chat_id"}, {"name": "extra", "optional": True},
        {"name": "hook_secret", "auto_generate": {"length": 32}},  # generated by serve, not missing
    ]}
    r = run("channels", "install", str(wasm), str(write_caps(tmp_path / "s", doc)))
    assert r.exit_code == 0, r.output
    assert "airlock secrets set bot_token" in r.stdout
    assert "inactive: missing secrets bot_token, chat_id" in run("channels", "list").stdout

    run("secrets", "set", "bot_token", input="t\n")
    run("secrets", "set", "chat_id", input="c\n")
    row = next(line for line in run("channels", "list").stdout.splitlines() if "minimal" in line)
    assert "inactive" not in row and "active" in row


def test_channels_install_refuses_what_does_not_load(
    home: Path, wasm: Path, caps: Path, tmp_path: Path,
) -> None:
    not_wasm = tmp_path / "x.wasm"
    not_wasm.write_text("hello")
    assert_one_line_error(run("channels", "install", str(not_wasm), str(caps)), "x.wasm", "not a WebAssembly")
    bad = write_caps(tmp_path / "bad", {"name": "minimal"})
    assert_one_line_error(run("channels", "install", str(wasm), str(bad)), str(bad), "$.version")
    assert_one_line_error(run("channels", "install", str(tmp_path / "nope.wasm"), str(caps)), "not found")
    assert not (home / "channels" / "minimal").exists()


def test_channels_check(home: Path, wasm: Path, caps: Path, tmp_path: Path) -> None:
    r = run("channels", "check", str(caps))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("ok: minimal 0.1.0")
    assert "/webhook/minimal" in r.stdout

    r = run("channels", "check", str(caps), str(wasm))
    assert r.exit_code == 0, r.output
    assert WORLD in r.stdout

    bad = write_caps(tmp_path / "bad", minimal_caps(allowed_paths=["webhook"]))
    err = assert_one_line_error(run("channels", "check", str(bad)))
    assert f"{bad}: $.capabilities.channel.allowed_paths: " in err
    assert "must start with '/'" in err

    broken = tmp_path / "broken.capabilities.json"
    broken.write_text('{"name": ')
    assert_one_line_error(run("channels", "check", str(broken)), str(broken), "invalid JSON")


# ---- inspect ---------------------------------------------------------------------------------------


def test_inspect_text_and_json(home: Path, wasm: Path) -> None:
    r = run("inspect", str(wasm))
    assert r.exit_code == 0, r.output
    for fragment in (WORLD, "airlock:channel/channel-host@0.1.0", "on-http-request", "on-shutdown", " ms"):
        assert fragment in r.stdout

    r = run("inspect", str(wasm), "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["supported"] is True and doc["reason"] is None
    assert doc["world"] == WORLD
    assert doc["imports"] == ["airlock:channel/channel-host@0.1.0"]
    assert doc["exports"]["airlock:channel/channel@0.1.0"][0] == "on-start"
    assert doc["size_bytes"] == wasm.stat().st_size
    assert doc["load_ms"] >= 0 and doc["from_cache"] is True  # the first run above compiled it


def test_inspect_reports_unsupported_files(home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not wasm at all")
    r = run("inspect", str(text))
    assert r.exit_code == 1
    assert "unsupported: not a WebAssembly binary" in r.stdout
    assert "Traceback" not in r.output

    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\x00\x00\x00")  # an empty core module
    r = run("inspect", str(core), "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["supported"] is False
    assert "core WebAssembly module, not a component" in doc["reason"]

    assert_one_line_error(run("inspect", str(tmp_path / "missing.wasm")), "not found")


# ---- invoke ----------------------------------------------------------------------------------------


def test_invoke_http_request_reports_log_emit_and_fuel(home: Path, wasm: Path, caps: Path) -> None:
    args = ("invoke", str(wasm), "--capabilities", str(caps), "on-http-request", "--input",
            json.dumps({"body": "hello airlock", "headers": {"X-Test": "1"}}))
    r = run(*args)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "log" in out and "/webhook/minimal" in out
    assert "emit-message" in out and "to u1: hello airlock" in out
    assert "result: ok" in out
    assert "fuel used:" in out

    doc = json.loads(run(*args, "--json").stdout)
    assert doc["ok"] is True and doc["error"] is None
    assert [c["function"] for c in doc["host_calls"]] == ["log", "emit-message"]
    assert doc["host_calls"][0]["detail"] == {"level": "info", "message": "/webhook/minimal"}
    assert doc["logs"] == [{"level": "info", "message": "/webhook/minimal"}]
    assert doc["emitted"][0]["content"] == "hello airlock" and doc["emitted"][0]["admitted"] is True
    assert doc["value"] == {"status": 200, "headers": {}, "body": "ok"}
    assert doc["input"]["headers"] == {"x-test": "1"}
    assert 0 < doc["fuel_used"] < doc["fuel_limit"]
    assert doc["elapsed_ms"] > 0


def test_invoke_on_respond_shows_the_workspace_write(home: Path, wasm: Path, caps: Path) -> None:
    args = ("invoke", str(wasm), "-c", str(caps), "on-respond", "--input", '{"content": "hi there"}')
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert "workspace-write" in r.stdout and "last-reply" in r.stdout
    assert 'last-reply = "hi there"' in r.stdout

    doc = json.loads(run(*args, "--json").stdout)
    assert doc["host_calls"] == [{"function": "workspace-write", "ok": True, "error": None,
                                  "detail": {"path": "last-reply", "bytes": 8}}]
    assert doc["workspace"] == {"reads": [], "writes": {"last-reply": "hi there"}, "applied": True, "seeded": []}
    assert not (home / "workspace.db").exists()  # the workspace is temporary


def test_invoke_on_start_defaults_to_the_caps_config(home: Path, wasm: Path, caps: Path) -> None:
    doc = json.loads(run("invoke", str(wasm), "-c", str(caps), "on-start", "--json").stdout)
    assert doc["input"] == {"config": {"dm_policy": "open"}}
    assert doc["value"]["http_endpoints"][0]["path"] == "/webhook/minimal"


def test_invoke_failed_callback_exits_2_with_trap_class(home: Path, wat_dir: Path, tmp_path: Path) -> None:
    looping = build_component(wat_dir, mode="loop")
    caps = write_caps(tmp_path / "t", minimal_caps(callback_timeout_secs=1))
    r = run("invoke", str(looping), "-c", str(caps), "on-poll", "--json")
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert doc["error"]["class"] == "timeout"
    r = run("invoke", str(looping), "-c", str(caps), "on-poll")
    assert r.exit_code == 2
    assert "FAILED (timeout)" in r.stdout


def test_invoke_rejects_bad_input(home: Path, wasm: Path, caps: Path) -> None:
    base = ("invoke", str(wasm), "-c", str(caps))
    assert_one_line_error(run(*base, "on-nothing"), "unknown callback")
    assert_one_line_error(run(*base, "on-respond", "--input", "{nope"), "invalid JSON")
    assert_one_line_error(run(*base, "on-respond", "--input", '{"text": "x"}'), "unknown key 'text'")
    assert_one_line_error(run(*base, "on-status", "--input", '{"status": "sleepy"}'), "sleepy")
    assert_one_line_error(run(*base, "on-poll", "--input", '{"a": 1}'), "takes no input")


def test_report_redacts_secret_values() -> None:
    from airlock.cli import report as cli_report

    doc = {"url": "https://x/botSEKRIT-123/send", "nested": [{"log": "token SEKRIT-123"}], "n": 3, "short": "ab"}
    out = cli_report.redact(doc, {"bot_token": "SEKRIT-123", "tiny": "ab"})
    assert out == {"url": "https://x/bot[REDACTED:bot_token]/send",
                   "nested": [{"log": "token [REDACTED:bot_token]"}], "n": 3, "short": "ab"}
    assert cli_report.safe("a\x1b[31mred\x07") == "a\\x1b[31mred\\x07"


# ---- pairing ---------------------------------------------------------------------------------------


def test_pairing_list_and_approve(home: Path) -> None:
    home.mkdir(parents=True)
    with PairingStore(home / "pairing.db") as store:
        code, created = store.upsert_request("minimal", "4242", json.dumps({"name": "alice"}))
    assert created

    r = run("pairing", "list", "minimal")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if code in line)
    assert "4242" in row and "alice" in row and "in 1" in row  # expires in 14m..15m

    assert_one_line_error(run("pairing", "approve", "minimal", "ZZZZZZZZ"), "unknown or expired")
    r = run("pairing", "approve", "minimal", code.lower())
    assert r.exit_code == 0, r.output
    assert "approved 4242 on minimal" in r.stdout
    with PairingStore(home / "pairing.db") as store:
        assert store.resolve_identity("minimal", "4242") == "4242"
        assert store.pending("minimal") == []
    assert "no pending pairing requests" in run("pairing", "list", "minimal").stderr


# ---- agents ----------------------------------------------------------------------------------------


def test_load_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_agent_mod.py").write_text(
        "VALUE = 3\n"
        "def sync_agent(host):\n    return None\n"
        "async def agent(host):\n    return None\n"
        "class Box:\n    async def run(host):\n        return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_agent("my_agent_mod:agent").__name__ == "agent"
    assert load_agent("my_agent_mod:Box.run") is not None
    for spec, fragment in [
        ("no_colon", "expected module:callable"),
        ("no_such_module_xyz:run", "cannot import 'no_such_module_xyz'"),
        ("my_agent_mod:missing", "has no attribute 'missing'"),
        ("my_agent_mod:VALUE", "is not callable"),
        ("my_agent_mod:sync_agent", "must be async"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            load_agent(spec)


def test_serve_with_a_bad_agent_fails_in_one_line(home: Path) -> None:
    assert_one_line_error(run("serve", "--port", "0", "--agent", "no_such_module_xyz:run"),
                          "cannot import 'no_such_module_xyz'")
    assert_one_line_error(run("serve", "--upstream", "api.example.com"), "expected HOST=URL")
    assert_one_line_error(run("serve", "--port", "70000"), "listen_port")


# ---- serve (a real process) ------------------------------------------------------------------------


def wait_for_health(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, Any]:
    """Poll /health until it answers with the minimal channel loaded (the server starts first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                doc: dict[str, Any] = json.loads(resp.read())
            # The server answers before channels finish on-start; wait until the channel is active.
            if doc["channels"].get("minimal", {}).get("active"):
                return doc
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer /health with the channel loaded in time")


def wait_for_reply(home: Path, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = SqliteMessageLog(home / "state.db")
        try:
            if db.load_workspace("minimal").get("last-reply") == expected:
                return
        finally:
            db.close()
        time.sleep(0.1)
    raise AssertionError(f"no reply {expected!r} in the durable workspace")


def serve_and_stop(home: Path, extra: list[str], message: str, expected_reply: str, cwd: Path) -> str:
    port = free_port()
    # This checkout's code, whatever the venv's editable install points at.
    host_dir = str(Path(__file__).resolve().parents[1] / "host")
    env = {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_MASTER_KEY": MASTER_KEY,
           "PYTHONPATH": os.pathsep.join(p for p in (host_dir, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "airlock.cli", "serve", "--port", str(port), "--admin-port", "0", *extra],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}/health", proc)
        assert health["status"] == "ok"
        assert health["channels"]["minimal"]["active"] is True
        req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook/minimal", data=message.encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and resp.read() == b"ok"
        wait_for_reply(home, expected_reply)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "SIGINT received; stopping" in stderr
    assert "airlock stopped" in stderr
    assert "Traceback" not in stderr
    return stderr


def install_durable(wasm: Path, tmp_path: Path) -> None:
    caps = write_caps(tmp_path / "d", minimal_caps(durable_workspace_paths=["last-reply"]))
    r = run("channels", "install", str(wasm), str(caps))
    assert r.exit_code == 0, r.output


def test_serve_answers_health_echoes_and_stops_on_sigint(home: Path, wasm: Path, tmp_path: Path) -> None:
    install_durable(wasm, tmp_path)
    stderr = serve_and_stop(home, ["--upstream", "api.example.com=http://127.0.0.1:9"], "hi there",
                            "echo: hi there", tmp_path)
    assert "upstream override: api.example.com -> http://127.0.0.1:9" in stderr


def test_serve_runs_a_custom_agent(home: Path, wasm: Path, tmp_path: Path) -> None:
    install_durable(wasm, tmp_path)
    (tmp_path / "shout_agent.py").write_text(
        "async def run(host):\n"
        "    async for message in host.messages():\n"
        "        await host.respond(message, message.content.upper())\n"
    )
    stderr = serve_and_stop(home, ["--agent", "shout_agent:run"], "quiet please", "QUIET PLEASE", tmp_path)
    assert "shout_agent:run" in stderr
