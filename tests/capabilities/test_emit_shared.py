"""The emit window shared by the workers of ``serve --workers N`` and the nodes of a cluster
(``capabilities.emit_shared``): two connections to one real SQLite file, or two pools on one real PostgreSQL
database, stand for two processes; a fake clock moves time."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import PostgresServer

from airlock.capabilities.emit import EmitLimiter, SlidingWindowLimiter
from airlock.capabilities.emit_shared import GIVE_BACK_S, PgWindows, SharedWindow, SharedWindows, SqliteWindows
from airlock.state.postgres import PgDb

Two = tuple[SharedWindows, SharedWindows, "Clock"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Two]:
    clock = Clock()
    if request.param == "sqlite":
        yield SqliteWindows(tmp_path / "w.db", clock), SqliteWindows(tmp_path / "w.db", clock), clock
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database("emit")
    first, second = PgDb(url, max_size=2), PgDb(url, max_size=2)
    try:
        yield PgWindows(first, clock), PgWindows(second, clock), clock
    finally:
        first.close()
        second.close()


def totals(shared: SharedWindows, channel: str = "c") -> tuple[int, int]:
    """(minute, hour) as kept in ``emit_totals``."""
    with shared.transaction() as tx:
        minute, hour = tx.execute(shared.sql["totals"], (channel,)).fetchone()
    return int(minute), int(hour)


def test_the_minute_limit_holds_over_both_processes_and_frees_after_a_minute(
        two: Two) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 5, 100), b.window("c", 5, 100)
    assert wa.try_acquire(3)
    clock.now += 30
    assert wb.try_acquire(2)
    assert not wa.try_acquire(1) and not wb.try_acquire(1)
    assert wb.retry_after(1) == pytest.approx(30.0)  # a's batch of 3 leaves at +60
    assert wa.retry_after(4) == pytest.approx(60.0)  # then b's 2 as well, at +90
    clock.now += 30
    assert wb.try_acquire(3) and not wa.try_acquire(1)
    assert a.window("other", 5, 100).try_acquire(5)  # per channel


def test_the_hour_limit_and_its_running_total(two: Two) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 100, 6), b.window("c", 100, 6)
    for _ in range(3):
        assert wa.try_acquire(1) and wb.try_acquire(1)
        clock.now += 600
    assert not wa.try_acquire(1)
    assert wa.retry_after(1) == pytest.approx(3600 - 1800)
    clock.now = 1000.0 + 3600  # the first two leave the hour
    assert wb.try_acquire(2) and not wa.try_acquire(1)
    assert totals(a)[1] == 6


def test_release_gives_back_this_processes_latest_reservation(two: Two) -> None:
    a, b, _ = two
    wa, wb = a.window("c", 4, 100), b.window("c", 4, 100)
    assert wa.try_acquire(2) and wb.try_acquire(2) and not wa.try_acquire(1)
    wa.release(1)  # part of a batch
    assert wb.try_acquire(1) and not wb.try_acquire(1)
    wb.release(3)  # b's two reservations
    assert wa.try_acquire(3) and not wa.try_acquire(1)


def test_a_batch_over_the_whole_limit_fits_only_an_empty_window(
        two: Two) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 3, 100), b.window("c", 3, 100)
    assert wa.try_acquire(1) and not wb.try_acquire(5)
    clock.now += 61
    assert wb.try_acquire(5) and not wa.try_acquire(1)


def test_the_emit_limiter_refuses_with_the_shared_wait(two: Two) -> None:
    a, b, _ = two
    first = EmitLimiter("c", 2, 100, window=a.window("c", 2, 100))
    second = EmitLimiter("c", 2, 100, window=b.window("c", 2, 100))
    assert first.reserve(2) == 0.0
    assert second.reserve(1) == pytest.approx(60.0) and second.refused == 1


def test_release_of_a_reservation_that_left_the_minute_frees_only_the_hour(
        two: Two) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 2, 3), b.window("c", 2, 3)
    assert wa.try_acquire(2)
    clock.now += 61
    assert wb.try_acquire(1)  # the minute's cut moves past a's two
    wa.release(2)  # out of the minute already: only the hour gives them back
    assert totals(a) == (1, 1)
    assert wa.try_acquire(1) and not wb.try_acquire(1)


def test_one_process_decides_as_the_in_memory_window_does(two: Two) -> None:
    """Random reservations, releases right after (as a failed commit does) and clock steps: the shared window's
    totals give the same answers as ``SlidingWindowLimiter``'s deques."""
    rng = random.Random(12)
    a, _, clock = two
    shared = a.window("c", 10, 150)
    local = SlidingWindowLimiter(10, 150, clock)
    for step in range(800):
        clock.now += rng.choice((0.0, 0.5, 3.0, 9.0, 30.0))
        count = rng.randint(1, 4)
        got = shared.try_acquire(count)
        assert got == local.try_acquire(count), step
        if got and rng.random() < 0.2:
            shared.release(count)
            local.release(count)
        else:
            assert shared.retry_after(2) == pytest.approx(local.retry_after(2)), step


def test_a_window_file_held_too_long_falls_back_to_this_processes_window(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shared = SqliteWindows(tmp_path / "w.db", busy_timeout_s=0.05)
    w = shared.window("c", 2, 100)
    blocker = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another worker stuck inside its reservation
    try:
        assert w.try_acquire(2) and not w.try_acquire(1)  # this process's own 2 a minute still holds
        assert w.retry_after(1) == pytest.approx(60.0, abs=1)
    finally:
        blocker.execute("ROLLBACK")
    assert "shared emit window unavailable" in caplog.text
    assert w.try_acquire(2)  # the shared file again: it counted nothing meanwhile


def test_only_recent_reservations_are_kept_for_giving_back(two: Two) -> None:
    a, _, clock = two
    w = a.window("c", 1000, 10_000)
    for _ in range(50):
        assert w.try_acquire(1)
        clock.now += 10
    assert len(w._mine) == GIVE_BACK_S // 10  # the last minute's, whatever the rate
    w.release(1000)  # gives back what it keeps; older reservations stay counted (towards the limit)
    assert totals(a)[1] == 50 - GIVE_BACK_S // 10


def test_concurrent_reservations_never_pass_the_limit(two: Two) -> None:
    """Two processes' reservations at the same time (threads on two connections or pools): exactly the limit is
    admitted, none twice, and nothing fails over to a process's own window."""
    a, b, _ = two
    windows = [a.window("c", 40, 1000), b.window("c", 40, 1000)]
    admitted: list[bool] = []

    def reserve(w: SharedWindow) -> None:
        for _ in range(60):
            admitted.append(w.try_acquire(1))

    threads = [threading.Thread(target=reserve, args=(w,)) for w in windows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(True) == 40 and len(admitted) == 120
    assert not any(w._fell_back for w in windows) and totals(a) == (40, 40)


async def test_a_release_on_the_event_loop_does_not_wait_for_the_store(two: Two) -> None:
    """``Channel.settled`` gives a failed commit's reservation back on the event loop: the store is written on the
    store's own thread, and the rows given back are the ones reserved before the release, not later ones."""
    a, b, _ = two
    wa, wb = a.window("c", 3, 100), b.window("c", 3, 100)
    assert wa.try_acquire(2)
    with b.transaction() as tx:  # another process holds the channel's totals (SQLite: the file's write lock)
        tx.execute(b.sql["totals"], ("c",)).fetchone()
        wa.release(2)  # returns at once although the store is busy
    a.released()
    assert totals(a) == (0, 0) and wb.try_acquire(3)
