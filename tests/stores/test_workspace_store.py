"""Tests for airlock.stores.workspace.DurableWorkspaceStore."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from airlock.stores import DurableWorkspaceStore


def test_save_load_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "workspace.db"
    with DurableWorkspaceStore(db) as store:
        assert store.load("slack") == {}
        store.save("slack", {"state/active_threads": '["t1"]', "state/x": "1"})
        store.save("discord", {"state/x": "other"})
        store.save("slack", {"state/x": "2"}, deleted=["state/active_threads"])
        assert store.load("slack") == {"state/x": "2"}
    with DurableWorkspaceStore(db) as reopened:
        assert reopened.load("slack") == {"state/x": "2"}
        assert reopened.load("discord") == {"state/x": "other"}


def test_item_wins_over_delete_and_empty_save(tmp_path: Path) -> None:
    store = DurableWorkspaceStore(tmp_path / "w.db")
    store.save("c", {"a": "1"})
    store.save("c", {"a": "2"}, deleted=["a", "missing"])
    assert store.load("c") == {"a": "2"}
    store.save("c", {})
    assert store.load("c") == {"a": "2"}


def test_save_is_atomic(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = DurableWorkspaceStore(db)
    store.save("c", {"keep": "old", "gone": "x"})
    # Make the database refuse one of the rows: the whole batch must roll back.
    other = sqlite3.connect(db)
    other.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON workspace WHEN NEW.path = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    other.commit()
    other.close()
    with pytest.raises(sqlite3.Error):
        store.save("c", {"keep": "new", "added": "y", "boom": "z"}, deleted=["gone"])
    assert store.load("c") == {"keep": "old", "gone": "x"}
    store.save("c", {"keep": "new"})  # the store is still usable
    assert store.load("c") == {"keep": "new", "gone": "x"}


def test_type_errors_write_nothing(tmp_path: Path) -> None:
    store = DurableWorkspaceStore(tmp_path / "w.db")
    with pytest.raises(TypeError):
        store.save("c", cast(Any, {"a": "1", "b": 2}))
    assert store.load("c") == {}


def test_threads(tmp_path: Path) -> None:
    store = DurableWorkspaceStore(tmp_path / "w.db")

    def worker(i: int) -> None:
        for j in range(20):
            store.save(f"ch{i}", {f"k{j}": str(j)})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert store.load(f"ch{i}") == {f"k{j}": str(j) for j in range(20)}
