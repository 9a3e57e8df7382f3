"""The message log delivering through Redis Streams (``messages.redisbus``) on the real PostgreSQL and Redis:
entries reach Redis only after PostgreSQL has them (outbox), leases come from the stream and are judged by
PostgreSQL, acks reach both, a consumer that dies has its entries claimed by another after the visibility timeout
(XAUTOCLAIM), and a Redis that restarts without its data loses nothing (re-published from PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError
from servers import PostgresServer, RedisServer

from airlock.errors import StateUnavailable
from airlock.host_config import HostConfig
from airlock.messages.inbox import Inbox
from airlock.messages.model import Entry, NewEntry, Route
from airlock.messages.redisbus import EXPIRY_CHECK_S, GROUP, PUBLISH_BATCH, RedisBusLog

_namespaces = itertools.count()
OpenBus = Callable[..., RedisBusLog]


def entry(content: str, conv: str = "c1", agent: str = "main") -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=content, metadata_json="{}",
                    route=Route(agent=agent, session_key=f"s-{conv}", conversation=conv))


@pytest.fixture
def open_bus(pg_url: str, redis_server: RedisServer) -> Iterator[OpenBus]:
    """``open_bus(url=..., consumer=...)``: a RedisBusLog on a fresh database, in a key namespace of this test."""
    namespace = f"t{next(_namespaces)}-{time.time_ns()}:"
    opened: list[RedisBusLog] = []

    def make(url: str | None = None, **kwargs: object) -> RedisBusLog:
        opened.append(RedisBusLog.open_bus(pg_url, url or redis_server.url, namespace=namespace, **kwargs))
        return opened[-1]

    yield make
    for log in opened:
        log.close()


def _drain(log: RedisBusLog, agent: str = "main", visibility_s: float = 60.0) -> list[Entry]:
    got: list[Entry] = []
    while batch := log.lease(agent, 10, visibility_s, time.time()):
        got.extend(batch)
    return got


def test_commit_publishes_after_postgres_and_ack_reaches_both(open_bus: OpenBus, redis_server: RedisServer) -> None:
    log = open_bus()
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    ids = [e.id for e in log.commit("tg", {}, [entry(f"m{i}", f"c{i % 3}") for i in range(7)], time.time())]
    log.commit("tg", {}, [entry("other", agent="side")], time.time())
    stream = log.stream_key("main")
    deadline = time.monotonic() + 5
    while len(r.xrange(stream)) < 7 and time.monotonic() < deadline:  # the publisher thread, no lease needed
        time.sleep(0.01)
    assert [f["id"] for _x, f in r.xrange(stream)] == ids  # in commit order, only main's
    leased = log.lease("main", 10, 60, time.time())
    assert [e.id for e in leased] == ids and all(e.state == "leased" and e.lease_token for e in leased)
    assert r.xpending(stream, GROUP)["pending"] == 7
    assert log.lease("main", 10, 60, time.time()) == []  # held: nothing new
    for e in leased[:5]:
        assert log.ack(e.id, e.lease_token, time.time())
    assert not log.ack(leased[5].id, "wrong-token", time.time())
    assert r.xpending(stream, GROUP)["pending"] == 2
    assert log.backlog() == 3  # 2 leased for main + 1 for side, counted in PostgreSQL
    got = log.get(ids[0])
    assert got is not None and got.state == "acked"
    assert log.lease("side", 10, 60, time.time())[0].content == "other"


def test_more_than_one_publish_batch_keeps_commit_order(open_bus: OpenBus, redis_server: RedisServer) -> None:
    """PUBLISH_BATCH entries per publisher transaction: a backlog of several batches goes out whole, in order."""
    log = open_bus()
    count = PUBLISH_BATCH * 2 + 7
    ids = [e.id for e in log.commit("tg", {}, [entry(f"m{i}", f"c{i % 5}") for i in range(count)], time.time())]
    log.publish()
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert [f["id"] for _x, f in r.xrange(log.stream_key("main"))] == ids


def test_release_offers_the_entry_again_at_once(open_bus: OpenBus) -> None:
    log = open_bus()
    log.commit("tg", {}, [entry("a"), entry("b")], time.time())
    first = log.lease("main", 1, 60, time.time())[0]
    assert log.release(first.id, first.lease_token)
    again = log.lease("main", 2, 60, time.time())
    assert [e.content for e in again] == ["a", "b"]  # the released one first, then the next


def test_a_dead_consumers_entries_are_claimed_after_the_visibility_timeout(open_bus: OpenBus) -> None:
    dead, alive = open_bus(consumer="dead"), open_bus(consumer="alive")
    dead.commit("tg", {}, [entry(f"m{i}") for i in range(4)], time.time())
    held = dead.lease("main", 4, 0.5, time.time())  # then it dies: never acks
    assert len(held) == 4
    assert alive.lease("main", 4, 0.5, time.time()) == []  # still within the visibility timeout
    time.sleep(0.6)
    claimed = alive.lease("main", 4, 0.5, time.time())
    assert [e.id for e in claimed] == [e.id for e in held]
    assert all(e.attempts == 2 for e in claimed)
    assert not dead.ack(held[0].id, held[0].lease_token, time.time())  # its old token lost the entry
    for e in claimed:
        assert alive.ack(e.id, e.lease_token, time.time())
    assert alive.backlog() == 0


def test_expired_leases_are_looked_up_at_most_every_expiry_check(open_bus: OpenBus) -> None:
    """EXPIRY_CHECK_S (caller's clock): within it after a look, an empty lease asks PostgreSQL nothing, so a lease
    that just expired waits; once it passed, the expired lease is offered again."""
    log = open_bus()
    t0 = time.time()
    log.commit("tg", {}, [entry("m")], t0)
    (held,) = log.lease("main", 1, 1.0, t0)  # expires at t0 + 1
    assert log.lease("main", 1, 1.0, t0 + 0.9) == []  # a look: nothing expired yet
    assert log.lease("main", 1, 1.0, t0 + 0.9 + EXPIRY_CHECK_S * 0.6) == []  # expired, but no look yet
    (again,) = log.lease("main", 1, 1.0, t0 + 0.9 + EXPIRY_CHECK_S)
    assert again.id == held.id and again.attempts == 2


def test_entries_a_dead_gateway_took_from_the_stream_are_autoclaimed(open_bus: OpenBus,
                                                                    redis_server: RedisServer) -> None:
    """A gateway that read entries (XREADGROUP) and died before leasing them in PostgreSQL: they stay pending under
    its consumer name; another consumer takes them with XAUTOCLAIM once they were idle for the visibility timeout."""
    log = open_bus(consumer="alive")
    log.commit("tg", {}, [entry(f"m{i}") for i in range(3)], time.time())
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    log.publish()  # (the publisher thread may not have run yet)
    taken = r.xreadgroup(GROUP, "crashed-gateway", {log.stream_key("main"): ">"}, count=2)
    assert len(taken[0][1]) == 2
    assert [e.content for e in log.lease("main", 3, 60, time.time())] == ["m2"]  # the two are held, not idle yet
    time.sleep(0.6)
    late = log.lease("main", 3, 0.5, time.time())
    assert [e.content for e in late] == ["m0", "m1"]
    # handed out once already (to the dead gateway), after m2: a redelivery to the agent, not a first delivery
    assert [e.attempts for e in late] == [2, 2]
    owners = {c["name"]: c["pending"] for c in r.xinfo_consumers(log.stream_key("main"), GROUP)}
    assert owners.get("crashed-gateway", 0) == 0 and owners["alive"] == 3


def test_entries_read_when_postgresql_failed_are_handed_back_at_once(
        stoppable_postgres: PostgresServer, redis_server: RedisServer) -> None:
    """A lease that read entries from the stream and then could not lease them in PostgreSQL (down) gives them back
    to the group: the next lease anywhere takes them at once (not after the visibility timeout, in this
    consumer's pending list meanwhile), as a second attempt."""
    url, namespace = stoppable_postgres.create_schema(), f"t{next(_namespaces)}-{time.time_ns()}:"
    frozen = time.monotonic()  # A's clock: its next lease does not sweep (PostgreSQL), it goes to the stream
    a = RedisBusLog.open_bus(url, redis_server.url, namespace=namespace, consumer="a", clock=lambda: frozen)
    b = RedisBusLog.open_bus(url, redis_server.url, namespace=namespace, consumer="b")
    try:
        now = time.time()
        assert a.lease("main", 10, 60, now) == []  # A looked: expired leases and the sweep are not due again
        b.commit("tg", {}, [entry(f"m{i}") for i in range(3)], now)
        b.publish()
        stoppable_postgres.stop()
        with pytest.raises(StateUnavailable):
            a.lease("main", 10, 60, now)  # read m0..m2 from the stream, then PostgreSQL failed
        stoppable_postgres.start()
        again = b.lease("main", 10, 60, time.time())
        assert [e.content for e in again] == ["m0", "m1", "m2"]
        assert [e.attempts for e in again] == [2, 2, 2]
    finally:
        a.close()
        b.close()


def test_redis_restart_without_data_loses_nothing_and_repeats_nothing_acked(open_bus: OpenBus,
                                                                             own_redis: RedisServer) -> None:
    log = open_bus(own_redis.url)
    log.commit("tg", {}, [entry(f"m{i}", f"c{i % 2}") for i in range(6)], time.time())
    before = log.lease("main", 3, 60, time.time())
    for e in before[:2]:
        assert log.ack(e.id, e.lease_token, time.time())
    own_redis.stop()  # no persistence: the streams, groups and epoch are gone
    committed = log.commit("tg", {}, [entry("while-down", "c0")], time.time())  # durable in PostgreSQL
    assert len(committed) == 1
    with pytest.raises(StateUnavailable):
        log.lease("main", 10, 60, time.time())
    own_redis.start()
    log.commit("tg", {}, [entry("after", "c1")], time.time())
    after = _drain(log)
    delivered = [e.content for e in after]
    # m2 is still leased to its first taker (valid lease): not handed out again while that lease holds
    assert delivered == ["m3", "m4", "m5", "while-down", "after"]
    # m3..m5 were in the lost Redis, where they may have been handed out without a lease recorded (a gateway
    # that died between the read and the lease): counted as handed out once already; the others were not
    assert [e.attempts for e in after] == [2, 2, 2, 1, 1]
    for e in after:
        assert log.ack(e.id, e.lease_token, time.time())
    assert log.ack(before[2].id, before[2].lease_token, time.time())
    assert log.backlog() == 0


def test_a_redis_that_came_back_empty_is_noticed_without_a_new_commit(open_bus: OpenBus,
                                                                       own_redis: RedisServer) -> None:
    """The lease's sweep reads the epoch again: entries published to the lost Redis come back although nothing was
    committed since (no publish after a commit would notice)."""
    log = open_bus(own_redis.url)
    log.commit("tg", {}, [entry(f"m{i}") for i in range(3)], time.time())
    own_redis.kill()
    own_redis.start()
    assert [e.content for e in _drain(log)] == ["m0", "m1", "m2"]


def test_trim_keeps_what_is_not_acknowledged(open_bus: OpenBus, redis_server: RedisServer) -> None:
    log = open_bus()
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    log.commit("tg", {}, [entry(f"m{i}") for i in range(5)], time.time())
    leased = log.lease("main", 2, 60, time.time())
    for e in leased:
        assert log.ack(e.id, e.lease_token, time.time())
    assert log.trim() == 2
    assert [f["id"] for _x, f in r.xrange(log.stream_key("main"))] == [e.id for e in log.list_inbound("ready")][::-1]
    rest = _drain(log)
    assert [e.content for e in rest] == ["m2", "m3", "m4"]


def test_bus_needs_postgresql_state_and_a_redis_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs state"):
        HostConfig(home=tmp_path, bus="redis://127.0.0.1:6379/0")
    with pytest.raises(ValidationError, match="redis://"):
        HostConfig(home=tmp_path, state="postgresql://a@127.0.0.1/db", bus="http://127.0.0.1:6379")
    ok = HostConfig(home=tmp_path, state="postgresql://a@127.0.0.1/db", bus="redis://127.0.0.1:6379/0")
    assert ok.bus == "redis://127.0.0.1:6379/0"


async def test_the_in_process_inbox_waits_for_and_acks_through_the_bus(open_bus: OpenBus,
                                                                      redis_server: RedisServer) -> None:
    """``Inbox`` (host.messages(), the agent API's long poll and stream) on the bus: a waiting lease is woken by a
    commit of this process, the entry comes from the stream, its ack reaches PostgreSQL and Redis."""
    log = open_bus()
    inbox = Inbox(log, capacity=10, visibility_s=30)
    waiting = asyncio.create_task(inbox.lease("main", 5, wait_s=10))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    (committed,) = await asyncio.to_thread(log.commit, "tg", {}, [entry("hello")], time.time())
    inbox.appended(1)
    (got,) = await asyncio.wait_for(waiting, 5)
    assert got.id == committed.id and got.content == "hello"
    assert await inbox.ack(got.id, got.lease_token)
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert r.xpending(log.stream_key("main"), GROUP)["pending"] == 0
    assert inbox.unacknowledged() == 0
