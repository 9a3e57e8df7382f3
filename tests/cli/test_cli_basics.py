"""``airlock --version``, ``-h`` everywhere, shell completion and ``--json`` on every list/show command,
through the real command (a subprocess), on a temporary home with the WAT test guest installed."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from clirun import one_line_error, run_cli, tree
from typer.testing import CliRunner
from watguest import build_component

from airlock.cli import app
from airlock.stores import PairingStore

WORLDS = ["airlock:channel/sandboxed-channel@0.2.0", "airlock:channel/sandboxed-channel@0.1.0",
          "near:agent/sandboxed-channel@0.3.1",
          "near:agent/sandboxed-channel@0.3.0"]
WAT_WORLD = "airlock:channel/sandboxed-channel@0.1.0"
"""The world of the hand-written test component (watguest: the frozen 0.1.0 text)."""


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_component(tmp_path_factory.mktemp("basics-wat"))


@pytest.fixture
def caps(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "minimal.capabilities.json"
    path.parent.mkdir()
    path.write_text(json.dumps({
        "name": "minimal", "version": "0.1.0", "wit_version": "0.1.0",
        "capabilities": {"channel": {"allowed_paths": ["/webhook/minimal"]}},
        "setup": {"required_secrets": [{"name": "minimal_token"}]}, "config": {"dm_policy": "pairing"}}))
    return path


def test_version_flag_and_version_json_agree(airlock_home: Path) -> None:
    text = run_cli(airlock_home, "--version")
    assert text.returncode == 0, text.stderr
    doc = json.loads(run_cli(airlock_home, "version", "--json").stdout)
    assert doc["airlock"] == importlib.metadata.version("airlock")
    assert doc["wasmtime"] == importlib.metadata.version("wasmtime")
    assert doc["worlds"] == WORLDS
    assert text.stdout.splitlines()[:2] == [f"airlock {doc['airlock']}", f"wasmtime {doc['wasmtime']} (wasmtime-py)"]
    for world in WORLDS:
        assert f"  {world}" in text.stdout.splitlines()
    assert run_cli(airlock_home, "-V").stdout == text.stdout


@pytest.mark.parametrize("args", [
    [], ["channels"], ["channels", "install"], ["channels", "list"], ["channels", "remove"], ["channels", "check"],
    ["secrets"], ["secrets", "set"], ["secrets", "list"], ["secrets", "rm"], ["pairing"], ["pairing", "list"],
    ["pairing", "approve"], ["serve"], ["inspect"], ["invoke"], ["version"], ["status"], ["doctor"],
    ["new"], ["new", "python"], ["new", "rust"], ["config"], ["config", "show"], ["secrets", "rotate-key"],
    ["package"], ["package", "build"], ["package", "sign"], ["package", "verify"], ["keys"], ["keys", "generate"],
    ["trust"], ["trust", "add"], ["trust", "list"], ["trust", "rm"],
])
def test_dash_h_works_everywhere(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "-h"], prog_name="airlock")
    assert result.exit_code == 0, result.output
    assert f"Usage: airlock {' '.join(args)}".rstrip() in " ".join(result.output.split())


def test_dash_h_through_the_real_command(airlock_home: Path) -> None:
    proc = run_cli(airlock_home, "invoke", "-h")
    assert proc.returncode == 0, proc.stderr
    for option in ("--workspace", "--after-start", "--offline", "--json", "@FILE"):
        assert option in proc.stdout


def test_shell_completion(airlock_home: Path, wasm: Path, caps: Path) -> None:
    assert run_cli(airlock_home, "channels", "install", str(wasm), str(caps)).returncode == 0

    def complete(words: str) -> list[str]:
        proc = run_cli(airlock_home, _AIRLOCK_COMPLETE="complete_bash", COMP_WORDS=words,
                       COMP_CWORD=str(len(words.split(" ")) - 1))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("airlock cha") == ["channels"]
    assert complete("airlock channels ") == ["install", "list", "remove", "check"]
    assert complete("airlock channels remove m") == ["minimal"]  # installed channel names
    assert complete("airlock pairing list ") == ["minimal"]
    assert complete("airlock pairing list x") == []
    for shell, marker in (("bash", "complete -o default -F _airlock_completion airlock"),
                          ("zsh", "compdef _airlock_completion airlock"), ("fish", "complete --command airlock")):
        script = run_cli(airlock_home, _AIRLOCK_COMPLETE=f"source_{shell}")
        assert script.returncode == 0 and marker in script.stdout, script.stdout


def test_json_on_every_list_and_show_command(airlock_home: Path, wasm: Path, caps: Path) -> None:
    empty = {"channels": ["channels", "list"], "secrets": ["secrets", "list"], "pairing": ["pairing", "list", "x"]}
    for args in empty.values():
        proc = run_cli(airlock_home, *args, "--json")
        assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc
    assert run_cli(airlock_home, "channels", "install", str(wasm), str(caps)).returncode == 0

    rows = json.loads(run_cli(airlock_home, "channels", "list", "--json").stdout)
    provenance = rows[0].pop("provenance")
    assert (provenance["publisher"], provenance["signed"], provenance["recorded"]) == ("unsigned", False, True)
    assert rows == [{"name": "minimal", "version": "0.1.0", "world": WAT_WORLD, "size_bytes": wasm.stat().st_size,
                     "state": "inactive", "status": "inactive: missing secrets minimal_token"}]
    text = run_cli(airlock_home, "channels", "list").stdout
    assert "inactive: missing secrets minimal_token" in text and "minimal" in text

    assert run_cli(airlock_home, "secrets", "set", "minimal_token", input="t0k3n-value\n").returncode == 0
    secrets = run_cli(airlock_home, "secrets", "list", "--json")
    assert json.loads(secrets.stdout) == ["minimal_token"] and "t0k3n-value" not in secrets.stdout
    assert json.loads(run_cli(airlock_home, "channels", "list", "--json").stdout)[0]["state"] == "active"

    with PairingStore(airlock_home / "pairing.db") as store:
        code, _ = store.upsert_request("minimal", "4242", json.dumps({"name": "ada"}))
    pending = json.loads(run_cli(airlock_home, "pairing", "list", "minimal", "--json").stdout)
    assert [(p["code"], p["external_id"], json.loads(p["meta_json"])) for p in pending] == [
        (code, "4242", {"name": "ada"})]
    assert 0 < pending[0]["expires_in_s"] <= 15 * 60

    check = json.loads(run_cli(airlock_home, "channels", "check", str(caps), str(wasm), "--json").stdout)
    assert check["name"] == "minimal" and check["component"] == {"world": WAT_WORLD,
                                                                 "size_bytes": wasm.stat().st_size}
    assert check["summary"] in run_cli(airlock_home, "channels", "check", str(caps), str(wasm)).stdout


def test_bad_input_is_one_line_and_changes_nothing(airlock_home: Path, wasm: Path, caps: Path) -> None:
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "channels", "remove", "../x"), "not a channel name")
    one_line_error(run_cli(airlock_home, "channels", "install", str(wasm), str(caps.with_name("no.json"))))
    one_line_error(run_cli(airlock_home, "secrets", "set", "Bad-Name", input="v\n"), "invalid secret name")
    assert tree(airlock_home) == before
