"""Webhook replay caches shared through the state database (``state.replay``), on SQLite (workers on one machine)
and a real PostgreSQL (nodes): a signature accepted by one process is a replay for every other one until it
expires, per channel; expired rows are taken over and pruned."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from servers import PostgresServer

import airlock.state.replay as replay_mod
from airlock.errors import StateUnavailable
from airlock.state.postgres import RECONNECT_WINDOW_S, PgDb
from airlock.state.replay import SharedReplayCache

T0 = 1_800_000_000.0
Open = Callable[[str], SharedReplayCache]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    """``open_cache(channel)``: a cache as another process would open it (its own connection)."""
    caches: list[SharedReplayCache] = []
    pools: list[PgDb] = []

    def make(scope: str) -> SharedReplayCache:
        if request.param == "sqlite":
            caches.append(SharedReplayCache(tmp_path / "state.db", scope))
        else:
            pools.append(PgDb(request.getfixturevalue("pg_url")))
            caches.append(SharedReplayCache(pools[-1], scope))
        return caches[-1]

    yield make
    for cache in caches:
        cache.close()
    for pool in pools:
        pool.close()


def test_a_replay_to_another_process_is_seen_until_it_expires(open_cache: Open) -> None:
    node_a, node_b = open_cache("slack"), open_cache("slack")
    assert node_a.seen("v0=abc", T0 + 300, T0) is False
    assert node_a.seen("v0=abc", T0 + 300, T0 + 1) is True  # here (from memory)
    assert node_b.seen("v0=abc", T0 + 300, T0 + 2) is True  # and on the other node (from the database)
    assert open_cache("discord").seen("v0=abc", T0 + 300, T0 + 2) is False  # per channel
    assert node_b.seen("v0=abc", T0 + 700, T0 + 301) is False  # expired: recorded anew
    assert node_a.seen("v0=abc", T0 + 700, T0 + 302) is True


def test_expired_rows_are_pruned(open_cache: Open, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                 request: pytest.FixtureRequest) -> None:
    monkeypatch.setattr(replay_mod, "PRUNE_EVERY", 5)
    cache = open_cache("slack")
    for i in range(4):
        assert cache.seen(f"old-{i}", T0 + 10, T0) is False
    assert cache.seen("new", T0 + 1000, T0 + 11) is False  # the 5th record prunes what expired
    if "postgresql" in request.node.name:
        with psycopg.connect(request.getfixturevalue("pg_url")) as conn:
            keys = [r[0] for r in conn.execute("SELECT key FROM replay_seen")]
    else:
        import sqlite3

        keys = [r[0] for r in sqlite3.connect(tmp_path / "state.db").execute("SELECT key FROM replay_seen")]
    assert keys == ["new"]


def test_database_down_fails_fast_and_records_nothing(stoppable_postgres: PostgresServer) -> None:
    server = stoppable_postgres
    db = PgDb(server.create_schema(), connect_wait_s=1.0)
    cache = SharedReplayCache(db, "slack")
    server.stop()
    with pytest.raises(StateUnavailable):
        cache.seen("v0=sig", T0 + 300, T0)
    started = time.monotonic()
    with pytest.raises(StateUnavailable):  # within DOWN_PAUSE_S: at once, no wait for a connection
        cache.seen("v0=sig", T0 + 300, T0)
    assert time.monotonic() - started < 0.2
    server.start()
    deadline = time.monotonic() + replay_mod.DOWN_PAUSE_S + RECONNECT_WINDOW_S + 5
    while True:
        try:
            # the platform's retry of the refused request is accepted: it was not recorded while down
            assert cache.seen("v0=sig", T0 + 300, T0 + 1) is False
            break
        except StateUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    db.close()
