"""The installed-channel lifecycle through the real ``airlock`` command (subprocess) on a home no gateway serves:
versions kept in ``HOME/channels/<name>/<version>/``, the operator's settings kept across upgrade and rollback,
the plugin's new defaults applied where the operator set nothing, migration of the flat layout, and bad input
to each new command refused with one line and nothing changed on disk. Guest: the WAT test component."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from clirun import run_cli, tree
from typer.testing import CliRunner
from watguest import build_component

from airlock import cli
from airlock.channels.install import stage
from airlock.channels.layout import KEEP_VERSIONS, ChannelStore, bare_version
from airlock.channels.settings import effective_caps


def caps_doc(version: str = "0.1.0", **config: Any) -> dict[str, Any]:
    return {"name": "minimal", "version": version, "wit_version": "0.1.0",
            "capabilities": {"channel": {"allowed_paths": ["/webhook/minimal"]},
                             "http": {"allowlist": [{"host": "api.example.com"}],
                                      "rate_limit": {"requests_per_minute": 30}}},
            "config": {"dm_policy": "pairing", "greeting": "hi", **config}}


def write(tmp: Path, doc: dict[str, Any], stem: str) -> Path:
    path = tmp / stem / f"{doc['name']}.capabilities.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_component(tmp_path_factory.mktemp("lifecycle-wat"))


def ok(proc: Any) -> str:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return str(proc.stdout)


def instance(home: Path, name: str = "minimal") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((home / "channels" / name / "instance.json").read_text())
    return doc


def test_upgrade_keeps_operator_settings_and_applies_new_defaults_then_rollback(
        airlock_home: Path, wasm: Path, tmp_path: Path) -> None:
    v1 = write(tmp_path, caps_doc(), "v1")
    out = ok(run_cli(airlock_home, "channels", "install", str(wasm), str(v1)))
    first = bare_version("0.1.0", wasm.read_bytes(), v1.read_bytes())
    assert f"installed minimal {first}" in out
    assert instance(airlock_home) == {"platform": "minimal", "active": first, "history": [first], "disabled": False}

    ok(run_cli(airlock_home, "channels", "config", "set", "minimal", "dm_policy", "open"))
    ok(run_cli(airlock_home, "channels", "config", "set", "minimal", "capabilities.http.rate_limit."
                                                                      "requests_per_minute", "5"))
    # The plugin's 0.2.0 changes two defaults and adds a key; the operator set one of the changed ones.
    v2 = write(tmp_path, caps_doc("0.2.0", dm_policy="allowlist", greeting="hello", new_key=True), "v2")
    out = ok(run_cli(airlock_home, "channels", "upgrade", "minimal", str(wasm), str(v2)))
    second = bare_version("0.2.0", wasm.read_bytes(), v2.read_bytes())
    assert f"upgraded (unsigned) from {first}" in out and second in out
    store = ChannelStore(airlock_home / "channels")
    caps = effective_caps(store, "minimal")
    assert caps.version == "0.2.0"
    assert caps.config["dm_policy"] == "open"  # the operator's, kept
    assert (caps.config["greeting"], caps.config["new_key"]) == ("hello", True)  # the plugin's new defaults
    assert caps.capabilities.http is not None and caps.capabilities.http.rate_limit.requests_per_minute == 5

    shown = json.loads(ok(run_cli(airlock_home, "channels", "config", "show", "minimal", "--json")))
    assert shown["config"]["dm_policy"] == {"value": "open", "source": "operator", "plugin": "allowlist"}
    assert shown["config"]["greeting"] == {"value": "hello", "source": "plugin", "plugin": "hello"}

    versions = json.loads(ok(run_cli(airlock_home, "channels", "versions", "minimal", "--json")))
    assert (versions["active"], versions["previous"]) == (second, first)
    assert [v["version"] for v in versions["versions"]] == [first, second]
    assert all(v["publisher"] == "unsigned" and v["signed"] is False for v in versions["versions"])

    out = ok(run_cli(airlock_home, "channels", "rollback", "minimal"))
    assert f"rolled back from {second}" in out
    caps = effective_caps(store, "minimal")
    assert (caps.version, caps.config["dm_policy"], caps.config["greeting"]) == ("0.1.0", "open", "hi")
    assert "new_key" not in caps.config
    assert instance(airlock_home)["active"] == first

    ok(run_cli(airlock_home, "channels", "config", "unset", "minimal", "dm_policy"))
    assert effective_caps(store, "minimal").config["dm_policy"] == "pairing"  # the plugin's again
    assert ok(run_cli(airlock_home, "channels", "upgrade", "minimal", "--version", second))
    assert effective_caps(store, "minimal").config["dm_policy"] == "allowlist"


def test_disable_enable_and_remove_edit_the_home(airlock_home: Path, wasm: Path, tmp_path: Path) -> None:
    ok(run_cli(airlock_home, "channels", "install", str(wasm), str(write(tmp_path, caps_doc(), "v1"))))
    assert "in the home" in ok(run_cli(airlock_home, "channels", "disable", "minimal"))
    assert instance(airlock_home)["disabled"] is True
    row = json.loads(ok(run_cli(airlock_home, "channels", "list", "--json")))[0]
    assert row["state"] == "disabled"
    ok(run_cli(airlock_home, "channels", "enable", "minimal"))
    assert instance(airlock_home)["disabled"] is False
    assert "removed minimal" in ok(run_cli(airlock_home, "channels", "remove", "minimal"))
    assert not (airlock_home / "channels" / "minimal").exists()
    assert list((airlock_home / "channels").iterdir()) == []


def test_versions_past_the_limit_are_pruned_but_never_the_rollback_target(wasm: Path, tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "channels")
    raw = wasm.read_bytes()
    for i in range(KEEP_VERSIONS + 2):
        staged = stage(store, raw, json.dumps(caps_doc(f"1.0.{i}")).encode(), source=f"v{i}", upgrade=i > 0)
        store.activate("minimal", staged.version)
        store.prune("minimal")
    inst = store.get("minimal")
    assert len(inst.versions) == KEEP_VERSIONS
    assert inst.active.startswith(f"1.0.{KEEP_VERSIONS + 1}+") and inst.previous is not None
    assert inst.previous.startswith(f"1.0.{KEEP_VERSIONS}+")
    assert not any(v.startswith(("1.0.0+", "1.0.1+")) for v in inst.versions)  # the oldest went first
    store.activate("minimal", inst.versions[0])  # a rollback to the oldest kept: the next prune keeps it
    assert store.prune("minimal") == [] and store.get("minimal").active == inst.versions[0]


def test_flat_layout_is_migrated_on_first_start_without_losing_anything(
        airlock_home: Path, wasm: Path, tmp_path: Path) -> None:
    channels = airlock_home / "channels"
    edited = caps_doc(owner_id="42")  # the operator had edited the installed file, as the old README said
    edited["capabilities"]["http"]["rate_limit"]["requests_per_minute"] = 7
    shutil.copy(wasm, channels / "minimal.wasm")
    (channels / "minimal.capabilities.json").write_text(json.dumps(edited))
    (channels / "orphan.wasm").write_bytes(wasm.read_bytes())  # no capabilities file: left where it is
    (channels / "minimal.provenance.json").write_text('{"source": "package", "signed": true, "publisher": "ada"}')
    caps_bytes = (channels / "minimal.capabilities.json").read_bytes()

    rows = json.loads(ok(run_cli(airlock_home, "channels", "list", "--json")))
    version = bare_version("0.1.0", wasm.read_bytes(), caps_bytes)
    assert [(r["name"], r["version"]) for r in rows if r["name"] == "minimal"] == [("minimal", version)]
    assert not (channels / "minimal.wasm").exists() and not (channels / "minimal.capabilities.json").exists()
    assert (channels / "orphan.wasm").exists()
    kept = channels / "minimal" / version
    assert (kept / "component.wasm").read_bytes() == wasm.read_bytes()
    assert (kept / "capabilities.json").read_bytes() == caps_bytes  # byte for byte
    prov = ChannelStore(channels).provenance("minimal", version)
    assert (prov["source"], prov["signed"], prov["publisher"]) == ("package", True, "ada")  # the package's record
    assert not (channels / "minimal.provenance.json").exists()
    settings = json.loads((channels / "minimal" / "operator.json").read_text())
    assert settings["config"]["owner_id"] == "42" and settings["config"]["dm_policy"] == "pairing"
    assert settings["capabilities"]["http"]["rate_limit"]["requests_per_minute"] == 7

    # An upgrade after the migration keeps what the operator had edited.
    ok(run_cli(airlock_home, "channels", "upgrade", "minimal", str(wasm),
               str(write(tmp_path, caps_doc("0.2.0"), "v2"))))
    caps = effective_caps(ChannelStore(channels), "minimal")
    assert caps.config["owner_id"] == "42" and caps.capabilities.http is not None
    assert caps.capabilities.http.rate_limit.requests_per_minute == 7


def test_a_crash_mid_migration_is_finished_at_the_next_start(airlock_home: Path, wasm: Path) -> None:
    channels = airlock_home / "channels"
    shutil.copy(wasm, channels / "minimal.wasm")
    (channels / "minimal.capabilities.json").write_text(json.dumps(caps_doc()))
    store = ChannelStore(channels)
    assert store.migrate() == ["minimal"]
    # As if killed after the new directory was complete but before the flat files were deleted:
    shutil.copy(wasm, channels / "minimal.wasm")
    (channels / "minimal.capabilities.json").write_text(json.dumps(caps_doc()))
    assert store.migrate() == ["minimal"]
    assert sorted(p.name for p in channels.iterdir()) == ["minimal"]
    assert len(store.get("minimal").versions) == 1


BAD_INPUT = [
    (("channels", "install", "WASM", "CAPS", "--as", "Bad/Name"), "not a channel name"),
    (("channels", "install", "WASM", "CAPS"), "already installed"),
    (("channels", "upgrade", "minimal", "WASM", "OTHER"), "runs a 'minimal' component"),
    (("channels", "upgrade", "nope", "WASM", "CAPS"), "no channel named 'nope'"),
    (("channels", "upgrade", "minimal"), "a package, or WASM and CAPS"),
    (("channels", "upgrade", "minimal", "--version", "9.9.9"), "no version '9.9.9'"),
    (("channels", "upgrade", "minimal", "--version", "../x"), "no version"),
    (("channels", "upgrade", "minimal", "WASM", "BROKEN"), "$.version"),
    (("channels", "upgrade", "minimal", "CAPS", "CAPS"), "the first argument is the component"),
    (("channels", "rollback", "minimal"), "no earlier version"),
    (("channels", "rollback", "minimal", "--to", "0.0.1"), "no version '0.0.1'"),
    (("channels", "enable", "../etc"), "not a channel name"),
    (("channels", "disable", "nope"), "no channel named 'nope'"),
    (("channels", "remove", "nope"), "no channel named 'nope'"),
    (("channels", "versions", "nope"), "no channel named 'nope'"),
    (("channels", "config", "set", "minimal", "dm_policy", "sometimes"), "dm_policy"),
    (("channels", "config", "set", "minimal", "capabilities.http.rate_limit.requests_per_minute", "\"x\""),
     "requests_per_minute"),
    (("channels", "config", "set", "minimal", "a.b", "1"), "one name"),
    (("channels", "config", "set", "minimal", "capabilities..x", "1"), "not a setting key"),
    (("channels", "config", "unset", "minimal", "greeting"), "not among the operator's settings"),
    (("channels", "config", "show", "nope"), "no channel named 'nope'"),
    (("secrets", "set", "nope/Bad"), "invalid secret name"),
]


def test_bad_input_gets_one_line_and_changes_nothing(
        airlock_home: Path, wasm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each refused command: exit status 1, one ``error:`` line naming the problem, the home byte for byte as it
    was. In process (typer's runner: the same command functions, argument parsing and error handling as the
    subprocess above), so the 22 cases cost no interpreter start each."""
    monkeypatch.setenv("AIRLOCK_HOME", str(airlock_home))
    caps = write(tmp_path, caps_doc(), "v1")
    ok(run_cli(airlock_home, "channels", "install", str(wasm), str(caps)))
    other = dict(caps_doc(), name="other", capabilities={"channel": {"allowed_paths": ["/webhook/other"]}})
    paths = {"WASM": str(wasm), "CAPS": str(caps), "OTHER": str(write(tmp_path, other, "other")),
             "BROKEN": str(write(tmp_path, {"name": "minimal"}, "broken"))}
    before = tree(airlock_home)
    for args, fragment in BAD_INPUT:
        result = CliRunner().invoke(cli.app, [paths.get(a, a) for a in args], input="x\n")
        err = result.stderr.strip()
        assert result.exit_code == 1 and err.startswith("error: ") and "\n" not in err, (args, result.output)
        assert fragment in err and "Traceback" not in result.output, (args, err)
        assert tree(airlock_home) == before, args
