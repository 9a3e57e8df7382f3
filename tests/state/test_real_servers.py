"""The session's real PostgreSQL and Redis (``tests/servers.py``): they answer, databases and schemas keep tests
apart, and Redis survives a stop/start on the same port (the Redis-restart tests rely on that; PostgreSQL's
stop/start is exercised by the database-down tests on ``stoppable_postgres``)."""

from __future__ import annotations

import psycopg
from servers import PostgresServer, RedisServer


def test_postgres_answers_and_databases_are_apart(postgres_server: PostgresServer) -> None:
    a, b = postgres_server.create_database(), postgres_server.create_database()
    assert a != b
    with psycopg.connect(a) as conn:
        conn.execute("CREATE TABLE only_in_a (x int)")
    with psycopg.connect(b) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").fetchone()
        assert row == (0,)
        assert conn.execute("SELECT current_user").fetchone() == ("airlock",)


def test_schemas_keep_tests_apart(postgres_server: PostgresServer) -> None:
    a, b = postgres_server.create_schema(), postgres_server.create_schema()
    with psycopg.connect(a) as conn:
        conn.execute("CREATE TABLE only_in_a (x int)")
    with psycopg.connect(b) as conn:
        assert conn.execute("SELECT to_regclass('only_in_a')").fetchone() == (None,)
    with psycopg.connect(a) as conn:
        assert conn.execute("SELECT to_regclass('only_in_a')").fetchone() is not None


def test_redis_answers_and_restarts(redis_server: RedisServer) -> None:
    assert redis_server.ping()
    assert redis_server.socket.exists()
    redis_server.stop()
    assert not redis_server.ping()
    redis_server.start()
    assert redis_server.ping()
