"""One ``airlock serve`` per home: an exclusive ``fcntl.flock`` on ``HOME/serve.lock`` for the life of the process.

Two gateways on one home would both poll the same bots (Telegram answers the second ``getUpdates`` with 409), write
the same databases and fight over the runtime file. The lock is advisory and held by an open file descriptor, so
the kernel drops it when the process ends, however it ends (``kill -9`` included): a stale lock file never blocks
a restart. The holder writes its PID into the file *after* taking the lock, so a second ``serve`` can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import ConfigError
from .files import private_dir

__all__ = ["LOCK_FILE", "HomeBusy", "HomeLock"]

#: The lock file's name in the home.
LOCK_FILE = "serve.lock"
#: Bytes of the lock file a second process reads to find the holder's PID.
_PID_BYTES = 32


class HomeBusy(ConfigError):
    """The home's lock is held by another process; ``pid`` is its PID when the lock file names one."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class HomeLock:
    """The home's serve lock. :meth:`acquire` takes it or raises; :meth:`release` (or process exit) frees it."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting and record this process's PID in the lock file.

        Raises:
            HomeBusy: another process holds it: ``another airlock serve (pid N) is using HOME``, one line.
            OSError: the home or the lock file cannot be created.
        """
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise HomeBusy(f"another airlock serve ({who}) is using {self.path.parent}; "
                           "stop it first, or give this one another --home", holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Free the lock (the file stays: removing it could race with a process that just opened it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
