"""The node registry (``state.nodes``): two real ``airlock serve`` processes, each with its own home, on one real
PostgreSQL; ``/health`` and ``airlock status`` on either show both nodes, a node killed with SIGKILL turns "lost"
within ``NODE_TTL_S`` plus a heartbeat, a cleanly stopped one "stopped", and a restarted node is the same node."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nodeproc import Node, make_home

from airlock.state.nodes import HEARTBEAT_S, NODE_TTL_S, NodeInfo


def nodes_of(node: Node) -> dict[str, dict[str, Any]]:
    status, doc = node.get("/health")
    assert status == 200, doc
    return {n["id"]: n for n in doc["nodes"]}


def wait_for(node: Node, node_id: str, state: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        seen = nodes_of(node)[node_id]
        if seen["state"] == state:
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.25)


def test_every_node_sees_every_node(tmp_path: Path, pg_url: str, compile_cache: Path) -> None:
    homes = [make_home(tmp_path, f"node{i}", pg_url, compile_cache) for i in (1, 2)]
    a, b = Node(homes[0]), Node(homes[1])
    try:
        ids = [(h / "node.id").read_text().strip() for h in homes]
        assert ids[0] != ids[1]
        for me, node in zip(ids, (a, b), strict=True):
            seen = nodes_of(node)
            assert set(seen) == set(ids)
            assert all(n["state"] == "alive" and n["heartbeat_age_s"] <= HEARTBEAT_S + 1 for n in seen.values())
            assert [n["id"] for n in seen.values() if n["self"]] == [me]
            assert "pid" not in seen[me] and "urls" not in seen[me]  # /health may face the internet
        shown = a.cli("status", "--json")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        doc = json.loads(shown.stdout)
        assert {n["id"]: n["state"] for n in doc["nodes"]} == {ids[0]: "alive", ids[1]: "alive"}
        text = a.cli("status")
        assert "cluster: 2 of 2 node(s) alive" in text.stdout and f"{ids[0]} (this one)" in text.stdout

        b.kill()  # no clean stop: the others see it lost once its heartbeat is older than the TTL
        killed_at = time.monotonic()
        wait_for(a, ids[1], "lost", NODE_TTL_S + HEARTBEAT_S + 2)
        assert time.monotonic() - killed_at >= NODE_TTL_S - HEARTBEAT_S - 1  # not before its TTL
        shown = a.cli("status", "--json")
        assert shown.returncode == 0  # shown, not failing: this node is fine (container healthchecks run status)
        assert any(f"node {ids[1]} on " in w and "(lost)" in w for w in json.loads(shown.stdout)["node_warnings"])
        assert f"warning: node {ids[1]} on " in a.cli("status").stdout

        b = Node(homes[1])  # restarted on its home: the same node, alive again (no new row)
        assert set(nodes_of(a)) == set(ids) and nodes_of(a)[ids[1]]["state"] == "alive"
        b.stop()
        wait_for(a, ids[1], "stopped", 5)
        assert a.cli("status").returncode == 0  # a clean stop is not a problem
    finally:
        a.stop()
        b.stop()


def test_node_states_by_heartbeat_age() -> None:
    node = NodeInfo(id="n", host="h", pid=1, urls={}, version="0", started_at=0.0, heartbeat_at=100.0)
    assert node.state(100.0 + NODE_TTL_S) == "alive"
    assert node.state(100.0 + NODE_TTL_S + 0.1) == "lost"
    stopped = NodeInfo(id="n", host="h", pid=1, urls={}, version="0", started_at=0.0, heartbeat_at=100.0,
                       stopped_at=100.0)
    assert stopped.state(1e9) == "stopped"
