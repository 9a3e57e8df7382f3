"""The runtime file ``airlock serve`` keeps in its home, ``HOME/run/gateway.json``, for ``airlock status``.

While the gateway runs the file says where it listens and who it is (pid, URL, start time, versions) and
holds each channel's last callback errors (time, callback, trap class, message; at most
:data:`MAX_LAST_ERRORS` per channel, newest last). The errors are taken from the ``airlock.channel`` log
records ``Channel`` writes for every failed callback (:class:`ErrorRecorder`); they are the same text the
host log already has. The file is written atomically (temporary file + rename) with mode 0600, at most once
per :data:`FLUSH_INTERVAL_S`, and removed at stop if it still names this process. A file naming a pid that
is not running is stale (the gateway was killed): ``status`` says so.

Shape::

    {"pid": 1234, "url": "http://127.0.0.1:8080", "listen_host": "127.0.0.1", "listen_port": 8080,
     "started_at": 1700000000.0, "home": "/var/lib/airlock", "versions": {"airlock": "0.1.0", ...},
     "admin_url": "http://127.0.0.1:8788" | null, "agent_api_url": "http://127.0.0.1:8789" | null,
     "last_errors": {"telegram": [{"at": 1700000100.5, "callback": "on-poll", "class": "timeout",
                                  "message": "..."}]}}
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import AirlockError
from .report import trap_class

__all__ = ["FLUSH_INTERVAL_S", "MAX_LAST_ERRORS", "ErrorRecorder", "RunFile", "pid_running", "read_runfile",
           "runfile_path", "started_info"]

#: Errors kept per channel in the runtime file (the newest).
MAX_LAST_ERRORS = 5
#: The runtime file is rewritten at most this often (seconds) while errors arrive.
FLUSH_INTERVAL_S = 1.0
#: Longest error message kept, in characters.
MAX_ERROR_CHARS = 500


def runfile_path(home: Path) -> Path:
    """``HOME/run/gateway.json``."""
    return home / "run" / "gateway.json"


def pid_running(pid: int) -> bool:
    """Whether a process with this pid exists (a pid owned by another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runfile(home: Path) -> dict[str, Any] | None:
    """The runtime file's document, or ``None`` when there is none or it is unreadable or malformed."""
    try:
        doc = json.loads(runfile_path(home).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int) or not isinstance(doc.get("url"), str):
        return None
    return doc


class ErrorRecorder(logging.Handler):
    """Keeps the last callback errors per channel from ``Channel``'s failure log records. Thread-safe.

    A failure record carries ``(channel, callback, error)`` as its arguments (``channels.channel``:
    ``"[%s] %s failed: %s"``); any other record is ignored.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self._errors: dict[str, deque[dict[str, Any]]] = {}
        self._guard = threading.Lock()
        self.changed = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], AirlockError)):
            return
        channel, callback, error = str(args[0]), str(args[1]), args[2]
        entry = {"at": record.created, "callback": callback, "class": trap_class(error),
                 "message": " ".join(str(error).split())[:MAX_ERROR_CHARS]}
        with self._guard:
            self._errors.setdefault(channel, deque(maxlen=MAX_LAST_ERRORS)).append(entry)
        self.changed.set()

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self._guard:
            return {name: list(entries) for name, entries in self._errors.items()}


class RunFile:
    """Writes and removes one gateway's runtime file (see the module docstring)."""

    def __init__(self, home: Path, info: dict[str, Any], recorder: ErrorRecorder) -> None:
        self.path = runfile_path(home)
        self.info = {"pid": os.getpid(), **info}
        self.recorder = recorder

    def write(self) -> None:
        """Write the file now (atomically, mode 0600). An OSError is logged, never raised: status is a
        convenience, the gateway keeps running without it."""
        self.recorder.changed.clear()
        doc = {**self.info, "last_errors": self.recorder.snapshot()}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".gateway.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(doc, f, indent=2)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            logging.getLogger("airlock.cli").warning("cannot write %s: %s", self.path, exc.strerror or exc)

    def flush_if_changed(self) -> None:
        if self.recorder.changed.is_set():
            self.write()

    def remove(self) -> None:
        """Remove the file if it still names this process (another gateway may have replaced it)."""
        current = read_runfile(self.path.parent.parent)
        if current is not None and current.get("pid") == self.info["pid"]:
            self.path.unlink(missing_ok=True)


def started_info(url: str, listen_host: str, listen_port: int, home: Path, versions: dict[str, Any], *,
                 admin_url: str | None = None, agent_api_url: str | None = None) -> dict[str, Any]:
    """The fixed part of the runtime file, for :class:`RunFile` (``None`` URLs: that listener is off)."""
    return {"url": url, "listen_host": listen_host, "listen_port": listen_port, "started_at": time.time(),
            "home": str(home), "versions": versions, "admin_url": admin_url, "agent_api_url": agent_api_url}
