"""``airlock new python|rust NAME``: scaffolds that build, pass their own tests and run in the sandbox.

The Python scaffold is built with componentize-py and invoked (``--after-start``, ``--offline``); the SDK
install into a clean venv is tests/test_packaging.py. The Rust scaffold runs its unit tests with
``cargo test`` and is built into a component with scripts/build-rust-guest.sh. Both cargo runs use the
target directories ``make`` fills (``target/`` for ``make rust-test``, ``build/cargo-target`` for ``make
guests``; ``AIRLOCK_TEST_CARGO_TARGET`` overrides the latter), so the dependencies and the wasm standard
library are not compiled again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clirun import REPO, one_line_error, run_cli

pytestmark = pytest.mark.e2e


def invoke_json(home: Path, *args: str) -> dict[str, Any]:
    proc = run_cli(home, "invoke", *args, "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_python_scaffold_builds_tests_and_runs(airlock_home: Path, tmp_path: Path) -> None:
    where = tmp_path / "echo-py"
    made = run_cli(airlock_home, "new", "python", "echo-py", "--dir", str(where))
    assert made.returncode == 0, made.stderr
    assert sorted(str(p.relative_to(where)) for p in where.rglob("*") if p.is_file()) == [
        "README.md", "app.py", "echo-py.capabilities.json", "echo_py_channel.py", "tests/test_echo_py.py"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "sdk" / "python")}
    unit = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", "tests"], cwd=where, env=env,
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0 and "Ran 6 tests" in unit.stderr, unit.stderr

    wasm = where / "build" / "echo-py.wasm"
    build = subprocess.run(["bash", str(REPO / "scripts" / "build-python-guest.sh"), str(where), str(wasm)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    webhook = invoke_json(airlock_home, str(wasm), "on-http-request", "--after-start", "--input",
                          '{"body": {"user": "u1", "text": "hi"}, "secret_validated": true}')
    answer = json.loads(webhook["value"]["body"])  # dm_policy pairing: an unknown sender gets a code
    assert webhook["value"]["status"] == 200 and answer["status"] == "pairing" and len(answer["code"]) == 8
    canned = tmp_path / "canned.json"
    canned.write_text(json.dumps([{"method": "POST", "url": "https://hooks.example.com/airlock/reply",
                                   "json": {"ok": True}}]))
    reply = invoke_json(airlock_home, str(wasm), "on-respond", "--after-start", "--offline", str(canned),
                        "--input", '{"content": "echo: hi", "metadata": {"user": "u1"}}')
    [sent] = reply["offline"]["requests"]
    assert sent["answered_by"] == 0 and json.loads(sent["body"]) == {"user": "u1", "text": "echo: hi"}


def test_rust_scaffold_tests_and_builds(airlock_home: Path, tmp_path: Path) -> None:
    cargo = shutil.which("cargo")
    assert cargo, "cargo is needed (make rust-toolchain)"
    where = tmp_path / "echo-rs"
    made = run_cli(airlock_home, "new", "rust", "echo-rs", "--dir", str(where), "--sdk", str(REPO / "sdk" / "rust"))
    assert made.returncode == 0, made.stderr
    manifest = (where / "Cargo.toml").read_text()
    assert 'name = "echo-rs-channel"' in manifest and f'path = "{REPO / "sdk" / "rust"}"' in manifest
    caps = json.loads((where / "echo-rs.capabilities.json").read_text())
    assert caps["name"] == "echo-rs" and caps["capabilities"]["channel"]["allowed_paths"] == ["/webhook/echo-rs"]
    sources = "".join(p.read_text() for p in (where / "src").glob("*.rs"))
    assert "template" not in sources.lower() or "TemplateChannel" in sources  # names renamed, the type kept

    unit = subprocess.run([cargo, "test", "--offline", "--quiet"], cwd=where, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "CARGO_TARGET_DIR": str(REPO / "target")})
    assert unit.returncode == 0, unit.stdout[-3000:] + unit.stderr[-3000:]
    assert "13 passed" in unit.stdout

    wasm = where / "build" / "echo-rs.wasm"
    target = os.environ.get("AIRLOCK_TEST_CARGO_TARGET", str(REPO / "build" / "cargo-target"))
    build = subprocess.run(["bash", str(REPO / "scripts" / "build-rust-guest.sh"), str(where), str(wasm)],
                           capture_output=True, text=True, timeout=900, env={**os.environ, "CARGO_TARGET_DIR": target})
    assert build.returncode == 0, build.stderr[-3000:]
    started = invoke_json(airlock_home, str(wasm), "on-start")
    assert started["value"]["http_endpoints"][0]["path"] == "/webhook/echo-rs"


def test_bad_names_and_places_change_nothing(airlock_home: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    for args, fragment in [
        (("python", "Echo"), "not a channel name"),
        (("python", "9lives"), "not a channel name"),
        (("rust", "template-rust"), "other than"),
        (("python", "ok-name", "--dir", str(taken)), "already exists"),
        (("python", "ok-name", "--dir", str(tmp_path / "no" / "such" / "parent")), "directory not found"),
        (("rust", "ok-name", "--dir", str(tmp_path / "r"), "--sdk", str(tmp_path)), "--sdk"),
    ]:
        one_line_error(run_cli(airlock_home, "new", *args, cwd=tmp_path), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "taken"] and not any(taken.iterdir())
