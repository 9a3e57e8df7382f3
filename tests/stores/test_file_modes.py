"""Everything Airlock creates under its home is 0600 (files) / 0700 (directories), whatever the umask
(issue 13, defect 10: pairing.db and workspace.db were created 0644).

A fresh home is filled the way an operator fills it: ``airlock secrets set`` (the master key file and the store)
and ``airlock channels install`` (channels/, the compile cache), both through the real CLI, then the gateway
runs a webhook and a reply whose workspace write is durable, so the SQLite databases and their -wal/-shm files
exist. Modes are checked while the gateway runs and after it stopped.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import watguest
from conftest import minimal_caps
from typer.testing import CliRunner

from airlock import cli
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import PairingStore
from airlock.stores.files import private_dir, private_file

pytestmark = pytest.mark.usefixtures("restore_cli_logging")  # the CLI runs in-process and sets up logging


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    value: int = request.param
    old = os.umask(value)
    yield value
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Relative path -> permission bits, for ``root`` and everything under it (symlinks not followed)."""
    out = {".": stat.S_IMODE(root.lstat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def assert_private(root: Path, found: dict[str, int]) -> None:
    loose = {name: oct(mode) for name, mode in found.items()
             if mode != (0o700 if (root / name).is_dir() else 0o600)}
    assert loose == {}, f"not 0600/0700 under {root}: {loose}"


def invoke(*args: str, input: str | None = None) -> None:
    result = CliRunner().invoke(cli.app, list(args), input=input)
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.mark.parametrize("umask", [0o022, 0o000], indirect=True, ids=["umask022", "umask000"])
async def test_everything_under_the_home_is_private(
    tmp_path: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    home = tmp_path / "new-parent" / "home"
    monkeypatch.setenv("AIRLOCK_HOME", str(home))
    monkeypatch.delenv("AIRLOCK_MASTER_KEY")  # master.key is created in the home
    caps = tmp_path / "minimal.capabilities.json"
    caps.write_text(json.dumps(minimal_caps("minimal", durable_workspace_paths=["last-reply"])))

    invoke("secrets", "set", "bot_token", input="value\n")
    invoke("channels", "install", str(watguest.build_component(wat_dir, "minimal")), str(caps))
    async with AirlockHost(HostConfig.build(home=home, listen_port=0)) as host, aiohttp.ClientSession() as http:
        async with http.post(f"{host.base_url}/webhook/minimal", data=b"hello") as resp:
            assert resp.status == 200
        delivery = await host.next_message()
        assert (await host.respond(delivery, "reply")).ok  # a durable workspace write: state.db's WAL
        running = modes(home)
    stopped = modes(home)

    expected = {"master.key", "secrets.json", "pairing.db", "pairing.db-wal", "pairing.db-shm", "state.db",
                "state.db-wal", "state.db-shm", "channels", "channels/minimal", "channels/minimal/instance.json",
                "cache"}
    assert expected <= set(running), sorted(running)
    kept = [n for n in running if n.startswith("channels/minimal/0.1.0+")]  # the version's directory and files
    assert {n.rsplit("/", 1)[-1] for n in kept} >= {"component.wasm", "capabilities.json", "provenance.json"}, kept
    assert any(name.startswith("cache/") and name.endswith(".cwasm") for name in running), sorted(running)
    assert_private(home, running)
    assert_private(home, stopped)
    assert stat.S_IMODE((tmp_path / "new-parent").stat().st_mode) == 0o700  # a parent the host created


@pytest.mark.parametrize("umask", [0o022], indirect=True)
def test_files_of_an_older_looser_install_are_tightened(tmp_path: Path, umask: int) -> None:
    db = tmp_path / "pairing.db"
    PairingStore(db).close()
    for path in (db, tmp_path / "pairing.db-wal", tmp_path / "pairing.db-shm"):
        path.touch()
        path.chmod(0o644)
    store = PairingStore(db)
    try:
        assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in tmp_path.iterdir()} == {
            "pairing.db": "0o600", "pairing.db-wal": "0o600", "pairing.db-shm": "0o600"}
    finally:
        store.close()


@pytest.mark.parametrize("umask", [0o000], indirect=True)
def test_existing_directories_are_left_alone(tmp_path: Path, umask: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared / "a" / "b")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in (shared / "a", shared / "a" / "b")] == ["0o700", "0o700"]
    private_file(shared / "a" / "f")
    assert stat.S_IMODE((shared / "a" / "f").stat().st_mode) == 0o600
