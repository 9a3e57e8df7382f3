"""Two stores of one process on one SQLite file (the message log and the leases on ``state.db``) must not break
what other processes see. Opening a store used to open and close the file once more (to set its mode): closing any
descriptor of a file drops every POSIX lock the process holds on it, so the log's connection lost its WAL lock, a
reader in another process took itself for the last user, checkpointed and removed the WAL, and the log's later
commits went to a removed file that no other process could read (until the gateway stopped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from airlock.messages.sqlite import SqliteMessageLog
from airlock.state.leases import SqliteLeases

T0 = 1_800_000_000.0
READ = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute(\"SELECT value FROM workspace WHERE path = 'cursor'\").fetchone()[0]); c.close()")


def read_elsewhere(db: Path) -> str:
    """The cursor as another process sees it (it opens, reads and closes: the last user would checkpoint)."""
    return subprocess.run([sys.executable, "-c", READ, str(db)], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


def test_a_second_store_on_the_file_keeps_commits_visible_to_other_processes(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    log = SqliteMessageLog(db)
    log.commit("tg", {"cursor": "1"}, [], T0)
    leases = SqliteLeases(db)  # the second store on the same file, in this process
    assert read_elsewhere(db) == "1"
    log.commit("tg", {"cursor": "2"}, [], T0)
    assert read_elsewhere(db) == "2"
    assert os.path.exists(f"{db}-wal")
    leases.close()
    log.close()


def test_modes_are_still_made_private(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    SqliteMessageLog(db).close()
    assert (db.stat().st_mode & 0o777) == 0o600
