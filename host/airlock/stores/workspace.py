"""Durable workspace: the part of a channel's workspace that survives restarts.

A channel's ``durable_workspace_paths`` (from its capabilities file) are persisted here as
``(channel, path) -> value`` rows in SQLite. The runtime loads them at start and saves the changes of a
callback in one transaction, so a crash never leaves half of a callback's writes on disk.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ._sqlite import SqliteDb

__all__ = ["DurableWorkspaceStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspace (
    channel    TEXT NOT NULL,
    path       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (channel, path)
) WITHOUT ROWID;
"""


class DurableWorkspaceStore:
    """Per-channel ``path -> text`` storage in SQLite. Thread-safe.

    Sizes are not limited here; the runtime enforces the workspace quotas before saving.

    Args:
        db_path: SQLite file (created with its directory if missing).

    Raises (any method):
        sqlite3.Error: the database cannot be opened or written (a host problem).
    """

    def __init__(self, db_path: Path) -> None:
        self._db = SqliteDb(db_path, _SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> DurableWorkspaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, channel: str) -> dict[str, str]:
        """All stored ``path -> value`` items of ``channel`` (empty dict if none)."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT path, value FROM workspace WHERE channel = ? ORDER BY path", (channel,)
            ).fetchall()
        return {str(p): str(v) for p, v in rows}

    def save(self, channel: str, items: Mapping[str, str], deleted: Iterable[str] = ()) -> None:
        """Apply one batch of changes atomically: delete ``deleted`` paths, then upsert ``items``.

        A path both deleted and in ``items`` ends up with its new value. Either every change is stored
        or none is.

        Raises:
            TypeError: a path or value is not a ``str`` (checked before anything is written).
            sqlite3.Error: the write failed; nothing was changed.
        """
        to_delete = list(deleted)
        to_upsert = list(items.items())
        for p in to_delete:
            if not isinstance(p, str):
                raise TypeError(f"workspace path must be str, not {type(p).__name__}")
        for p, v in to_upsert:
            if not isinstance(p, str) or not isinstance(v, str):
                raise TypeError("workspace paths and values must be str")
        if not to_delete and not to_upsert:
            return
        now = time.time()
        with self._db.transaction() as conn:
            conn.executemany(
                "DELETE FROM workspace WHERE channel = ? AND path = ?", [(channel, p) for p in to_delete]
            )
            conn.executemany(
                "INSERT INTO workspace (channel, path, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (channel, path) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                [(channel, p, v, now) for p, v in to_upsert],
            )
