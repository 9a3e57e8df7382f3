"""The emit window shared by the workers of ``serve --workers N`` (``capabilities.emit_shared``): two connections
to one real SQLite file stand for two worker processes; a fake clock moves time."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from airlock.capabilities.emit import EmitLimiter, SlidingWindowLimiter
from airlock.capabilities.emit_shared import GIVE_BACK_S, SharedWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def two(tmp_path: Path) -> tuple[SharedWindows, SharedWindows, Clock]:
    clock = Clock()
    return (SharedWindows(tmp_path / "w.db", clock), SharedWindows(tmp_path / "w.db", clock), clock)


def test_the_minute_limit_holds_over_both_processes_and_frees_after_a_minute(
        two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
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


def test_the_hour_limit_and_its_running_total(two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 100, 6), b.window("c", 100, 6)
    for _ in range(3):
        assert wa.try_acquire(1) and wb.try_acquire(1)
        clock.now += 600
    assert not wa.try_acquire(1)
    assert wa.retry_after(1) == pytest.approx(3600 - 1800)
    clock.now = 1000.0 + 3600  # the first two leave the hour
    assert wb.try_acquire(2) and not wa.try_acquire(1)
    assert a.db.execute("SELECT hour FROM totals WHERE channel = 'c'").fetchone()[0] == 6


def test_release_gives_back_this_processes_latest_reservation(two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
    a, b, _ = two
    wa, wb = a.window("c", 4, 100), b.window("c", 4, 100)
    assert wa.try_acquire(2) and wb.try_acquire(2) and not wa.try_acquire(1)
    wa.release(1)  # part of a batch
    assert wb.try_acquire(1) and not wb.try_acquire(1)
    wb.release(3)  # b's two reservations
    assert wa.try_acquire(3) and not wa.try_acquire(1)


def test_a_batch_over_the_whole_limit_fits_only_an_empty_window(
        two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 3, 100), b.window("c", 3, 100)
    assert wa.try_acquire(1) and not wb.try_acquire(5)
    clock.now += 61
    assert wb.try_acquire(5) and not wa.try_acquire(1)


def test_the_emit_limiter_refuses_with_the_shared_wait(two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
    a, b, _ = two
    first = EmitLimiter("c", 2, 100, window=a.window("c", 2, 100))
    second = EmitLimiter("c", 2, 100, window=b.window("c", 2, 100))
    assert first.reserve(2) == 0.0
    assert second.reserve(1) == pytest.approx(60.0) and second.refused == 1


def test_release_of_a_reservation_that_left_the_minute_frees_only_the_hour(
        two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
    a, b, clock = two
    wa, wb = a.window("c", 2, 3), b.window("c", 2, 3)
    assert wa.try_acquire(2)
    clock.now += 61
    assert wb.try_acquire(1)  # the minute's cut moves past a's two
    wa.release(2)  # out of the minute already: only the hour gives them back
    assert a.db.execute("SELECT minute, hour FROM totals").fetchone() == (1, 1)
    assert wa.try_acquire(1) and not wb.try_acquire(1)


def test_one_process_decides_as_the_in_memory_window_does(tmp_path: Path) -> None:
    """Random reservations, releases right after (as a failed commit does) and clock steps: the shared window's
    totals give the same answers as ``SlidingWindowLimiter``'s deques."""
    rng = random.Random(12)
    clock = Clock()
    shared = SharedWindows(tmp_path / "w.db", clock).window("c", 10, 150)
    local = SlidingWindowLimiter(10, 150, clock)
    for step in range(1500):
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
    shared = SharedWindows(tmp_path / "w.db", busy_timeout_s=0.05)
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


def test_only_recent_reservations_are_kept_for_giving_back(two: tuple[SharedWindows, SharedWindows, Clock]) -> None:
    a, _, clock = two
    w = a.window("c", 1000, 10_000)
    for _ in range(50):
        assert w.try_acquire(1)
        clock.now += 10
    assert len(w._mine) == GIVE_BACK_S // 10  # the last minute's, whatever the rate
    w.release(1000)  # gives back what it keeps; older reservations stay counted (towards the limit)
    assert a.db.execute("SELECT hour FROM totals").fetchone()[0] == 50 - GIVE_BACK_S // 10
