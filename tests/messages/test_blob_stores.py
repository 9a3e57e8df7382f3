"""The attachment blob stores (``messages.blobs``): the files of the home and the rows of a real PostgreSQL (the
cluster's), one contract: content addressed, idempotent, and collected only when unreferenced and old; on
PostgreSQL two pools (two nodes) read each other's blobs, and a blob above ``MAX_BLOB_BYTES`` is refused."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.messages.blobs import Blobs, BlobStore
from airlock.messages.blobs_pg import MAX_BLOB_BYTES, PostgresBlobStore
from airlock.state.postgres import PgDb

OpenBlobs = Callable[[], Blobs]
HOUR = 3600.0


@pytest.fixture(params=["files", "postgresql"])
def open_blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenBlobs]:
    """``open_blobs()``: one more handle on the same store (on PostgreSQL a pool of its own: another node)."""
    pools: list[PgDb] = []

    def make() -> Blobs:
        if request.param == "files":
            return BlobStore(tmp_path / "blobs")
        pools.append(PgDb(request.getfixturevalue("pg_url"), max_size=2))
        return PostgresBlobStore(pools[-1])

    yield make
    for pool in pools:
        pool.close()


def test_content_addressed_and_shared(open_blobs: OpenBlobs) -> None:
    a, b = open_blobs(), open_blobs()
    data = bytes(range(256)) * 10  # every byte value: bytea keeps them all
    digest = a.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert a.put(data) == digest  # idempotent
    assert b.get(digest) == data and b.size(digest) == len(data)
    assert b.put(b"") == hashlib.sha256(b"").hexdigest() and a.get(hashlib.sha256(b"").hexdigest()) == b""
    for name in ("f" * 64, "F" * 64, "../" + "a" * 61, "abc", ""):
        assert b.get(name) is None and b.size(name) is None


def test_gc_spares_referenced_and_young_blobs(open_blobs: OpenBlobs) -> None:
    store = open_blobs()
    kept, young, old = store.put(b"referenced"), store.put(b"young"), store.put(b"old")
    now = time.time()
    # nothing is older than an hour yet: nothing goes
    assert store.gc({kept}, older_than_s=HOUR, now=now) == 0
    # an hour on: the unreferenced ones go, the referenced one stays
    assert store.gc({kept}, older_than_s=HOUR, now=now + HOUR + 1) == 2
    assert store.get(kept) == b"referenced" and store.get(young) is None and store.get(old) is None
    # a collected blob stored again is back (an attachment received once more)
    assert store.put(b"old") == old and store.get(old) == b"old"


def test_postgresql_refuses_a_blob_over_the_limit(pg_url: str) -> None:
    db = PgDb(pg_url, max_size=1)
    try:
        store = PostgresBlobStore(db)
        at_limit = b"x" * MAX_BLOB_BYTES
        assert store.size(store.put(at_limit)) == MAX_BLOB_BYTES
        with pytest.raises(ValueError, match=f"at most {MAX_BLOB_BYTES} bytes"):
            store.put(at_limit + b"x")
        assert store.get(hashlib.sha256(at_limit + b"x").hexdigest()) is None
    finally:
        db.close()
