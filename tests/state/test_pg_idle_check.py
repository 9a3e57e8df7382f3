"""``PgDb`` checks a pooled connection on borrow only when it was idle past ``CHECK_IDLE_S`` (real PostgreSQL):
back-to-back transactions pay no extra round trip, and after a server restart a connection idle since then is
checked, found dead and replaced, so the first transaction succeeds instead of failing on it."""

from __future__ import annotations

import time

import psycopg_pool
import pytest
from servers import PostgresServer

from airlock.state import postgres
from airlock.state.postgres import PgDb

IDLE_S = 0.3
"""A short CHECK_IDLE_S for the test (the default is 1 s)."""


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts psycopg_pool's own connection check (the library's function is still run)."""
    calls = [0]
    real = psycopg_pool.ConnectionPool.check_connection

    def counting(conn: postgres.PgConn) -> None:
        calls[0] += 1
        real(conn)

    monkeypatch.setattr(psycopg_pool.ConnectionPool, "check_connection", staticmethod(counting))
    monkeypatch.setattr(postgres, "CHECK_IDLE_S", IDLE_S)
    return calls


def _one(db: PgDb) -> int:
    with db.transaction() as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_used_within_the_idle_time_is_not_checked(pg_url: str, checks: list[int]) -> None:
    db = PgDb(pg_url, max_size=1)
    try:
        _one(db)
        before = checks[0]
        for _ in range(20):
            _one(db)
        assert checks[0] == before  # twenty transactions, no extra round trip
        time.sleep(IDLE_S + 0.2)
        _one(db)
        assert checks[0] == before + 1  # idle past CHECK_IDLE_S: checked
    finally:
        db.close()


def test_a_connection_used_just_before_a_restart_is_found_dead_at_once(
        stoppable_postgres: PostgresServer, checks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Within CHECK_IDLE_S: the server's goodbye left the socket readable, so it is checked, not lent dead."""
    monkeypatch.setattr(postgres, "CHECK_IDLE_S", 60.0)  # the restart takes longer than IDLE_S: not the idle rule
    db = PgDb(stoppable_postgres.create_schema(), max_size=1)
    try:
        _one(db)
        before = checks[0]
        stoppable_postgres.stop()
        stoppable_postgres.start()
        assert _one(db) == 1  # no wait for CHECK_IDLE_S: a dead connection would raise StateUnavailable here
        assert checks[0] > before  # the dead one failed its check (the pool then checks the new one too)
    finally:
        db.close()


def test_after_a_restart_an_idle_connection_is_checked_and_replaced(stoppable_postgres: PostgresServer,
                                                                    checks: list[int]) -> None:
    db = PgDb(stoppable_postgres.create_schema(), max_size=1)
    try:
        _one(db)
        stoppable_postgres.stop()
        stoppable_postgres.start()
        time.sleep(IDLE_S + 0.2)
        assert _one(db) == 1  # the dead connection failed its check and the pool lent a new one
    finally:
        db.close()
