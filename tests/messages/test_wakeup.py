"""``messages.wakeup`` on a real PostgreSQL (and Redis): the NOTIFY a commit sends to every node, what it says, when
it is sent (the Redis bus: once the entries are in their streams, not at commit), its size bound, and ``Inbox.wake``
waking a waiting lease of the agents it names without counting them in this process's backlog."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import psycopg
import pytest
from servers import RedisServer

from airlock.messages.inbox import Inbox
from airlock.messages.model import NewEntry, Route
from airlock.messages.postgres import PostgresMessageLog
from airlock.messages.redisbus import RedisBusLog
from airlock.messages.wakeup import EVERYONE, MAX_PAYLOAD_BYTES, SENDER, from_here, parse, payload
from airlock.state.postgres import APPENDED_CHANNEL

T0 = 1_800_000_000.0
PG_NOTIFY_LIMIT = 8000
"""PostgreSQL refuses a NOTIFY payload of this many bytes or more (NOTIFY's documentation)."""


def entry(agent: str, text: str, key: str | None = None) -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=text, metadata_json="{}",
                    route=Route(agent=agent, session_key=f"s-{agent}", conversation=f"c-{agent}"), dedupe_key=key)


def listener(url: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"LISTEN {APPENDED_CHANNEL}")
    return conn


def heard(conn: psycopg.Connection[tuple[object, ...]], timeout: float = 0.5) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout) if n.channel == APPENDED_CHANNEL]


def test_a_commit_names_the_agents_of_the_entries_it_appended(pg_url: str) -> None:
    log, ears = PostgresMessageLog.open(pg_url), listener(pg_url)
    try:
        log.commit("tg", {}, [entry("a", "1", "k1"), entry("b", "2"), entry("a", "3")], T0)
        said = heard(ears)
        assert [parse(p) for p in said] == [{"a": 2, "b": 1}]
        assert [from_here(p) for p in said] == [True]  # signed: this process's listener skips it
        log.commit("tg", {}, [entry("a", "again", "k1")], T0)  # a duplicate only: nothing appended, nothing sent
        log.commit("tg", {"state/offset": "5"}, [], T0)  # a cursor alone: nothing sent
        assert heard(ears) == []
    finally:
        ears.close()
        log.close()


def test_the_redis_bus_tells_when_it_published_not_when_it_committed(pg_url: str, redis_server: RedisServer) -> None:
    log = RedisBusLog.open_bus(pg_url, redis_server.url, namespace=f"{pg_url.rsplit('=', 1)[-1]}:")
    ears = listener(pg_url)
    try:
        log._start_publisher = lambda: None  # type: ignore[method-assign]  # publish by hand, below
        log.commit("tg", {}, [entry("bot", "1"), entry("bot", "2")], T0)
        assert heard(ears) == []  # committed but not in the stream yet: a woken lease would find nothing
        assert log.publish() == 2
        said = heard(ears)
        assert [json.loads(p) for p in said] == [{"bot": 2}]
        assert not from_here(said[0])  # unsigned: it may publish other processes' entries, so it wakes this one too
    finally:
        ears.close()
        log.close()


def test_a_commit_for_more_agents_than_a_payload_holds_wakes_everyone(pg_url: str) -> None:
    names = [f"agent-{i:04d}" for i in range(600)]  # ~10 KB of names: over PostgreSQL's 8000-byte limit
    assert len(json.dumps({n: 1 for n in names}).encode()) >= PG_NOTIFY_LIMIT
    log, ears = PostgresMessageLog.open(pg_url), listener(pg_url)
    try:  # PostgreSQL refuses a payload of 8000 bytes or more: the commit would fail with it
        assert len(log.commit("tg", {}, [entry(n, "hi") for n in names], T0)) == len(names)
        assert heard(ears) == [f"{SENDER} {EVERYONE}"]
    finally:
        ears.close()
        log.close()


def test_payloads_within_the_bound_name_the_agents() -> None:
    names = [f"agent-{i:04d}" for i in range(600)]
    assert MAX_PAYLOAD_BYTES < PG_NOTIFY_LIMIT
    assert payload(names) == f"{SENDER} {EVERYONE}" and payload(names, signed=False) == EVERYONE
    assert parse(payload(names)) is None and parse(EVERYONE) is None
    small = payload(names[:10])
    assert len(small.encode()) <= MAX_PAYLOAD_BYTES and parse(small) == {n: 1 for n in names[:10]}
    assert parse('{"a": "x"}') is None and parse("[1]") is None  # not understood: wake everyone
    assert parse('{"my bot":2}') == {"my bot": 2}  # an older node's payload, no sender: understood as before


def test_only_this_process_s_own_signed_payloads_are_from_here() -> None:
    other = subprocess.run([sys.executable, "-c", "from airlock.messages.wakeup import payload; print(payload(['a']))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert parse(other) == {"a": 1} and not from_here(other)  # another process: its appends wake waiters here
    assert from_here(payload(["a"])) and not from_here(payload(["a"], signed=False))
    assert not from_here('{"a":1}') and not from_here(EVERYONE)


@pytest.mark.parametrize("told", [{"a": 1}, None])
async def test_wake_lets_a_waiting_lease_look_again_at_once(pg_url: str, told: dict[str, int] | None) -> None:
    mine, theirs = PostgresMessageLog.open(pg_url), PostgresMessageLog.open(pg_url)  # two nodes' logs
    inbox = Inbox(mine)
    try:
        waiting = asyncio.create_task(inbox.lease("a", 1, wait_s=10))
        await asyncio.sleep(0.2)
        theirs.commit("tg", {}, [entry("a", "from the other node")], T0)
        backlog = inbox._backlog
        loop = asyncio.get_running_loop()
        started = loop.time()
        inbox.wake(told)
        [got] = await asyncio.wait_for(waiting, 5)
        assert got.content == "from the other node"
        assert loop.time() - started < 0.5  # not at the next look, a second after the last
        assert inbox._backlog == backlog  # counted by the next refresh from the log, not here
    finally:
        mine.close()
        theirs.close()
