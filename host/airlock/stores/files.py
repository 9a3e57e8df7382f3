"""Private files and directories: everything Airlock creates under its home is 0600 (files) / 0700 (dirs).

The home holds secrets (``secrets.json``, ``master.key``), pairing approvals and channel state (SQLite
databases and their ``-wal`` / ``-shm`` companions), installed channels and compiled code; none of it is for
other local users (issue 13, defect 10: ``pairing.db`` and ``workspace.db`` were created 0644 under the usual
umask 022). The modes are set explicitly after creation, so they hold under any umask (a umask can only remove
bits from a mode given to ``open``/``mkdir``; these calls never depend on it granting less).

SQLite creates a database's ``-wal`` and ``-shm`` files with the database file's own mode (its unix VFS copies
it: ``findCreateFileMode`` in ``os_unix.c``), so creating the database file 0600 first covers them; files left
over from an older, looser install are tightened when the store opens.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "private_dir", "private_file", "tighten"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create directory ``path`` and any missing parents with mode 0700; return ``path``.

    Directories that already exist are left as they are (the operator may have chosen their mode).

    Raises:
        OSError: a component cannot be created (permissions, a file in the way).
    """
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # created meanwhile by another process: theirs to set
        os.chmod(directory, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> None:
    """Create ``path`` empty if it does not exist, and make its mode exactly 0600 (the owner must be able to
    read and write it; no one else may do either).

    Raises:
        OSError: the file cannot be created or opened.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    except FileExistsError:
        # An existing file is never opened here: closing any descriptor of a file drops every POSIX lock this
        # process holds on it (fcntl semantics), which silently broke the WAL locks of a SQLite connection of this
        # process on that database (tests/stores/test_sqlite_shared_file.py).
        if stat.S_IMODE(os.stat(path).st_mode) != PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
        return
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken bits away from the mode asked for
    finally:
        os.close(fd)


def tighten(path: Path) -> None:
    """Set an existing file to 0600 if group or others have any access; a missing file is fine."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path, PRIVATE_FILE_MODE)
