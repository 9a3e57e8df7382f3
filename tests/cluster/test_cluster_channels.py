"""Channels installed once for the cluster, and hot changes seen by every node (``state.cluster``): two real
``airlock serve`` processes with their own homes on one real PostgreSQL. A channel installed on node A's home is
written into node B's home at B's start; a secret set on A starts the channel on B (it waited for the secret); the
admin API's disable on A stops it on B, a restarted B keeps it disabled, and enable on A starts it on B again; a
channel installed on A while B runs is installed into B's versioned layout and loaded there at once. Without
PostgreSQL: a record read from one home installs into another as the active version (``channels.layout``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conftest import minimal_caps
from nodeproc import Node, cli, make_home
from watguest import build_component

from airlock.admin.auth import TokenFile
from airlock.channels.catalog import find
from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore
from airlock.state.cluster import ChannelRecord, ChannelRecords, materialise, record_from_home, unmaterialise
from airlock.state.postgres import PgDb

CHANGE_SEEN_S = 5.0
"""Seconds within which a node must show a change made on another (LISTEN/NOTIFY: well under one)."""


def alpha_on(node: Node, name: str = "alpha") -> dict[str, Any]:
    status, doc = node.get("/health")
    assert status == 200, doc
    return dict(doc["channels"].get(name, {"status": "not loaded"}))


def eventually(node: Node, want: str, name: str = "alpha") -> dict[str, Any]:
    deadline = time.monotonic() + CHANGE_SEEN_S
    while True:
        seen = alpha_on(node, name)
        if seen["status"].startswith(want):
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)


def test_installed_once_and_switched_everywhere(tmp_path: Path, pg_url: str, compile_cache: Path) -> None:
    home_a, home_b = (make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b"))
    wasm = build_component(tmp_path / "wat", "alpha")
    caps = tmp_path / "alpha.capabilities.json"
    caps.write_text(json.dumps(minimal_caps("alpha") | {"setup": {"required_secrets": [{"name": "alpha_token"}]}}))
    installed = cli(home_a, "channels", "install", str(wasm), str(caps))
    assert installed.returncode == 0, installed.stderr
    assert "for every node of the cluster" in installed.stdout
    assert not list((home_b / "channels").iterdir())  # nothing copied by hand
    token = TokenFile(home_a).ensure()
    assert token is not None
    a, b = Node(home_a, admin=True), Node(home_b)
    try:
        store_b = ChannelStore(home_b / "channels")  # installed at B's start, as its active version
        active = store_b.get("alpha").active
        assert store_b.component("alpha", active).read_bytes() == wasm.read_bytes()
        assert store_b.manifest("alpha", active).read_bytes() == caps.read_bytes()
        versions = cli(home_b, "channels", "versions", "alpha", "--json")  # B's own CLI sees it
        assert versions.returncode == 0, versions.stderr
        assert json.loads(versions.stdout)["active"] == active
        assert alpha_on(b)["status"].startswith("inactive: missing secrets alpha_token")
        stored = cli(home_a, "secrets", "set", "alpha_token", input="s3cret\n")
        assert stored.returncode == 0, stored.stderr
        eventually(b, "active")
        eventually(a, "active")

        assert a.admin_post("/api/channels/alpha/disable", token) == 200
        eventually(b, "disabled by the operator")
        b.stop()
        b = Node(home_b)  # a node starting later takes the stored switch
        eventually(b, "disabled by the operator")
        assert a.admin_post("/api/channels/alpha/enable", token) == 200
        eventually(b, "active")

        beta_caps = tmp_path / "beta.capabilities.json"
        beta_caps.write_text(json.dumps(minimal_caps("beta")))
        beta = cli(home_a, "channels", "install", str(build_component(tmp_path / "wat-beta", "beta")), str(beta_caps))
        assert beta.returncode == 0, beta.stderr
        eventually(b, "active", "beta")  # B, running, installed and loaded it
        assert ChannelStore(home_b / "channels").exists("beta")
    finally:
        a.stop()
        b.stop()


def test_record_installs_as_the_active_version(tmp_path: Path) -> None:
    wasm = build_component(tmp_path / "wat", "alpha")
    caps = json.dumps(minimal_caps("alpha")).encode()
    home_a, home_b = ChannelStore(tmp_path / "a"), ChannelStore(tmp_path / "b")
    first = stage(home_a, wasm.read_bytes(), caps, source="alpha.capabilities.json", as_name="support")
    rec = record_from_home(home_a.root, "support")
    assert rec.version == first.version and rec.component == wasm.read_bytes()
    assert materialise([rec], home_b.root) == ["support"]
    entry = find(home_b.root, "support")  # as the host loads installed channels
    assert entry is not None and entry.caps is not None and entry.versioned
    assert (entry.platform, entry.version) == ("alpha", first.version)
    assert home_b.provenance("support", first.version)["source"] == "bare"
    assert materialise([rec], home_b.root) == []  # active already: nothing written

    newer = json.dumps(minimal_caps("alpha") | {"version": "0.2.0"}).encode()
    second = stage(home_a, wasm.read_bytes(), newer, source="alpha.capabilities.json", as_name="support",
                   upgrade=True)
    home_a.activate("support", second.version)
    assert materialise([record_from_home(home_a.root, "support")], home_b.root) == ["support"]
    inst = home_b.get("support")
    assert inst.active == second.version and inst.previous == first.version  # rollback works on B too
    assert materialise([], home_b.root, removed=["support", "never-here"]) == ["support"]  # a tombstone
    assert not home_b.exists("support") and not unmaterialise("support", home_b.root)


def version_on(node: Node, want: str, name: str = "alpha") -> dict[str, Any]:
    """Wait (up to CHANGE_SEEN_S) until ``node`` runs version ``want`` of ``name``, active."""
    deadline = time.monotonic() + CHANGE_SEEN_S
    while True:
        seen = alpha_on(node, name)
        if seen.get("version") == want and seen["status"] == "active":
            return seen
        assert time.monotonic() < deadline, (want, seen)
        time.sleep(0.1)


def gone_from(node: Node, name: str) -> None:
    deadline = time.monotonic() + CHANGE_SEEN_S
    while alpha_on(node, name)["status"] != "not loaded" or ChannelStore(node.home / "channels").exists(name):
        assert time.monotonic() < deadline, alpha_on(node, name)
        time.sleep(0.1)


def test_upgrade_rollback_and_remove_are_the_clusters(tmp_path: Path, pg_url: str, compile_cache: Path) -> None:
    """An upgrade on A runs on B within seconds; a rollback on B runs on A, and B restarted stays rolled back (it
    was recorded); an upgrade made by the CLI in A's home while A is down runs on B; a remove on A stops B's copy
    and removes it from B's home; a channel removed while B was down is removed from B's home when B starts."""
    home_a, home_b = (make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b"))
    wasm = build_component(tmp_path / "wat", "alpha")
    first, second = tmp_path / "v1.capabilities.json", tmp_path / "v2.capabilities.json"
    first.write_text(json.dumps(minimal_caps("alpha")))
    second.write_text(json.dumps(minimal_caps("alpha") | {"version": "0.2.0"}))
    assert cli(home_a, "channels", "install", str(wasm), str(first)).returncode == 0
    a, b = Node(home_a), Node(home_b)
    try:
        v1 = alpha_on(a)["version"]
        version_on(b, v1)
        upgraded = cli(home_a, "channels", "upgrade", "alpha", str(wasm), str(second))
        assert upgraded.returncode == 0, upgraded.stderr
        v2 = alpha_on(a)["version"]
        assert v2 != v1 and v2.startswith("0.2.0")
        version_on(b, v2)  # B swapped live
        assert ChannelStore(home_b / "channels").get("alpha").active == v2

        rolled = cli(home_b, "channels", "rollback", "alpha")  # through B's running gateway
        assert rolled.returncode == 0, rolled.stderr
        version_on(b, v1)
        version_on(a, v1)  # A followed B
        b.stop()
        b = Node(home_b)
        assert alpha_on(b)["version"] == v1  # recorded: B starts on what it rolled back to
        a.stop()
        offline = cli(home_a, "channels", "upgrade", "alpha", "--version", v2)  # no gateway on A's home: the CLI
        assert offline.returncode == 0, offline.stderr  # records it (as under serve --workers N)
        version_on(b, v2)
        a = Node(home_a)
        assert alpha_on(a)["version"] == v2

        removed = cli(home_a, "channels", "remove", "alpha")
        assert removed.returncode == 0, removed.stderr
        gone_from(a, "alpha")
        gone_from(b, "alpha")

        beta_caps = tmp_path / "beta.capabilities.json"
        beta_caps.write_text(json.dumps(minimal_caps("beta")))
        beta = cli(home_a, "channels", "install", str(build_component(tmp_path / "wat-beta", "beta")), str(beta_caps))
        assert beta.returncode == 0, beta.stderr
        eventually(b, "active", "beta")
        b.stop()
        assert cli(home_a, "channels", "remove", "beta").returncode == 0
        assert ChannelStore(home_b / "channels").exists("beta")  # B was down
        b = Node(home_b)
        assert alpha_on(b, "beta")["status"] == "not loaded" and not ChannelStore(home_b / "channels").exists("beta")
        db = PgDb(pg_url, max_size=1)
        try:  # installed again after a remove (``channels install`` stores it so): on every node, tombstone gone
            again = ChannelRecord(name="alpha", component=wasm.read_bytes(), capabilities=first.read_text(),
                                  provenance=None, version=v1)
            assert ChannelRecords(db).put(again)
            version_on(b, v1)
            assert ChannelRecords(db).removed() == ["beta"]
        finally:
            db.close()
    finally:
        a.stop()
        b.stop()
