"""Leases with fencing tokens (``state.leases``) on SQLite and on a real PostgreSQL: the acquire / renew / release /
check rules, and the guarantee the workers build on: two holders racing for one poller lease never both commit a
poll cursor (fenced ``MessageLog.commit``)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airlock.errors import LeaseLost
from airlock.messages.log import MessageLog
from airlock.messages.postgres import PostgresMessageLog
from airlock.messages.sqlite import SqliteMessageLog
from airlock.state.leases import Fence, Leases, PostgresLeases, SqliteLeases
from airlock.state.postgres import PgDb

T0 = 1_800_000_000.0
NAME = "poller:telegram"

Open = Callable[[], tuple[MessageLog, Leases]]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    """``open_state()``: a (log, leases) pair on its own connections, as another process would have."""
    opened: list[tuple[MessageLog, Leases, PgDb | None]] = []

    def make() -> tuple[MessageLog, Leases]:
        if request.param == "sqlite":
            opened.append((SqliteMessageLog(tmp_path / "state.db"), SqliteLeases(tmp_path / "state.db"), None))
        else:
            db = PgDb(request.getfixturevalue("pg_url"))
            opened.append((PostgresMessageLog(db), PostgresLeases(db), db))
        return opened[-1][0], opened[-1][1]

    yield make
    for log, leases, db in opened:
        log.close()
        leases.close()
        if db is not None:
            db.close()


def test_acquire_renew_release_check(open_state: Open) -> None:
    _, leases = open_state()
    a = leases.acquire(NAME, "node-a", 15, T0)
    assert a is not None and a.token == 1 and a.expires_at == T0 + 15
    assert leases.acquire(NAME, "node-b", 15, T0 + 1) is None  # held, unexpired
    again = leases.acquire(NAME, "node-a", 15, T0 + 5)  # the holder itself: extended, same token
    assert again is not None and again.token == 1 and again.expires_at == T0 + 20
    a = leases.renew(again, 15, T0 + 10)
    assert a.expires_at == T0 + 25 and leases.check(a.fence, T0 + 24) and not leases.check(a.fence, T0 + 25)
    b = leases.acquire(NAME, "node-b", 15, T0 + 25)  # expired: taken over, new token
    assert b is not None and b.token == 2 and b.holder == "node-b"
    with pytest.raises(LeaseLost):
        leases.renew(a, 15, T0 + 26)
    assert not leases.check(a.fence, T0 + 26) and not leases.release(a)
    assert leases.release(b) and not leases.check(b.fence, T0 + 26)
    a2 = leases.acquire(NAME, "node-a", 15, T0 + 26)  # released: free at once, token keeps growing
    assert a2 is not None and a2.token == 3
    current = leases.get(NAME)
    assert current is not None and current.holder == "node-a" and leases.get("never") is None
    with pytest.raises(LeaseLost):  # expired, even though nobody took it over
        leases.renew(a2, 15, T0 + 100)


def test_a_fenced_commit_applies_nothing_once_the_lease_is_lost(open_state: Open) -> None:
    log, leases = open_state()
    a = leases.acquire(NAME, "node-a", 15, T0)
    assert a is not None
    log.commit("tg", {"state/offset": "1"}, [], T0, fence=a.fence)
    b = leases.acquire(NAME, "node-b", 15, T0 + 16)
    assert b is not None
    with pytest.raises(LeaseLost):
        log.commit("tg", {"state/offset": "2"}, [], T0 + 16, fence=a.fence)
    with pytest.raises(LeaseLost):  # never-issued token
        log.commit("tg", {"state/offset": "2"}, [], T0 + 16, fence=Fence(NAME, 99))
    assert log.load_workspace("tg") == {"state/offset": "1"}
    log.commit("tg", {"state/offset": "2"}, [], T0 + 17, fence=b.fence)
    assert log.load_workspace("tg") == {"state/offset": "2"}


TTL_S = 0.05
RUN_S = 1.5


@dataclass
class Record:
    committed: list[tuple[str, int, int]] = field(default_factory=list)  # (holder, token, cursor written)
    lost: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def poller(holder: str, log: MessageLog, leases: Leases, record: Record, seed: int) -> None:
    """A poller that holds the lease, reads its cursor, 'polls' (sometimes past the TTL), commits cursor + 1."""
    rng = random.Random(seed)
    deadline = time.monotonic() + RUN_S
    while time.monotonic() < deadline:
        lease = leases.acquire(NAME, holder, TTL_S, time.time())
        if lease is None:
            time.sleep(rng.uniform(0, TTL_S / 2))
            continue
        cursor = int(log.load_workspace("tg").get("state/offset", "0"))
        time.sleep(rng.choice([0.0, 0.005, 0.02, TTL_S * 1.5]))  # the last one outlives the lease
        try:
            log.commit("tg", {"state/offset": str(cursor + 1)}, [], time.time(), fence=lease.fence)
        except LeaseLost:
            with record.lock:
                record.lost += 1
            continue
        with record.lock:
            record.committed.append((holder, lease.token, cursor + 1))


def test_two_holders_never_both_commit_a_cursor(open_state: Open) -> None:
    record = Record()
    pairs = [open_state(), open_state()]  # two processes' connections
    threads = [threading.Thread(target=poller, args=(f"node-{i}", *pairs[i], record, i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RUN_S + 30)
    written = [cursor for _h, _t, cursor in record.committed]
    # every successful commit read the cursor its predecessor wrote: no value twice, none skipped
    assert sorted(written) == list(range(1, len(written) + 1)), record.committed
    final = int(pairs[0][0].load_workspace("tg")["state/offset"])
    assert final == len(written)
    tokens = [token for _h, token, _c in sorted(record.committed, key=lambda r: r[2])]
    assert tokens == sorted(tokens)  # commits follow the lease's hand-overs
    # the race really happened: both held the lease at some point and stale holders were refused
    assert {h for h, _t, _c in record.committed} == {"node-0", "node-1"} and record.lost > 0
