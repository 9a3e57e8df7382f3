"""Group commit (issue 8's speed target) on real SQLite: concurrent durable writes share one transaction, a failing
write fails only itself, a failing transaction fails its whole group; one channel's staged commits are merged in
order, are visible to the next callback before they are durable, and a failed one takes every commit built on it
down with it (undone, 503 for the webhook, nothing kept); lease walks its index instead of sorting the backlog.

Determinism: a test holds the database's write lock (``SqliteDb._lock``) while the writers queue, so which writes
share a transaction does not depend on thread timing.
"""

from __future__ import annotations

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

from airlock.capabilities.workspace import CommitFailed, Workspace, WorkspaceConflict, WorkspaceTxn
from airlock.messages.group_commit import GroupCommitter
from airlock.messages.model import NewEntry, Route
from airlock.messages.outbox import Outbound
from airlock.messages.sqlite import SqliteMessageLog
from airlock.stores._sqlite import SqliteDb

T0 = 1_800_000_000.0


def entry(content: str, conv: str = "c1") -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=content, metadata_json="{}",
                    route=Route(agent="main", session_key=f"s-{conv}", conversation=conv))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteMessageLog]:
    log = SqliteMessageLog(tmp_path / "state.db")
    yield log
    log.close()


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


@contextmanager
def held(db: SqliteDb) -> Iterator[None]:
    """Hold the database's write lock, as a long transaction (or another writer) would."""
    db._lock.acquire()
    try:
        yield
    finally:
        db._lock.release()


def refuse_content(db_path: Path, content: str) -> None:
    """A trigger (through another connection) that makes SQLite refuse to append an entry with ``content``."""
    conn = sqlite3.connect(db_path)
    conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON inbound WHEN NEW.content = '{content}' "
                 "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    conn.commit()
    conn.close()


# ---- the log's group commit --------------------------------------------------------------------------------------


def test_concurrent_durable_writes_share_one_transaction_and_one_failure_stays_alone(
        log: SqliteMessageLog) -> None:
    log.commit("tg", {}, [entry("to answer")], T0)
    [answered] = log.lease("main", 1, 30, T0)
    before = log.group.transactions
    with ThreadPoolExecutor(max_workers=34) as pool:
        with held(log._db):
            commits = [pool.submit(log.commit, "tg", {f"state/{i}": str(i)}, [entry(f"m{i}", f"c{i}")], T0)
                       for i in range(32)]
            reply = pool.submit(log.ack_and_append, answered.id, answered.lease_token,
                                [Outbound(instance="tg", conversation="c1", kind="respond", payload={"content": "r"})],
                                T0)
            unknown = pool.submit(log.ack_and_append, "no-such-id", None, [], T0)
            wait_for(lambda: len(log.group._queue) == 34)
        assert all(len(f.result()) == 1 for f in commits)
        assert reply.result()[0].payload == {"content": "r"}
        with pytest.raises(KeyError):
            unknown.result()
    assert log.group.transactions - before == 1  # 34 writes, one COMMIT (one fsync)
    assert len(log.load_workspace("tg")) == 32
    assert log.get(answered.id).state == "acked" and len(log.list_outbox()) == 1  # type: ignore[union-attr]


def test_a_failed_transaction_fails_its_whole_group_and_writes_nothing(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "g.db", "CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child ("
                  "id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
                  synchronous="FULL")
    db._conn.execute("PRAGMA foreign_keys = ON")  # a deferred foreign key is checked at COMMIT: COMMIT itself fails
    group = GroupCommitter(db)

    def insert(sql: str) -> Callable[[sqlite3.Connection], None]:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(sql)
        return run

    with ThreadPoolExecutor(max_workers=3) as pool:
        with held(db):
            innocent = pool.submit(group.run, insert("INSERT INTO parent VALUES (1)"))
            orphan = pool.submit(group.run, insert("INSERT INTO child VALUES (1, 99)"))
            wait_for(lambda: len(group._queue) == 2)
        for fut in (innocent, orphan):
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                fut.result()
    with db.reading() as conn:
        assert conn.execute("SELECT count(*) FROM parent").fetchone()[0] == 0
    assert group.run(insert("INSERT INTO parent VALUES (2)")) is None  # the next group is not affected
    db.close()


def test_a_long_queue_is_committed_in_groups_of_max_group(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "g.db", "CREATE TABLE t (v INTEGER)", synchronous="FULL")
    group = GroupCommitter(db, max_group=4)
    with ThreadPoolExecutor(max_workers=10) as pool:
        with held(db):
            futs = [pool.submit(group.run, lambda conn, i=i: conn.execute("INSERT INTO t VALUES (?)", (i,)).rowcount)
                    for i in range(10)]
            wait_for(lambda: len(group._queue) == 10)
        assert [f.result() for f in futs] == [1] * 10
    assert (group.transactions, group.requests) == (3, 10)  # 4 + 4 + 2
    with pytest.raises(ValueError):
        GroupCommitter(db, max_group=0)
    db.close()


def test_lease_walks_its_index_instead_of_sorting_the_backlog(log: SqliteMessageLog) -> None:
    for start in range(0, 20_000, 2_000):
        log.commit("tg", {}, [entry(f"m{i}", f"c{i % 50}") for i in range(start, start + 2_000)], T0)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    log._db._conn.set_progress_handler(count, 1_000)  # called every 1,000 SQLite VM instructions
    [first] = log.lease("main", 1, 30, T0)
    log._db._conn.set_progress_handler(None, 0)
    assert first.content == "m0"
    assert steps[0] < 20, f"{steps[0] * 1000} VM instructions to lease one of 20,000 entries"  # sorting them: ~200


# ---- one channel's staged commits (capabilities.workspace) ---------------------------------------------------------


def stage(ws: Workspace, writes: dict[str, str], entries: list[NewEntry], txn: WorkspaceTxn | None = None,
          read: str | None = None) -> Future[list[NewEntry]]:
    txn = txn or WorkspaceTxn.begin(ws)
    if read is not None:
        txn.read(read)
    for k, v in writes.items():
        txn.write(k, v)
    return ws.stage(txn, entries)


def test_staged_commits_are_seen_at_once_merged_in_order_and_durable_together(log: SqliteMessageLog) -> None:
    ws = Workspace("tg", ["state/"], backend=log)
    before = log.group.transactions
    with held(log._db):
        first = stage(ws, {"state/n": "0"}, [entry("m0")])
        wait_for(lambda: len(log.group._queue) == 1)  # its flusher waits for the database
        rest = []
        for i in range(1, 10):
            txn = WorkspaceTxn.begin(ws)
            assert txn.read("state/n") == str(i - 1)  # the previous callback's write, not durable yet
            rest.append(stage(ws, {"state/n": str(i), "memory/only": str(i)}, [entry(f"m{i}")], txn))
        assert not first.done() and not any(f.done() for f in rest)
    assert [e.content for f in [first, *rest] for e in f.result(10)] == [f"m{i}" for i in range(10)]
    assert log.group.transactions - before == 2  # the first commit alone, then the nine staged behind it merged
    assert [e.content for e in reversed(log.list_inbound())] == [f"m{i}" for i in range(10)]
    assert log.load_workspace("tg") == {"state/n": "9"}  # memory-only paths never reach the log


def test_a_memory_only_commit_waits_for_the_durable_ones_before_it(log: SqliteMessageLog) -> None:
    ws = Workspace("tg", ["state/"], backend=log)
    with held(log._db):
        durable = stage(ws, {"state/a": "1"}, [])
        wait_for(lambda: len(log.group._queue) == 1)
        memory = stage(ws, {"memory/b": "2"}, [])
        assert not memory.done()
    assert durable.result(10) == [] and memory.result(10) == []
    assert stage(ws, {"memory/c": "3"}, []).done()  # nothing queued: resolved at once


def test_a_failed_write_fails_every_commit_built_on_it_and_undoes_them(log: SqliteMessageLog, tmp_path: Path) -> None:
    ws = Workspace("tg", ["state/"], backend=log)
    assert ws.commit(_write(ws, {"state/x": "base"}), [entry("ok")])
    refuse_content(tmp_path / "state.db", "boom")
    with held(log._db):
        doomed = stage(ws, {"state/x": "1", "memory/y": "1"}, [entry("boom")])
        wait_for(lambda: len(log.group._queue) == 1)
        built_on = stage(ws, {"state/x": "2"}, [entry("after")], read="state/x")
        begun_before = WorkspaceTxn.begin(ws)
        assert begun_before.read("state/x") == "2"
    for fut in (doomed, built_on):
        with pytest.raises(CommitFailed):
            fut.result(10)
    assert (ws.get("state/x"), ws.get("memory/y")) == ("base", None)  # undone, newest first
    with pytest.raises(WorkspaceConflict):  # it read values that were rolled back: its callback runs again
        begun_before.write("state/x", "3")
        ws.stage(begun_before, [])
    assert [e.content for e in log.list_inbound()] == ["ok"]
    assert [e.content for e in stage(ws, {"state/x": "4"}, [entry("later")]).result(10)] == ["later"]
    assert log.load_workspace("tg") == {"state/x": "4"}
    assert ws.total_bytes == len("state/x") + 1


def _write(ws: Workspace, writes: dict[str, str]) -> WorkspaceTxn:
    txn = WorkspaceTxn.begin(ws)
    for k, v in writes.items():
        txn.write(k, v)
    return txn


def test_more_channels_than_flush_threads_all_commit(log: SqliteMessageLog) -> None:
    spaces = [Workspace(f"ch{i}", ["state/"], backend=log) for i in range(20)]
    futs: list[Future[Any]] = [stage(ws, {"state/v": ws.channel}, [entry(ws.channel)]) for ws in spaces]
    assert sorted(e.content for f in futs for e in f.result(20)) == sorted(ws.channel for ws in spaces)
    assert all(log.load_workspace(ws.channel) == {"state/v": ws.channel} for ws in spaces)
    assert threading.active_count() < 100


def test_full_syncs_the_wal_after_each_group_and_normal_never(tmp_path: Path) -> None:
    full = SqliteMessageLog(tmp_path / "full.db")
    normal = SqliteMessageLog(tmp_path / "normal.db", synchronous="NORMAL")
    for log in (full, normal):
        log.commit("tg", {"state/a": "1"}, [entry("m")], T0)
    assert full.group._wal._fd is not None and normal.group._wal._fd is None
    wal = tmp_path / "full.db-wal"
    assert os.fstat(full.group._wal._fd).st_ino == wal.stat().st_ino  # the file SQLite writes the frames to
    full.close()
    normal.close()
    assert full.group._wal._fd is None
    reopened = SqliteMessageLog(tmp_path / "full.db")
    assert [e.content for e in reopened.list_inbound()] == ["m"]
    reopened.close()


def test_a_callback_that_wrote_nothing_does_not_wait_for_queued_commits(log: SqliteMessageLog) -> None:
    ws = Workspace("tg", ["state/"], backend=log)
    with held(log._db):
        durable = stage(ws, {"state/a": "1"}, [entry("m")])
        wait_for(lambda: len(log.group._queue) == 1)
        txn = WorkspaceTxn.begin(ws)
        assert txn.read("state/a") == "1"
        assert ws.stage(txn, []).done()  # an on-respond that only read: it never waits for another's fsync
    assert [e.content for e in durable.result(10)] == ["m"]


def test_log_synchronous_is_full_or_normal(tmp_path: Path) -> None:
    from airlock.errors import ConfigError
    from airlock.host_config import HostConfig

    assert HostConfig.build(home=tmp_path).log_synchronous == "FULL"
    assert HostConfig.build(home=tmp_path, log_synchronous="NORMAL").log_synchronous == "NORMAL"
    with pytest.raises(ConfigError, match="log_synchronous"):
        HostConfig.build(home=tmp_path, log_synchronous="OFF")  # never: a power loss could corrupt the file


def test_merged_commits_are_capped_by_count_and_bytes(log: SqliteMessageLog, monkeypatch: pytest.MonkeyPatch) -> None:
    import airlock.capabilities.workspace as workspace_module

    monkeypatch.setattr(workspace_module, "MAX_MERGED_COMMITS", 3)
    monkeypatch.setattr(workspace_module, "MAX_MERGED_BYTES", 100)
    ws = Workspace("tg", ["state/"], backend=log)
    before = log.group.transactions
    with held(log._db):
        first = stage(ws, {"state/first": "x"}, [])
        wait_for(lambda: len(log.group._queue) == 1)
        small = [stage(ws, {f"state/s{i}": "x"}, [entry(f"s{i}")]) for i in range(4)]  # 9 bytes each
        big = [stage(ws, {f"state/b{i}": "y" * 60}, []) for i in range(3)]  # 68 bytes each
    for fut in [first, *small, *big]:
        fut.result(10)
    # [first] (alone: the database was held), [s0 s1 s2] (3 commits), [s3 b0] (77 bytes; + b1 would pass 100),
    # [b1], [b2]
    assert log.group.transactions - before == 5
    assert [e.content for e in reversed(log.list_inbound())] == ["s0", "s1", "s2", "s3"]


def test_flushed_resolves_once_everything_staged_before_is_durable(log: SqliteMessageLog) -> None:
    ws = Workspace("tg", ["state/"], backend=log)
    assert ws.flushed().done()  # nothing staged
    with held(log._db):
        staged = stage(ws, {"state/a": "1"}, [entry("m")])
        flushed = ws.flushed()
        assert not flushed.done()
    assert flushed.result(10) == [] and staged.done()
    assert log.load_workspace("tg") == {"state/a": "1"}
