"""``airlock config show`` and ``--config`` through the real command (a subprocess): effective values with their
source, and bad input in one line that changes nothing on disk (issue 9, item 1: host config)."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import one_line_error, run_cli, tree


def test_config_show_names_the_source_of_every_value(airlock_home: Path, tmp_path: Path) -> None:
    (airlock_home / "airlock.toml").write_text("listen_port = 9001\nmemory_limit_bytes = 33554432\n")
    done = run_cli(airlock_home, "config", "show", "--json", AIRLOCK_MEMORY_LIMIT_BYTES="16777216")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["home"] == {"name": "home", "value": str(airlock_home), "source": "env", "where": "AIRLOCK_HOME",
                            "env": "AIRLOCK_HOME"}
    assert rows["listen_port"]["value"] == 9001 and rows["listen_port"]["source"] == "file"
    assert rows["listen_port"]["where"] == str(airlock_home / "airlock.toml")
    assert rows["memory_limit_bytes"]["value"] == 16777216
    assert (rows["memory_limit_bytes"]["source"], rows["memory_limit_bytes"]["where"]) == \
        ("env", "AIRLOCK_MEMORY_LIMIT_BYTES")
    assert rows["fuel_per_callback"]["source"] == "default" and rows["fuel_per_callback"]["env"] == \
        "AIRLOCK_FUEL_PER_CALLBACK"
    # --home on the command line, --config instead of HOME/airlock.toml; the text table says the same
    other = tmp_path / "gateway.toml"
    other.write_text('log_format = "json"\n')
    text = run_cli(airlock_home, "--home", str(airlock_home), "--config", str(other), "config", "show")
    assert text.returncode == 0, text.stderr
    lines = {line.split()[1]: line for line in text.stdout.splitlines() if line.startswith("│")}
    assert "command line" in lines["home"] and "json" in lines["log_format"] and str(other) in text.stdout
    assert "9001" not in lines["listen_port"]


def test_bad_settings_are_one_line_and_change_nothing(airlock_home: Path, tmp_path: Path) -> None:
    (airlock_home / "airlock.toml").write_text("listen_prot = 9001\n")
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "config", "show"), "airlock.toml: listen_prot: unknown setting",
                   "did you mean 'listen_port'")
    (airlock_home / "airlock.toml").write_text("listen_port = 9001\n")
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "config", "show", AIRLOCK_FUEL_PER_CALLBACK="lots"),
                   "AIRLOCK_FUEL_PER_CALLBACK='lots': expected an integer")
    one_line_error(run_cli(airlock_home, "channels", "list", AIRLOCK_LISTEN_PORT="-5"),
                   "AIRLOCK_LISTEN_PORT='-5': listen_port")
    one_line_error(run_cli(airlock_home, "--config", str(tmp_path / "nope.toml"), "config", "show"),
                   "nope.toml: config file not found")
    assert tree(airlock_home) == before
