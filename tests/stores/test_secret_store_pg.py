"""The secret store on a real PostgreSQL (``stores.secrets_pg``): the file store's API and encryption on rows, only
ciphertexts in the database, nodes sharing one database and one master key see each other's changes within
``REFRESH_S``, and a node with another key (or none) is refused."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from airlock.errors import SecretStoreError
from airlock.state.postgres import PgDb
from airlock.stores.secrets_pg import REFRESH_S, PostgresSecretStore


@pytest.fixture
def pools(pg_url: str) -> Iterator[list[PgDb]]:
    opened: list[PgDb] = []
    yield opened
    for db in opened:
        db.close()


def node(pg_url: str, pools: list[PgDb], key: bytes) -> PostgresSecretStore:
    pools.append(PgDb(pg_url))
    return PostgresSecretStore(pools[-1], key)


def test_roundtrip_and_only_ciphertext_in_the_database(pg_url: str, pools: list[PgDb]) -> None:
    store = node(pg_url, pools, secrets.token_bytes(32))
    store.set("bot_token", "123:very-secret-value")
    store.set("other", "x" * 40)
    assert store.get("bot_token") == "123:very-secret-value" and store.names() == ["bot_token", "other"]
    assert store.exists("other") and store.remove("other") and not store.remove("other")
    assert store.get("other") is None and store.get("never") is None
    with psycopg.connect(pg_url) as conn:
        dumped = str(conn.execute("SELECT * FROM secrets").fetchall())
        assert "very-secret-value" not in dumped and "bot_token" in dumped


def test_nodes_see_each_other_and_keep_each_others_changes(pg_url: str, pools: list[PgDb]) -> None:
    key = secrets.token_bytes(32)
    a, b = node(pg_url, pools, key), node(pg_url, pools, key)
    a.set("shared", "v1")
    a.set("doomed", "v")
    before = b.signature()
    deadline = time.monotonic() + REFRESH_S + 2
    while b.get("shared") != "v1":
        assert time.monotonic() < deadline, "node b never saw node a's secret"
        time.sleep(0.05)
    assert b.signature() != before  # the log redactor of node b re-reads the values
    assert b.remove("doomed")
    a.set("shared", "v2")  # a's cached copy still holds "doomed": its write must not bring it back
    with psycopg.connect(pg_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM secrets ORDER BY name")]
    assert names == ["shared"]


def test_a_node_with_another_key_is_refused(pg_url: str, pools: list[PgDb]) -> None:
    node(pg_url, pools, secrets.token_bytes(32)).set("x", "y")
    with pytest.raises(SecretStoreError, match="wrong master key"):
        node(pg_url, pools, secrets.token_bytes(32))


def test_without_the_cluster_key_a_new_node_is_told_to_set_it(pg_url: str, pools: list[PgDb], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRLOCK_MASTER_KEY")
    pools.append(PgDb(pg_url))
    first = PostgresSecretStore.open_on(pools[-1], tmp_path / "node1")  # no key anywhere yet: node1 makes one
    first.set("x", "y")
    assert (tmp_path / "node1" / "master.key").exists()
    with pytest.raises(SecretStoreError, match="AIRLOCK_MASTER_KEY"):
        PostgresSecretStore.open_on(pools[-1], tmp_path / "node2")
    assert not (tmp_path / "node2" / "master.key").exists()


def test_a_background_refresh_never_undoes_this_process_writes(pg_url: str, pools: list[PgDb]) -> None:
    """Each write makes the next read start a background refresh; one that fetched before a later write must not
    put the older rows back over it."""
    store = node(pg_url, pools, secrets.token_bytes(32))
    for i in range(40):
        store.set(f"name_{i}", "v")
        assert f"name_{i}" in store.names()
    time.sleep(0.2)  # let the last refreshes land
    assert len(store.names()) == 40
