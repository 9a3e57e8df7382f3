"""``MessageLog.ack_many`` on every backend (SQLite, PostgreSQL, PostgreSQL + Redis bus): each item answered as a
single ``ack`` would be, in order, partial success normal; one transaction for the batch (a failure in the middle
applies none of it: checked with a real trigger that makes one row's update fail); the inbox keeps its backlog count
right; the Redis bus XACKs what PostgreSQL acknowledged."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
import redis
from conftest import OpenLog
from servers import RedisServer
from test_lease_nowait import gate_held_elsewhere

from airlock.messages.inbox import Inbox
from airlock.messages.log import MessageLog
from airlock.messages.model import NewEntry, Route
from airlock.messages.postgres import PostgresMessageLog
from airlock.messages.redisbus import GROUP, RedisBusLog
from airlock.messages.sqlite import SqliteMessageLog

BATCH = 100
"""Entries per batch in the one-transaction checks: a whole lease (``inbox.MAX_LEASE_BATCH``)."""


def entry(content: str, agent: str = "main") -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=content, metadata_json="{}",
                    route=Route(agent=agent, session_key=f"s-{content}", conversation=f"c-{content}"))


def _leased(log: MessageLog, n: int, agent: str = "main") -> list[tuple[str, str | None]]:
    """Commit ``n`` entries for ``agent`` and lease them all: ``(id, lease_token)`` of each, in commit order."""
    now = time.time()
    log.commit("tg", {}, [entry(f"m{i}", agent) for i in range(n)], now)
    got = []
    while len(got) < n:
        batch = log.lease(agent, n - len(got), 60.0, now)
        assert batch, "the committed entries must be leasable"
        got += [(e.id, e.lease_token) for e in batch]
    return got


def test_each_item_is_answered_as_a_single_ack_would_be(open_log: OpenLog) -> None:
    log = open_log()
    (good, t1), (stale, _t2), (done, t3), (open_, _t4), (dup, t5) = _leased(log, 5)
    assert log.ack(done, t3, time.time())
    items: list[tuple[str, str | None]] = [
        (good, t1), (stale, "not-its-token"), ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "x"), (done, t3), (open_, None),
        (dup, t5), (dup, t5)]
    assert log.ack_many(items, time.time()) == [True, False, False, False, True, True, False]
    states = {i: e.state for i, e in log.get_many([good, stale, done, open_, dup, "unknown"]).items()}
    assert states == {good: "acked", stale: "leased", done: "acked", open_: "acked", dup: "acked"}
    assert log.backlog() == 1  # only the stale-token one is still open
    assert log.ack_many([], time.time()) == []
    assert log.ack_many([(stale, None)], time.time()) == [True]  # no token: no check (in-process agents, the CLI)


def test_a_repeated_id_is_tried_once_with_its_first_token(open_log: OpenLog) -> None:
    log = open_log()
    [(mid, token)] = _leased(log, 1)
    # the first token is wrong: the id is not tried again with the right one (same answer on every backend)
    assert log.ack_many([(mid, "wrong"), (mid, token)], time.time()) == [False, False]
    assert log.ack_many([(mid, token), (mid, "wrong")], time.time()) == [True, False]


def test_a_failure_mid_batch_applies_nothing_on_sqlite(tmp_path: Path) -> None:
    log = SqliteMessageLog(tmp_path / "state.db")
    try:
        items = _leased(log, BATCH)
        with sqlite3.connect(tmp_path / "state.db") as other:  # a real trigger: the 60th entry's ack fails
            other.execute(f"CREATE TRIGGER fail_one BEFORE UPDATE OF state ON inbound WHEN new.id = '{items[59][0]}' "
                          "AND new.state = 'acked' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        for ack_many in (log.ack_many, log.try_ack_many):  # the worker-thread and the event-loop variant
            with pytest.raises(sqlite3.IntegrityError, match="refused by the test"):
                ack_many(items, time.time())
            assert log.backlog() == BATCH  # nothing applied: not the 59 before the failure either
        with sqlite3.connect(tmp_path / "state.db") as other:
            other.execute("DROP TRIGGER fail_one")
        assert log.try_ack_many(items, time.time()) == [True] * BATCH
        assert log.backlog() == 0
    finally:
        log.close()


@pytest.mark.parametrize("bus", [False, True], ids=["postgresql", "redisbus"])
def test_a_failure_mid_batch_applies_nothing_on_postgres(pg_url: str, redis_server: RedisServer, bus: bool) -> None:
    log = (RedisBusLog.open_bus(pg_url, redis_server.url, namespace=f"{pg_url.rsplit('=', 1)[-1]}:") if bus
           else PostgresMessageLog.open(pg_url))
    try:
        items = _leased(log, BATCH)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("CREATE FUNCTION fail_one() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$")
            conn.execute(f"CREATE TRIGGER fail_one BEFORE UPDATE ON inbound FOR EACH ROW WHEN "
                         f"(new.id = '{items[59][0]}' AND new.state = 'acked') EXECUTE FUNCTION fail_one()")
        with pytest.raises(psycopg.Error, match="refused by the test"):
            log.ack_many(items, time.time())
        assert log.backlog() == BATCH
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER fail_one ON inbound")
        assert log.ack_many(items, time.time()) == [True] * BATCH
        assert log.backlog() == 0
    finally:
        log.close()


def test_the_redis_bus_xacks_the_batch_so_nothing_comes_back(pg_url: str, redis_server: RedisServer) -> None:
    log = RedisBusLog.open_bus(pg_url, redis_server.url, namespace=f"{pg_url.rsplit('=', 1)[-1]}:")
    try:
        r = redis.Redis.from_url(redis_server.url, decode_responses=True)
        items = _leased(log, 30, agent="main") + _leased(log, 5, agent="side")
        assert r.xpending(log.stream_key("main"), GROUP)["pending"] == 30
        wrong = (items[0][0], "wrong-token")
        assert log.ack_many([wrong, *items[1:]], time.time()) == [False] + [True] * 34
        assert r.xpending(log.stream_key("main"), GROUP)["pending"] == 1  # only the one PostgreSQL refused
        assert r.xpending(log.stream_key("side"), GROUP)["pending"] == 0  # both agents' streams, one call each
        # after the visibility timeout only the unacknowledged one is offered again
        later = time.time() + 120
        again = log.lease("main", 50, 60.0, later) + log.lease("side", 50, 60.0, later)
        assert [e.id for e in again] == [items[0][0]]
    finally:
        log.close()


async def test_the_inbox_counts_a_batch_out_of_its_backlog(tmp_path: Path) -> None:
    log = SqliteMessageLog(tmp_path / "state.db")
    try:
        inbox = Inbox(log, capacity=3)
        log.commit("tg", {}, [entry(f"m{i}") for i in range(3)], time.time())
        inbox.appended(3, ["main"] * 3)
        assert not inbox.has_room()
        leased = await inbox.lease("main", 3)
        done = await inbox.ack_many([(leased[0].id, leased[0].lease_token), (leased[1].id, "wrong")])
        assert done == [True, False]
        assert inbox.has_room()  # 2 unacknowledged now: counted at once, no refresh from the log needed
        # the worker-thread path (another process writing: try_ack_many gives up at once) counts the same
        with gate_held_elsewhere(tmp_path / "state.db"):
            pending = asyncio.ensure_future(inbox.ack_many([(leased[1].id, leased[1].lease_token)]))
            await asyncio.sleep(0.05)
            assert not pending.done()  # waiting in a worker thread for the writer gate, not on the loop
        assert await pending == [True]
        assert inbox.unacknowledged() == 1
    finally:
        log.close()
