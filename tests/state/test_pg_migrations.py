"""PostgreSQL schema migrations (``state.migrations``) on a real server: an old schema is upgraded in place with its
rows kept, nodes starting together apply each step once, a failing step leaves the schema as it was, and a
database newer than this Airlock is refused."""

from __future__ import annotations

import threading

import psycopg
import pytest

from airlock.errors import ConfigError
from airlock.messages.model import NewEntry, Route
from airlock.messages.postgres import PostgresMessageLog
from airlock.state.leases import PostgresLeases
from airlock.state.migrations import Migration, current_version, migrate
from airlock.state.pg_schema import MIGRATIONS
from airlock.state.postgres import PgDb

T0 = 1_800_000_000.0


def versions(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(v), str(n)) for v, n in conn.execute("SELECT version, name FROM airlock_schema ORDER BY 1")]


def test_an_old_schema_is_upgraded_with_its_rows(pg_url: str) -> None:
    old = PgDb(pg_url, schema_target=1)  # a database made by an Airlock that knew only step 1
    log = PostgresMessageLog(old)
    log.commit("tg", {"state/offset": "41"}, [NewEntry(instance="tg", user_id="u", user_name=None, thread_id=None,
                                                       content="kept", metadata_json="{}",
                                                       route=Route("main", "s", "c"))], T0)
    old.close()
    assert [v for v, _ in versions(pg_url)] == [1]
    db = PgDb(pg_url)  # this Airlock: applies the missing steps
    try:
        assert [v for v, _ in versions(pg_url)] == list(range(1, len(MIGRATIONS) + 1))
        log = PostgresMessageLog(db)
        assert log.load_workspace("tg") == {"state/offset": "41"}
        assert [e.content for e in log.list_inbound()] == ["kept"]
        lease = PostgresLeases(db).acquire("poller:tg", "n1", 15, T0)  # step 2's table works
        assert lease is not None and lease.token == 1
    finally:
        db.close()


def test_nodes_starting_together_apply_each_step_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def node() -> None:
        start.wait()
        try:
            PgDb(pg_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [v for v, _ in versions(pg_url)] == list(range(1, len(MIGRATIONS) + 1))


def test_a_failing_step_changes_nothing(pg_url: str) -> None:
    steps = (Migration(1, "ok", "CREATE TABLE a (x int)"),
             Migration(2, "broken", "CREATE TABLE b (x int); INSERT INTO nowhere VALUES (1)"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            migrate(conn, steps)
        assert current_version(conn) == 0
        assert conn.execute("SELECT to_regclass('a'), to_regclass('b')").fetchone() == (None, None)


def test_a_newer_database_is_refused_and_steps_must_be_numbered(pg_url: str) -> None:
    PgDb(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO airlock_schema (version, name) VALUES (%s, 'from the future')",
                     (len(MIGRATIONS) + 1,))
    with pytest.raises(ConfigError, match="newer than this Airlock"):
        PgDb(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn, pytest.raises(ConfigError, match="numbered"):
        migrate(conn, (Migration(2, "gap", "SELECT 1"),))
