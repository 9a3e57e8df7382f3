"""The session's real PostgreSQL and Redis (``tests/servers.py``): they answer, and survive a stop/start on the same
port (the PostgreSQL-down and Redis-restart tests rely on that)."""

from __future__ import annotations

import psycopg
import pytest
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


def test_postgres_stop_and_start_on_the_same_port() -> None:
    server = PostgresServer()
    try:
        server.start()
        url = server.create_database()
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        server.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
        server.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (7,)
    finally:
        server.destroy()


def test_redis_answers_and_restarts(redis_server: RedisServer) -> None:
    assert redis_server.ping()
    assert redis_server.socket.exists()
    redis_server.stop()
    assert not redis_server.ping()
    redis_server.start()
    assert redis_server.ping()
