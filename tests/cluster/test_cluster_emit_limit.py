"""With ``emit_limit_scope = "cluster"`` a guest's emit rate limit holds for the whole cluster
(``capabilities.emit_shared``, ``PgWindows``): two real ``airlock serve`` nodes with their own homes on one real
PostgreSQL; webhooks alternate between them. With the default scope (``node``) each node counts its own window and
the guest gets its limit per node."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from conftest import minimal_caps
from nodeproc import Node, cli, make_home
from watguest import build_component

PER_MINUTE = 6
SENT = 24


def post(node: Node, body: str) -> int:
    req = urllib.request.Request(f"{node.url}/webhook/alpha", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(("scope", "accepted"), [("cluster", PER_MINUTE), (None, 2 * PER_MINUTE)])
def test_the_emit_limit_holds_over_two_nodes(tmp_path: Path, pg_url: str, compile_cache: Path, scope: str | None,
                                             accepted: int) -> None:
    home_a, home_b = (make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b"))
    for home in (home_a, home_b):  # cluster: one window for every node; the default (node): one per node
        if scope is not None:
            with (home / "airlock.toml").open("a") as f:
                f.write(f'emit_limit_scope = "{scope}"\n')
    caps = tmp_path / "alpha.capabilities.json"
    caps.write_text(json.dumps(minimal_caps("alpha", emit_rate_limit={"messages_per_minute": PER_MINUTE,
                                                                      "messages_per_hour": 1000})))
    installed = cli(home_a, "channels", "install", str(build_component(tmp_path / "wat", "alpha")), str(caps))
    assert installed.returncode == 0, installed.stderr
    a, b = Node(home_a), Node(home_b)
    try:
        answers = Counter((node is a, post(node, f"m-{i}")) for i in range(SENT) for node in [(a, b)[i % 2]])
    finally:
        a.stop()
        b.stop()
    assert sum(n for (_, status), n in answers.items() if status == 200) == accepted, answers
    assert {status for _, status in answers} == {200, 429}, answers
