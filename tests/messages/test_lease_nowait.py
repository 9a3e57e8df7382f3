"""An agent's lease and ack run on the event loop when the state database is free (``SqliteDb.run_nowait``), and in a
worker thread when it is not: never waiting on the loop, never lost.

Why: the hand-off of each lease and each ack to a worker thread and back cost about twice the transaction's own CPU
(measured: 330 us of CPU for a lease + ack through threads, 110 us on the calling thread), and the in-process agent
of ``airlock serve`` takes one message at a time, so every message paid it twice. The non-blocking transaction
gives up at once when this connection is in use, when another process holds the writer gate, or when a connection
outside the gate holds SQLite's write lock; and its COMMIT never runs a checkpoint (a checkpoint syncs the WAL and
the database file: milliseconds on the loop)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airlock.messages.inbox import Inbox
from airlock.messages.model import NewEntry, Route
from airlock.messages.sqlite import SqliteMessageLog
from airlock.stores._sqlite import BUSY_TIMEOUT_MS, SqliteDb, WouldBlock

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"
T0 = 1_800_000_000.0


def entry(n: int) -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=f"m{n}", metadata_json="{}",
                    route=Route(agent="default", session_key="s", conversation=f"c{n}"))


def insert(conn: sqlite3.Connection) -> int:
    return int(conn.execute("INSERT INTO t (v) VALUES ('x')").lastrowid or 0)


def rows(path: Path) -> int:
    with sqlite3.connect(path) as other:
        return int(other.execute("SELECT count(*) FROM t").fetchone()[0])


@contextmanager
def gate_held_elsewhere(db: Path) -> Iterator[None]:
    """The writer gate taken as another process's writer would (its own open file description)."""
    fd = os.open(f"{db}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def test_runs_at_once_when_free_and_restores_the_connection(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.db", SCHEMA, writer_gate=True)
    assert db.run_nowait(insert) == 1
    assert rows(db.path) == 1
    with db.reading() as conn:  # the busy timeout and automatic checkpoints are back for everyone else
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    db.close()


def test_gives_up_at_once_while_another_process_holds_the_gate(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.db", SCHEMA, writer_gate=True)
    with gate_held_elsewhere(db.path), pytest.raises(WouldBlock):
        db.run_nowait(insert)
    assert rows(db.path) == 0
    assert db.run_nowait(insert) == 1  # the gate is free again
    db.close()


def test_gives_up_while_this_connection_is_in_use(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.db", SCHEMA, writer_gate=True)
    inside, release = threading.Event(), threading.Event()

    def long_transaction() -> None:
        with db.transaction() as conn:
            insert(conn)
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=long_transaction)
    holder.start()
    assert inside.wait(10)
    with pytest.raises(WouldBlock):
        db.run_nowait(insert)
    release.set()
    holder.join()
    assert rows(db.path) == 1  # the other transaction's row only
    db.close()


def test_gives_up_without_the_busy_timeout_when_an_ungated_writer_holds_sqlite_s_lock(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.db", SCHEMA, writer_gate=True)
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(WouldBlock):
        db.run_nowait(insert)
    assert time.monotonic() - started < BUSY_TIMEOUT_MS / 1000 / 2  # did not sit in the busy handler
    other.execute("ROLLBACK")
    other.close()
    assert db.run_nowait(insert) == 1
    with db.reading() as conn:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    db.close()


def test_its_commit_runs_no_checkpoint(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "x.db", SCHEMA, writer_gate=True)
    with db.transaction() as conn:
        conn.execute("PRAGMA wal_autocheckpoint = 4")  # tiny, so any commit past 4 WAL pages would checkpoint
    db._autocheckpoint = 4
    big = "y" * 50_000  # about 13 pages per row
    db.run_nowait(lambda conn: conn.execute("INSERT INTO t (v) VALUES (?)", (big,)))
    db.run_nowait(lambda conn: conn.execute("INSERT INTO t (v) VALUES (?)", (big,)))
    with db.reading() as conn:  # nothing was copied into the database file yet: every frame still in the WAL
        _, wal_frames, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert wal_frames > 20 and checkpointed == wal_frames  # this PASSIVE checkpoint was the first to copy them
    with db.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('z')")
    db.close()


class RecordingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what was handed to a worker thread."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.handed: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.handed.append(repr((fn, args)))
        return super().submit(fn, *args, **kwargs)

    def calls(self) -> list[str]:
        """``lease`` / ``ack`` of the message log, in the order they were handed over."""
        return [name for h in self.handed for name in ("lease", "ack") if f"SqliteMessageLog.{name} " in h]


async def test_an_agent_s_lease_and_ack_stay_on_the_loop_when_the_log_is_free(tmp_path: Path) -> None:
    log = SqliteMessageLog(tmp_path / "state.db")
    log.commit("tg", {}, [entry(n) for n in range(5)], T0)
    inbox = Inbox(log)
    executor = RecordingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    for n in range(5):
        got = await inbox.get("default")
        assert got.content == f"m{n}"
        assert await inbox.ack(got.id, got.lease_token)
    assert executor.calls() == []
    assert log.backlog() == 0
    log.close()


async def test_a_held_gate_sends_lease_and_ack_to_a_thread_that_waits_for_it(tmp_path: Path) -> None:
    log = SqliteMessageLog(tmp_path / "state.db")
    log.commit("tg", {}, [entry(0)], T0)
    inbox = Inbox(log)
    executor = RecordingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    with gate_held_elsewhere(log.path):
        leasing = asyncio.create_task(inbox.lease("default", 1))
        await asyncio.sleep(0.2)
        assert not leasing.done()  # waiting in a worker thread; the loop runs on (this test does)
    [got] = await asyncio.wait_for(leasing, 10)
    with gate_held_elsewhere(log.path):
        acking = asyncio.create_task(inbox.ack(got.id, got.lease_token))
        await asyncio.sleep(0.2)
        assert not acking.done()
    assert await asyncio.wait_for(acking, 10)
    assert executor.calls() == ["lease", "ack"]
    assert log.backlog() == 0
    log.close()


async def test_an_agent_that_never_waits_still_lets_the_loop_run(tmp_path: Path) -> None:
    log = SqliteMessageLog(tmp_path / "state.db")
    log.commit("tg", {}, [entry(n) for n in range(200)], T0)
    inbox = Inbox(log, capacity=1000)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    for _ in range(200):
        got = await inbox.get("default")
        await inbox.ack(got.id, got.lease_token)
    other.cancel()
    assert ticks >= 100  # the other task ran between the messages, not only after all of them
    log.close()
