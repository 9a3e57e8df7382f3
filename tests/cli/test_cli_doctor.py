"""``airlock doctor`` through the real command: a fresh home, permissions of the home and the key file, a
wrong master key, a busy port, clock skew against a loopback server's Date header, and the compile cache."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from clirun import one_line_error, run_cli, tree


def doctor(home: Path, *args: str, **env: str) -> tuple[int, dict[str, list[tuple[str, str]]]]:
    """Exit status and {area: [(status, detail), ...]}."""
    proc = run_cli(home, "doctor", "--json", "--port", "0", *args, **env)
    assert proc.returncode in (0, 2), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is (proc.returncode == 0)
    found: dict[str, list[tuple[str, str]]] = {}
    for check in doc["checks"]:
        found.setdefault(check["area"], []).append((check["status"], check["detail"]))
    return proc.returncode, found


@contextmanager
def date_server(offset_s: float) -> Iterator[str]:
    """A loopback HTTP server whose Date header is ``offset_s`` seconds off this machine's clock."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def date_time_string(self, timestamp: Any = None) -> str:
            return formatdate(time.time() + offset_s, usegmt=True)

        def do_HEAD(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_fresh_home_is_fine_and_untouched(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    code, found = doctor(home)
    assert code == 0
    assert found["home"][0][0] == "note" and found["secret store"][0][0] == "note"
    assert found["clock"] == [("skip", found["clock"][0][1])] and "--clock-url" in found["clock"][0][1]
    assert found["python"][0][0] == "ok" and found["wasmtime"][0][0] == "ok"
    assert not home.exists()


def test_permissions_of_the_home_and_the_key_file(airlock_home: Path) -> None:
    no_env = {"AIRLOCK_MASTER_KEY": ""}  # use HOME/master.key
    assert run_cli(airlock_home, "secrets", "set", "a_token", input="v4lue\n", **no_env).returncode == 0
    key = airlock_home / "master.key"
    assert key.stat().st_mode & 0o777 == 0o600
    airlock_home.chmod(0o700)
    code, found = doctor(airlock_home, **no_env)
    assert code == 0
    assert found["home"][0][0] == "ok" and found["master key"][0][0] == "ok"
    assert found["secret store"] == [("ok", "opens with the master key (1 secret)")]

    airlock_home.chmod(0o755)
    key.chmod(0o644)
    code, found = doctor(airlock_home, **no_env)
    assert code == 2
    assert found["home"][0][0] == "warn" and f"chmod 700 {airlock_home}" in found["home"][0][1]
    assert found["master key"] == [("fail", f"{key} has mode 0644; fix with: chmod 600 {key}")]
    key.chmod(0o600)


def test_wrong_master_key_fails_the_secret_store(airlock_home: Path) -> None:
    assert run_cli(airlock_home, "secrets", "set", "a_token", input="v4lue\n").returncode == 0
    code, found = doctor(airlock_home, AIRLOCK_MASTER_KEY="6a" * 32)
    assert code == 2 and found["secret store"][0][0] == "fail"
    assert "v4lue" not in json.dumps(found)


def test_busy_port(airlock_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, found = doctor(airlock_home, "--port", str(port))
        assert code == 2 and found["port"][0][0] == "fail" and f"127.0.0.1:{port}" in found["port"][0][1]
        # Held by this home's gateway (the runtime file names a running process and this port): fine.
        (airlock_home / "run").mkdir()
        (airlock_home / "run" / "gateway.json").write_text(json.dumps(
            {"pid": os.getpid(), "url": f"http://127.0.0.1:{port}", "listen_port": port}))
        code, found = doctor(airlock_home, "--port", str(port))
        assert code == 0 and "in use by this home's gateway" in found["port"][0][1]
    code, found = doctor(airlock_home, "--port", str(port))
    assert found["port"] == [("ok", f"127.0.0.1:{port} is free")]


@pytest.mark.parametrize(("offset", "status"), [(0, "ok"), (-90, "warn"), (900, "fail")])
def test_clock_skew_against_a_date_header(airlock_home: Path, offset: int, status: str) -> None:
    with date_server(offset) as url:
        code, found = doctor(airlock_home, "--clock-url", url)
    assert found["clock"][0][0] == status, found["clock"]
    assert code == (2 if status == "fail" else 0)
    if offset:
        shown = int(found["clock"][0][1].split(" s ")[0])
        assert abs(shown - abs(offset)) <= 2  # one-second Date resolution, plus the round trip
        assert ("behind" if offset > 0 else "ahead of") in found["clock"][0][1]


def test_compile_cache_and_channels(airlock_home: Path, tmp_path: Path) -> None:
    cache = tmp_path / "own-cache"  # not the session's shared cache: this test writes junk into it
    (airlock_home / "cache").unlink()
    cache.mkdir()
    (airlock_home / "cache").symlink_to(cache)
    (cache / ("ab" * 32 + ".cwasm")).write_bytes(b"not a compiled component")
    (cache / "x.tmp").write_bytes(b"")
    (airlock_home / "channels" / "broken.capabilities.json").write_text('{"name": "broken"}')
    before = tree(airlock_home)
    code, found = doctor(airlock_home)
    assert code == 2
    assert found["compile cache"][0][0] == "warn" and "0 of 1 entries" in found["compile cache"][0][1]
    assert found["compile cache"][1][0] == "note" and "1 leftover" in found["compile cache"][1][1]
    assert found["channel broken"][0][0] == "fail" and "$.version" in found["channel broken"][0][1]
    assert tree(airlock_home) == before and sorted(p.name for p in cache.iterdir()) == ["ab" * 32 + ".cwasm",
                                                                                        "x.tmp"]
    text = run_cli(airlock_home, "doctor", "--port", "0")
    assert text.returncode == 2 and "1 check(s) failed" in text.stdout


def test_bad_options(airlock_home: Path) -> None:
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "doctor", "--clock-url", "ftp://x"), "--clock-url")
    one_line_error(run_cli(airlock_home, "doctor", "--port", "70000"), "listen_port")
    assert tree(airlock_home) == before


def test_a_missing_wasm_tools_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without wasm-tools the gateway loads channels without the http adapter (runtime.adapter): worth a warning,
    not only the note a channel-building tool gets."""
    from airlock.cli import doctor_checks

    monkeypatch.setattr(doctor_checks, "_which", lambda tool: None if tool == "wasm-tools" else f"/bin/{tool}")
    checks = {c.area: c for c in doctor_checks.toolchain()}
    assert checks["tool wasm-tools"].status == "warn"
    assert "without the http adapter" in checks["tool wasm-tools"].detail
    assert checks["tool cargo"].status == "ok"


def test_channels_this_host_cannot_run_or_runs_weakly(airlock_home: Path) -> None:
    """An unsupported websocket protocol fails the channel's check; a Meta webhook without an app secret warns."""
    base = {"version": "0.1.0", "wit_version": "0.1.0"}
    files = {
        "sock": {**base, "name": "sock", "capabilities": {"websocket": {"url": "wss://gw.example.com/",
                                                                       "protocol": "carrier_pigeon"}}},
        "meta": {**base, "name": "meta", "capabilities": {"channel": {"allowed_paths": ["/webhook/meta"], "webhook": {
            "scheme": "meta", "secret_name": "meta_verify_token"}}}},
    }
    for name, doc in files.items():
        (airlock_home / "channels" / f"{name}.capabilities.json").write_text(json.dumps(doc))
        (airlock_home / "channels" / f"{name}.wasm").write_bytes(b"\0asm")
    code, found = doctor(airlock_home)
    assert code == 2
    assert ("fail", "websocket protocol 'carrier_pigeon' is not supported by this host") in [
        (status, text.split(" (")[0]) for status, text in found["channel sock"]]
    assert [status for status, _ in found["channel meta"]] == ["warn", "ok"]
    assert "app_secret_name is not set" in found["channel meta"][0][1]


def test_state_on_postgresql_reachable_versioned_and_down(tmp_path: Path, pg_url: str) -> None:
    """The state check: PostgreSQL reachable with its schema version (not migrated by the doctor), secrets read
    from it; a newer schema fails; a server that does not answer fails with the URL's password hidden."""
    import psycopg

    from airlock.state.pg_schema import MIGRATIONS
    from airlock.state.postgres import PgDb

    home = tmp_path / "pg"
    home.mkdir(mode=0o700)
    (home / "airlock.toml").write_text(f'state = "{pg_url}"\n')
    code, found = doctor(home)
    assert found["state"][0][0] == "note" and "schema version 0" in found["state"][0][1]  # not migrated
    PgDb(pg_url).close()  # what airlock serve does at start
    code, found = doctor(home)
    assert code == 0 and found["state"] == [("ok", found["state"][0][1])]
    assert f"schema version {len(MIGRATIONS)}" in found["state"][0][1]
    assert found["secret store"][0][0] == "ok" and "in PostgreSQL" in found["secret store"][0][1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO airlock_schema (version, name) VALUES (%s, 'future')", (len(MIGRATIONS) + 1,))
    code, found = doctor(home)
    assert code == 2 and found["state"][0][0] == "fail" and "upgrade Airlock" in found["state"][0][1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    (home / "airlock.toml").write_text(f'state = "postgresql://bob:hunter2@127.0.0.1:{port}/x"\n')
    code, found = doctor(home)
    assert code == 2 and found["state"][0][0] == "fail" and "cannot connect" in found["state"][0][1]
    assert "hunter2" not in json.dumps(found) and "bob:***@" in found["state"][0][1]
