"""Channels installed once for the cluster, and hot changes seen by every node (``state.cluster``): two real
``airlock serve`` processes with their own homes on one real PostgreSQL. A channel installed on node A's home is
written into node B's home at B's start; a secret set on A starts the channel on B (it waited for the secret); the
admin API's disable on A stops it on B, a restarted B keeps it disabled, and enable on A starts it on B again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conftest import minimal_caps
from nodeproc import Node, cli, make_home
from watguest import build_component

from airlock.admin.auth import TokenFile

CHANGE_SEEN_S = 5.0
"""Seconds within which a node must show a change made on another (LISTEN/NOTIFY: well under one)."""


def alpha_on(node: Node) -> dict[str, Any]:
    status, doc = node.get("/health")
    assert status == 200, doc
    return dict(doc["channels"]["alpha"])


def eventually(node: Node, want: str) -> dict[str, Any]:
    deadline = time.monotonic() + CHANGE_SEEN_S
    while True:
        seen = alpha_on(node)
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
        assert (home_b / "channels" / "alpha.wasm").read_bytes() == wasm.read_bytes()  # written at B's start
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
    finally:
        a.stop()
        b.stop()
