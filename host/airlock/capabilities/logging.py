"""The ``log`` host function: a per-callback buffer flushed to the host log afterwards, within a per-channel
budget.

Limits:
- per callback (from the channel world's contract): 1000 entries, 4 KB (4096 UTF-8 bytes) per entry; a longer
  entry is truncated, entries past the cap are counted and reported in one line at flush;
- per channel (``LogBudget``, issue 13 defect 5: 20 webhooks wrote 83 MB of host log in 2.9 s): at most
  ``HostConfig.log_bytes_per_minute`` bytes of guest log text (UTF-8 bytes of the messages; default
  ``DEFAULT_LOG_BYTES_PER_MINUTE`` = 256 KiB) per window of ``LOG_BUDGET_WINDOW_S`` = 60 s. A window opens at
  the first flush after the previous one closed; lines past the budget are counted, and the first flush
  after the window closed writes one warning, ``[channel] N guest log lines (M bytes) dropped in the last
  minute ...``, so a flooding channel costs at most the budget plus one line a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..runtime.values import LOG_LEVELS, LogLevel

MAX_ENTRIES = 1000
MAX_ENTRY_BYTES = 4096
DEFAULT_LOG_BYTES_PER_MINUTE = 256 * 1024
LOG_BUDGET_WINDOW_S = 60.0

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


class LogBudget:
    """One channel's guest-log allowance across callbacks (module docstring). Thread-safe.

    Args:
        channel: the channel's name, for the "dropped" line.
        bytes_per_minute: bytes of log text admitted per window (> 0).
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, channel: str, bytes_per_minute: int = DEFAULT_LOG_BYTES_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if bytes_per_minute <= 0:
            raise ValueError("bytes_per_minute must be positive")
        self.channel = channel
        self.bytes_per_minute = bytes_per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._used = 0
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self.dropped_total = 0
        """Lines dropped by the budget since the channel was loaded (for status reports and tests)."""

    def admit(self, sizes: list[int]) -> tuple[list[bool], tuple[int, int] | None]:
        """Decide, for lines of ``sizes`` bytes in order, which fit the budget. Returns the decisions and, if a
        window with drops just closed, its ``(lines, bytes)`` dropped (to be reported once)."""
        with self._lock:
            now = self.clock()
            closed: tuple[int, int] | None = None
            if self._window_start is None or now - self._window_start >= LOG_BUDGET_WINDOW_S:
                if self._dropped_lines:
                    closed = (self._dropped_lines, self._dropped_bytes)
                self._window_start, self._used, self._dropped_lines, self._dropped_bytes = now, 0, 0, 0
            decisions: list[bool] = []
            for size in sizes:
                fits = self._used + size <= self.bytes_per_minute
                if fits:
                    self._used += size
                else:
                    self._dropped_lines += 1
                    self._dropped_bytes += size
                    self.dropped_total += 1
                decisions.append(fits)
            return decisions, closed

    def report(self, dropped: tuple[int, int]) -> None:
        """Write the one line a closed window with drops gets."""
        guest_log.warning("[%s] %d guest log lines (%d bytes) dropped in the last minute: over the log budget "
                          "of %d bytes per minute", self.channel, dropped[0], dropped[1], self.bytes_per_minute)


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

    def flush(self, channel: str, budget: LogBudget | None = None) -> None:
        """Write the entries to the ``airlock.guest`` logger as ``[channel] message``, those that fit
        ``budget`` only (all of them without one), then the per-callback "entries dropped" line (which counts
        against the budget too: a guest hitting the entry cap every callback would flood with it)."""
        lines = [(_PY_LEVELS[level], message) for level, message in self.entries]
        if self.dropped:
            lines.append((logging.WARNING, f"{self.dropped} log entries dropped (limit {MAX_ENTRIES} per callback)"))
        if budget is None:
            decisions, closed = [True] * len(lines), None
        else:
            decisions, closed = budget.admit([len(m.encode("utf-8", "replace")) for _, m in lines])
        if closed is not None and budget is not None:
            budget.report(closed)
        for (level, message), admitted in zip(lines, decisions, strict=True):
            if admitted:
                guest_log.log(level, "[%s] %s", channel, message)
