"""`airlock agents add|list|rm` and `airlock messages list|show|retry`, run as the real command in a subprocess
against real SQLite files in a temporary home."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from clirun import MASTER_KEY, one_line_error, run_cli

from airlock.messages.model import NewEntry, Route
from airlock.messages.outbox import Outbound
from airlock.messages.sqlite import SqliteMessageLog
from airlock.stores import SecretStore
from airlock.stores.agents import AgentRegistry


def test_agents_add_list_rm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = run_cli(home, "agents", "list", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    added = run_cli(home, "agents", "add", "worker-1", "--json")
    assert added.returncode == 0, added.stderr
    doc = json.loads(added.stdout)
    assert doc["name"] == "worker-1" and doc["push_secret"] is None and len(doc["token"]) >= 40
    registry = AgentRegistry(home / "agents.db")
    try:
        assert registry.authenticate(doc["token"]) == "worker-1"
        assert registry.authenticate(doc["token"] + "x") is None
    finally:
        registry.close()
    assert doc["token"].encode() not in (home / "agents.db").read_bytes()  # only its hash is kept
    assert stat.S_IMODE((home / "agents.db").stat().st_mode) == 0o600
    text = run_cli(home, "agents", "add", "worker-2")
    assert text.returncode == 0 and "token: " in text.stdout and "shown once" in text.stderr
    listed = json.loads(run_cli(home, "agents", "list", "--json").stdout)
    assert [(a["name"], a["mode"]) for a in listed] == [("worker-1", "pull"), ("worker-2", "pull")]
    assert "worker-2" in run_cli(home, "agents", "list").stdout
    one_line_error(run_cli(home, "agents", "add", "worker-1"), "exists already")
    one_line_error(run_cli(home, "agents", "add", "Bad Name"), "invalid agent name")
    assert run_cli(home, "agents", "rm", "worker-1").returncode == 0
    one_line_error(run_cli(home, "agents", "rm", "worker-1"), "no agent named")
    assert [a["name"] for a in json.loads(run_cli(home, "agents", "list", "--json").stdout)] == ["worker-2"]


def test_agents_add_push(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_MASTER_KEY", MASTER_KEY)  # the key the subprocess used
    home = tmp_path / "home"
    added = run_cli(home, "agents", "add", "hooked", "--push-url", "http://127.0.0.1:9000/hook", "--json")
    assert added.returncode == 0, added.stderr
    doc = json.loads(added.stdout)
    assert doc["push_url"] == "http://127.0.0.1:9000/hook" and doc["push_secret"]
    [name] = json.loads(run_cli(home, "secrets", "list", "--json").stdout)
    assert name.startswith("agent_push_")
    assert SecretStore.open(home).get(name) == doc["push_secret"]  # kept encrypted, readable by the gateway
    listed = json.loads(run_cli(home, "agents", "list", "--json").stdout)
    assert listed[0]["mode"] == "push"
    one_line_error(run_cli(home, "agents", "add", "other", "--push-url", "ftp://x/hook"), "URL")  # more: test_registry
    assert run_cli(home, "agents", "rm", "hooked").returncode == 0
    assert json.loads(run_cli(home, "secrets", "list", "--json").stdout) == []


def _seed_log(path: Path) -> tuple[str, str, str]:
    """One inbound message, one sent reply, one dead letter; their ids."""
    log = SqliteMessageLog(path)
    try:
        now = time.time()
        entry = NewEntry(instance="telegram", user_id="7", user_name="bob", thread_id=None, content="hi \x1b[31mred",
                         metadata_json='{"chat_id": 7}', route=Route("main", "agent:main:telegram:7", "telegram:7"))
        log.commit("telegram", {}, [entry], now)
        ok = Outbound(instance="telegram", conversation="telegram:7", kind="respond", payload={"content": "hello"},
                      in_reply_to=entry.id)
        bad = Outbound(instance="telegram", conversation="telegram:8", kind="broadcast",
                       payload={"content": "promo", "user_id": "@nobody"})
        log.append_outbox([ok, bad], now + 1)
        log.mark_sent(ok.id, now + 2, "4711")  # the Telegram message id (world 0.2.0 channels return it)
        log.dead_letter(bad.id, "HTTP 400: Bad Request: chat not found", now + 3)
        return entry.id, ok.id, bad.id
    finally:
        log.close()


def test_messages_list_show_retry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = run_cli(home, "messages", "list")
    assert empty.returncode == 0 and empty.stdout == "" and "empty" in empty.stderr
    home.mkdir(exist_ok=True)
    inbound, sent, failed = _seed_log(home / "state.db")
    rows = json.loads(run_cli(home, "messages", "list", "--json").stdout)
    assert [(r["id"], r["direction"], r["state"]) for r in rows] == [
        (failed, "out", "failed"), (sent, "out", "sent"), (inbound, "in", "ready")]
    table = run_cli(home, "messages", "list", "--failed")
    assert failed in table.stdout and sent not in table.stdout and "chat not found" in table.stdout
    assert "\x1b" not in run_cli(home, "messages", "list").stdout  # guest text cannot restyle the terminal
    shown = json.loads(run_cli(home, "messages", "show", inbound, "--json").stdout)
    assert (shown["user_name"], shown["agent"], shown["metadata"]) == ("bob", "main", {"chat_id": 7})
    assert "HTTP 400" in run_cli(home, "messages", "show", failed).stdout
    assert json.loads(run_cli(home, "messages", "show", sent, "--json").stdout)["platform_message_id"] == "4711"
    retried = run_cli(home, "messages", "retry", failed)
    assert retried.returncode == 0, retried.stderr
    after = json.loads(run_cli(home, "messages", "show", failed, "--json").stdout)
    assert (after["state"], after["attempts"]) == ("pending", 0)
    one_line_error(run_cli(home, "messages", "retry", failed), "has not failed")
    one_line_error(run_cli(home, "messages", "retry", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), "no such outbox entry")
    one_line_error(run_cli(home, "messages", "show", "nope"), "no message")
