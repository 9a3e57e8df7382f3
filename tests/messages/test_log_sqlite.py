"""The message log on each backend (``conftest.open_log``: a real SQLite file, a real PostgreSQL database): atomic
commit with the workspace, dedupe window, leases in order per conversation, visibility timeout, ack + reply in one
transaction, outbox order, dead letters, compaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from conftest import OpenLog

from airlock.messages.log import MessageLog
from airlock.messages.model import NewEntry, OutboxEntry, Route
from airlock.messages.outbox import Outbound
from airlock.messages.sqlite import SqliteMessageLog

T0 = 1_800_000_000.0


def entry(content: str, conv: str = "c1", key: str | None = None, agent: str = "main") -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=content, metadata_json="{}",
                    route=Route(agent=agent, session_key=f"s-{conv}", conversation=conv), dedupe_key=key)


@pytest.fixture
def log(open_log: OpenLog) -> MessageLog:
    return open_log()


def test_commit_stores_workspace_and_entries_together(log: MessageLog, open_log: OpenLog) -> None:
    appended = log.commit("tg", {"state/offset": "7"}, [entry("a"), entry("b")], T0)
    assert [e.content for e in appended] == ["a", "b"]
    log.close()
    reopened = open_log()
    assert reopened.load_workspace("tg") == {"state/offset": "7"}
    assert [e.content for e in reopened.list_inbound()] == ["b", "a"]
    assert reopened.backlog() == 2


def test_a_failed_commit_writes_neither(log: MessageLog) -> None:
    bad = NewEntry(instance="tg", user_id="u", user_name=None, thread_id=None, content="x", metadata_json="{}",
                   route=Route("main", "s", "c"), id="dup-id")
    log.commit("tg", {}, [bad], T0)
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        log.commit("tg", {"state/offset": "9"}, [entry("fine"), bad], T0)  # the second id collides
    assert log.load_workspace("tg") == {}
    assert [e.content for e in log.list_inbound()] == ["x"]


def test_dedupe_within_the_window_then_forgotten(log: MessageLog) -> None:
    assert len(log.commit("tg", {}, [entry("a", key="k1")], T0)) == 1
    assert log.commit("tg", {}, [entry("a again", key="k1")], T0 + 10) == []
    assert len(log.commit("other", {}, [NewEntry(**{**entry("x", key="k1").__dict__, "instance": "other",
                                                     "id": "01OTHER"})], T0)) == 1  # per instance
    log.compact(T0 + 3600, retention_s=10**9, dedupe_window_s=1800)
    assert len(log.commit("tg", {}, [entry("a later", key="k1")], T0 + 3601)) == 1


def test_lease_is_in_commit_order_and_an_expired_lease_comes_first(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("c1-1", "c1"), entry("c1-2", "c1"), entry("c2-1", "c2")], T0)
    (first,) = log.lease("main", 1, 30, T0)
    assert first.content == "c1-1"
    assert [e.content for e in log.lease("main", 10, 30, T0 + 1)] == ["c1-2", "c2-1"]
    assert log.waiting() == 0 and log.backlog() == 3
    log.commit("tg", {}, [entry("c1-3", "c1")], T0 + 2)
    # c1-1's lease expires: it is offered again before anything committed after it
    assert [e.content for e in log.lease("main", 10, 30, T0 + 31)] == ["c1-1", "c1-2", "c2-1", "c1-3"]


def test_visibility_timeout_offers_again_and_old_token_loses(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("m")], T0)
    (a,) = log.lease("main", 1, 30, T0)
    assert log.lease("main", 1, 30, T0 + 29) == []
    (b,) = log.lease("main", 1, 30, T0 + 31)
    assert b.id == a.id and b.attempts == 2 and b.lease_token != a.lease_token
    assert not log.ack(a.id, a.lease_token, T0 + 32)
    assert log.ack(b.id, b.lease_token, T0 + 32)
    assert not log.ack(b.id, b.lease_token, T0 + 33)  # once
    assert log.backlog() == 0


def test_agents_only_see_their_own(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("for-a", agent="a"), entry("for-b", "c9", agent="b")], T0)
    assert [e.content for e in log.lease("b", 5, 30, T0)] == ["for-b"]
    assert [e.content for e in log.lease("a", 5, 30, T0)] == ["for-a"]


def test_release_makes_it_ready_at_once(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("m")], T0)
    (a,) = log.lease("main", 1, 300, T0)
    assert log.release(a.id, a.lease_token)
    assert [e.id for e in log.lease("main", 1, 300, T0 + 1)] == [a.id]


def test_ack_and_reply_commit_together_and_idempotency(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("m")], T0)
    (a,) = log.lease("main", 1, 30, T0)
    reply = Outbound(instance="tg", conversation="c1", kind="respond", payload={"content": "r"}, in_reply_to=a.id,
                     idempotency_key="agent:k1")
    (out,) = log.ack_and_append(a.id, a.lease_token, [reply], T0 + 1)
    assert log.get(a.id) is not None and log.get(a.id).state == "acked"  # type: ignore[union-attr]
    again = Outbound(instance="tg", conversation="c1", kind="respond", payload={"content": "r2"},
                     in_reply_to=a.id, idempotency_key="agent:k1")
    (same,) = log.ack_and_append(a.id, None, [again], T0 + 2)
    assert same.id == out.id and same.payload == {"content": "r"}
    with pytest.raises(KeyError):
        log.ack_and_append("nope", None, [], T0)


def test_reply_under_a_stolen_lease_is_refused(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("m")], T0)
    (a,) = log.lease("main", 1, 30, T0)
    with pytest.raises(PermissionError):
        log.ack_and_append(a.id, "forged", [], T0 + 1)
    assert log.get(a.id).state == "leased"  # type: ignore[union-attr]


def _out(content: str, conv: str = "c1") -> Outbound:
    return Outbound(instance="tg", conversation=conv, kind="respond", payload={"content": content})


def _looked(log: MessageLog, now: float) -> list[OutboxEntry]:
    """The due entries, as a sender that sends none of them sees them: it releases their claims (PostgreSQL)."""
    due = log.due_outbox(now, 10)
    log.release_outbox([e.id for e in due])
    return due


def test_outbox_due_is_oldest_per_conversation_and_respects_backoff(log: MessageLog) -> None:
    a, _b, c = log.append_outbox([_out("a"), _out("b"), _out("x", "c2")], T0)
    assert [e.payload["content"] for e in _looked(log, T0)] == ["a", "x"]
    log.reschedule(a.id, T0 + 5, "HTTP 500", T0)
    assert [e.payload["content"] for e in _looked(log, T0 + 1)] == ["x"]  # b never overtakes a
    assert [e.payload["content"] for e in _looked(log, T0 + 5)] == ["a", "x"]
    log.mark_sent(a.id, T0 + 5)
    log.mark_sent(c.id, T0 + 5)
    assert [e.payload["content"] for e in _looked(log, T0 + 5)] == ["b"]


def test_dead_letter_listed_and_retried(log: MessageLog) -> None:
    (a,) = log.append_outbox([_out("a")], T0)
    log.dead_letter(a.id, "HTTP 400 chat not found", T0 + 1)
    failed = log.list_outbox("failed")
    assert [(e.id, e.last_error, e.attempts) for e in failed] == [(a.id, "HTTP 400 chat not found", 1)]
    assert log.due_outbox(T0 + 2, 10) == []
    assert log.retry(a.id, T0 + 3) and not log.retry(a.id, T0 + 3)
    (again,) = log.due_outbox(T0 + 3, 10)
    assert again.id == a.id and again.attempts == 0


def test_compaction_keeps_what_is_open(log: MessageLog) -> None:
    log.commit("tg", {}, [entry("acked", "c1"), entry("open", "c2")], T0)
    acked = log.lease("main", 1, 30, T0)[0]
    log.ack(acked.id, None, T0)
    (sent,) = log.append_outbox([_out("s")], T0)
    log.mark_sent(sent.id, T0)
    assert log.compact(T0 + 100, retention_s=50) == 2
    assert [e.content for e in log.list_inbound()] == ["open"] and log.list_outbox() == []
    if isinstance(log, SqliteMessageLog):
        assert log.integrity_check() == "ok"


def test_legacy_workspace_db_is_imported_once(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "workspace.db")
    old.execute("CREATE TABLE workspace (channel TEXT, path TEXT, value TEXT, updated_at REAL)")
    old.execute("INSERT INTO workspace VALUES ('tg', 'state/offset', '41', 1.0)")
    old.commit()
    old.close()
    log = SqliteMessageLog(tmp_path / "state.db", legacy_workspace_db=tmp_path / "workspace.db")
    assert log.load_workspace("tg") == {"state/offset": "41"}
    log.commit("tg", {"state/offset": "42"}, [], T0)
    log.close()
    again = SqliteMessageLog(tmp_path / "state.db", legacy_workspace_db=tmp_path / "workspace.db")
    assert again.load_workspace("tg") == {"state/offset": "42"}
