"""The ``log`` host function: a per-callback buffer flushed to the host log afterwards.

Limits (from the channel world's contract): 1000 entries per callback, 4 KB (4096 UTF-8 bytes) per
entry; a longer entry is truncated, entries past the cap are counted and reported once at flush.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..runtime.values import LOG_LEVELS, LogLevel

MAX_ENTRIES = 1000
MAX_ENTRY_BYTES = 4096

_PY_LEVELS: dict[str, int] = {
    "trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
    "warn": logging.WARNING, "error": logging.ERROR,
}

guest_log = logging.getLogger("airlock.guest")


def _truncate(message: str) -> str:
    raw = message.encode("utf-8", "replace")
    if len(raw) <= MAX_ENTRY_BYTES:
        return message
    return raw[: MAX_ENTRY_BYTES - 3].decode("utf-8", "ignore") + "..."


@dataclass
class LogBuffer:
    """Entries a guest logged during one callback."""

    entries: list[tuple[LogLevel, str]] = field(default_factory=list)
    dropped: int = 0

    def add(self, level: str, message: str) -> None:
        lvl: LogLevel = level if level in LOG_LEVELS else "info"
        if len(self.entries) >= MAX_ENTRIES:
            self.dropped += 1
            return
        self.entries.append((lvl, _truncate(message)))

    def flush(self, channel: str) -> None:
        """Write the entries to the ``airlock.guest`` logger as ``[channel] message``."""
        for level, message in self.entries:
            guest_log.log(_PY_LEVELS[level], "[%s] %s", channel, message)
        if self.dropped:
            guest_log.warning("[%s] %d log entries dropped (limit %d per callback)", channel, self.dropped,
                              MAX_ENTRIES)
