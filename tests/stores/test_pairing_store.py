"""Tests for airlock.stores.pairing.PairingStore, on SQLite and on a real PostgreSQL (the state database of
``state = "postgresql://..."``)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import PairingError
from airlock.state.postgres import PgDb
from airlock.stores import PairingRequest, PairingStore
from airlock.stores._sql import PgQmarkDb
from airlock.stores.pairing import PAIRING_CODE_ALPHABET, PAIRING_TTL_SECS


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


OpenStore = Callable[..., PairingStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(**kwargs)``: a PairingStore on the parametrised backend, (re)opening the same database."""
    pools: list[PgDb] = []

    def make(**kwargs: Any) -> PairingStore:
        if request.param == "sqlite":
            return PairingStore(tmp_path / "pairing.db", **kwargs)
        pools.append(PgDb(request.getfixturevalue("pg_url")))
        return PairingStore(PgQmarkDb(pools[-1]), **kwargs)

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def store(open_store: OpenStore, clock: FakeClock) -> PairingStore:
    return open_store(clock=clock)


def test_code_alphabet_and_length(store: PairingStore) -> None:
    assert len(PAIRING_CODE_ALPHABET) == 32
    assert not set("01IO") & set(PAIRING_CODE_ALPHABET)
    codes = {store.upsert_request("telegram", f"user{i}", "{}")[0] for i in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert len(code) == 8
        assert set(code) <= set(PAIRING_CODE_ALPHABET)


def test_upsert_is_idempotent(store: PairingStore, clock: FakeClock) -> None:
    code, created = store.upsert_request("telegram", "42", '{"name": "ann"}')
    assert created is True
    clock.now += 60
    again, created2 = store.upsert_request("telegram", "42", '{"name": "changed"}')
    assert (again, created2) == (code, False)
    # different channel: separate request
    other, created3 = store.upsert_request("slack", "42", "{}")
    assert created3 is True
    [req] = store.pending("telegram")
    assert req == PairingRequest("telegram", "42", code, '{"name": "ann"}', req.created_at, req.expires_at)
    assert req.expires_at - req.created_at == PAIRING_TTL_SECS
    assert [r.code for r in store.pending("slack")] == [other]


def test_expiry_with_injected_clock(store: PairingStore, clock: FakeClock) -> None:
    code, _ = store.upsert_request("telegram", "42", "{}")
    clock.now += PAIRING_TTL_SECS - 1
    assert [r.code for r in store.pending("telegram")] == [code]
    clock.now += 1
    assert store.pending("telegram") == []
    with pytest.raises(PairingError):
        store.approve("telegram", code)
    new_code, created = store.upsert_request("telegram", "42", "{}")
    assert created is True
    assert store.pending("telegram")[0].code == new_code


def test_expired_request_replaced_on_upsert(store: PairingStore, clock: FakeClock) -> None:
    store.upsert_request("telegram", "42", "{}")
    clock.now += PAIRING_TTL_SECS + 5
    code, created = store.upsert_request("telegram", "42", '{"v": 2}')
    assert created is True
    [req] = store.pending("telegram")
    assert req.code == code and req.meta_json == '{"v": 2}' and req.created_at == clock.now


def test_approve_then_resolve_and_allow_from(store: PairingStore) -> None:
    code, _ = store.upsert_request("telegram", "42", '{"name": "ann"}')
    assert store.resolve_identity("telegram", "42") is None
    req = store.approve("telegram", f" {code.lower()} ")
    assert req.external_id == "42" and req.code == code and req.meta_json == '{"name": "ann"}'
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.code = "X"  # type: ignore[misc]
    assert store.resolve_identity("telegram", "42") == "42"
    assert store.resolve_identity("slack", "42") is None
    assert store.allow_from("telegram") == ["42"]
    assert store.pending("telegram") == []
    with pytest.raises(PairingError):
        store.approve("telegram", code)  # consumed


def test_approve_with_owner_id_and_wrong_channel(store: PairingStore) -> None:
    code, _ = store.upsert_request("telegram", "42", "{}")
    with pytest.raises(PairingError, match="unknown or expired"):
        store.approve("slack", code)
    with pytest.raises(PairingError):
        store.approve("telegram", "AAAAAAAA")
    store.approve("telegram", code, owner_id="owner-1")
    assert store.resolve_identity("telegram", "42") == "owner-1"


def test_revoke(store: PairingStore) -> None:
    store.approve("telegram", store.upsert_request("telegram", "1", "{}")[0])
    store.approve("telegram", store.upsert_request("telegram", "2", "{}")[0])
    assert store.allow_from("telegram") == ["1", "2"]
    assert store.revoke("telegram", "1") is True
    assert store.revoke("telegram", "1") is False
    assert store.allow_from("telegram") == ["2"]
    assert store.resolve_identity("telegram", "1") is None
    store.upsert_request("telegram", "3", "{}")
    assert store.revoke("telegram", "3") is True
    assert store.pending("telegram") == []


def test_pending_cap_drops_oldest(open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(clock=clock, max_pending_per_channel=3)
    for i in range(5):
        clock.now += 1
        store.upsert_request("telegram", f"u{i}", "{}")
    assert [r.external_id for r in store.pending("telegram")] == ["u2", "u3", "u4"]


def test_survives_reopen(open_store: OpenStore, clock: FakeClock) -> None:
    with open_store(clock=clock) as s:
        code, _ = s.upsert_request("telegram", "42", "{}")
        s.approve("telegram", s.upsert_request("telegram", "7", "{}")[0])
    with open_store(clock=clock) as s:
        assert s.upsert_request("telegram", "42", "{}") == (code, False)
        assert s.allow_from("telegram") == ["7"]


def test_threads(store: PairingStore) -> None:
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def worker() -> None:
        r = store.upsert_request("telegram", "same", "{}")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({code for code, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_nodes_racing_for_one_sender_get_one_code(open_store: OpenStore, clock: FakeClock) -> None:
    """Several processes (a store each: its own connection) ask for the same sender at the same instant, 20 times:
    one request, one code each time (PostgreSQL needs the per-channel lock for it; SQLite serialises writers)."""
    stores = [open_store(clock=clock) for _ in range(4)]
    for round_ in range(20):
        start = threading.Barrier(len(stores))
        results: list[tuple[str, bool] | BaseException] = []

        def worker(s: PairingStore, sender: str, gate: threading.Barrier,
                   out: list[tuple[str, bool] | BaseException]) -> None:
            gate.wait()
            try:
                out.append(s.upsert_request("telegram", sender, "{}"))
            except BaseException as exc:  # reported by the assertion below
                out.append(exc)

        threads = [threading.Thread(target=worker, args=(s, f"sender{round_}", start, results)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, tuple) for r in results), results
        assert len({r[0] for r in results if isinstance(r, tuple)}) == 1
        assert sum(r[1] for r in results if isinstance(r, tuple)) == 1
