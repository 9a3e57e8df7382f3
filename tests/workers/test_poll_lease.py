"""``channels.poll_lease`` on the real SQLite state.db (the leases and the message log in one file), with two
``Workspace`` objects standing for the memory of two worker processes: a poller's cursor commit is fenced by its
lease, the new holder starts from the committed cursor, and a holder whose lease was taken stops."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.capabilities.workspace import CommitFailed, Workspace, WorkspaceTxn
from airlock.channels.poll_lease import LeaseHolder, PollLeasing
from airlock.messages.sqlite import SqliteMessageLog
from airlock.state.leases import COMMIT_FENCE, SqliteLeases

TTL_S = 0.3
CURSOR = "state/offset"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[SqliteMessageLog, SqliteLeases]]:
    log = SqliteMessageLog(tmp_path / "state.db")
    leases = SqliteLeases(tmp_path / "state.db")
    yield log, leases
    leases.close()
    log.close()


def commit_cursor(ws: Workspace, holder: LeaseHolder, value: str) -> None:
    """Commit the cursor as a poll of ``holder``'s task would (COMMIT_FENCE set in its context)."""
    def run() -> None:
        COMMIT_FENCE.set(holder)
        txn = WorkspaceTxn.begin(ws)
        txn.writes[CURSOR] = value
        ws.commit(txn)

    contextvars.Context().run(run)


async def test_a_stale_holder_cannot_commit_the_cursor_and_the_new_one_starts_from_it(
        state: tuple[SqliteMessageLog, SqliteLeases]) -> None:
    log, leases = state
    a = LeaseHolder(PollLeasing(leases, "node/1/a", TTL_S), "poll:tg")
    b = LeaseHolder(PollLeasing(leases, "node/2/b", TTL_S), "poll:tg")
    ws_a, ws_b = Workspace("tg", [CURSOR], log), Workspace("tg", [CURSOR], log)  # two processes' memory
    halt = asyncio.Event()
    assert await a.acquire(halt)
    commit_cursor(ws_a, a, "5")
    await asyncio.sleep(TTL_S + 0.05)  # A stalls (a long poll, a GC pause) past its lease
    assert not a.held()
    assert await b.acquire(halt)
    assert b.lease is not None and a.lease is not None and b.lease.token > a.lease.token
    assert ws_b.get(CURSOR) is None  # loaded before A's commit
    ws_b.reload()
    assert ws_b.get(CURSOR) == "5"  # the new holder polls on from the committed cursor
    commit_cursor(ws_b, b, "7")
    with pytest.raises(CommitFailed):  # A's poll finishes late: its cursor commit is refused (LeaseLost), undone
        commit_cursor(ws_a, a, "6")
    assert log.load_workspace("tg") == {CURSOR: "7"}
    assert ws_a.get(CURSOR) == "5"


async def test_a_holder_whose_lease_was_taken_stops_within_a_renewal(
        state: tuple[SqliteMessageLog, SqliteLeases]) -> None:
    _, leases = state
    a = LeaseHolder(PollLeasing(leases, "node/1/a", 0.6), "poll:tg")
    assert await a.acquire(asyncio.Event())
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(0.25)
    assert a.held()  # renewed
    assert a.lease is not None
    leases.release(a.lease)  # as if it expired while A could not renew
    assert leases.acquire("poll:tg", "node/2/b", 0.6, time.time()) is not None
    started = time.monotonic()
    await asyncio.wait_for(keeping, 1.0)
    assert time.monotonic() - started <= 0.2 + 0.15  # renew_s = ttl / 3, plus scheduling
    assert not a.held()


async def test_release_lets_another_holder_take_over_at_once(state: tuple[SqliteMessageLog, SqliteLeases]) -> None:
    _, leases = state
    a = LeaseHolder(PollLeasing(leases, "node/1/a", 3.0), "poll:tg")
    b = LeaseHolder(PollLeasing(leases, "node/2/b", 3.0), "poll:tg")
    assert await a.acquire(asyncio.Event())
    halt = asyncio.Event()
    trying = asyncio.create_task(b.acquire(halt))
    await asyncio.sleep(0.05)
    assert not trying.done()  # held by A, 3 s to go
    a.release()
    released = time.monotonic()
    assert await asyncio.wait_for(trying, 2.0)
    assert time.monotonic() - released < 1.5  # on B's next try (every 1 s), not once the 3 s TTL ran out


async def test_a_dead_holders_lease_is_taken_as_it_expires_not_a_renewal_later(
        state: tuple[SqliteMessageLog, SqliteLeases]) -> None:
    _, leases = state
    ttl = 1.5  # renew_s 0.5
    a = LeaseHolder(PollLeasing(leases, "node/1/a", ttl), "poll:tg")
    b = LeaseHolder(PollLeasing(leases, "node/2/b", ttl), "poll:tg")
    assert await a.acquire(asyncio.Event())  # A takes it, then dies: it never renews nor releases
    assert a.lease is not None
    expires = a.lease.expires_at
    await asyncio.sleep(0.45)  # B starts looking late in A's term: tries every renew_s would land at 1.45, 1.95
    assert await asyncio.wait_for(b.acquire(asyncio.Event()), ttl + 1.0)
    late = time.time() - expires
    assert 0 <= late < 0.25  # at the expiry (+ TAKEOVER_MARGIN_S), not up to renew_s after it
