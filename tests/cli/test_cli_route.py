"""``airlock route explain`` through the real CLI, with bindings from HOME/airlock.toml (issue 8, routing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CONFIG = """
[routing]
dm_scope = "per-peer"
[[routing.bindings]]
agent = "support"
match = { channel = "telegram", peer_id = "123" }
[[routing.bindings]]
agent = "sales"
match = { channel = "telegram" }
"""


def airlock(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRLOCK_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[2] / "host")}
    return subprocess.run([sys.executable, "-m", "airlock.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_explain_names_the_winner_and_why(tmp_path: Path) -> None:
    (tmp_path / "airlock.toml").write_text(CONFIG)
    out = airlock(tmp_path, "route", "explain", "--channel", "telegram", "--peer", "123")
    assert out.returncode == 0, out.stderr
    assert "binding #0 -> support wins at tier peer" in out.stdout
    assert "binding #1 -> sales matches at tier channel" in out.stdout and "loses" in out.stdout
    doc = json.loads(airlock(tmp_path, "route", "explain", "--channel", "telegram", "--peer", "9", "--json").stdout)
    assert (doc["agent"], doc["binding"], doc["matched_on"]) == ("sales", 1, "channel")
    assert doc["session_key"] == "agent:sales:direct:telegram:9"
    slack = json.loads(airlock(tmp_path, "route", "explain", "--channel", "slack", "--peer", "U1", "--json").stdout)
    assert (slack["agent"], slack["binding"]) == ("main", None)


def test_bad_config_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "airlock.toml").write_text('[routing]\ndm_scope = "everyone"\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    out = airlock(tmp_path, "route", "explain", "--channel", "telegram", "--peer", "1")
    assert out.returncode != 0 and "airlock.toml" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
