"""When the supervisor restarts a worker that died: exponential backoff, and crash-loop detection.

A worker that exits while the gateway is not stopping is restarted after ``backoff_s``: ``BACKOFF_BASE_S`` for the
first death in a quiet period, doubled for each further death inside ``CRASH_WINDOW_S``, capped at
``BACKOFF_MAX_S``. Once a worker died ``CRASH_LOOP_DEATHS`` times within ``CRASH_WINDOW_S`` seconds it is in a
crash loop: the supervisor stops restarting it and reports it (``airlock status``, ``/health``, metrics), since
restarting a worker that fails at start-up (a broken channel, a full disk) only burns CPU and floods the log.
The rule is per worker slot, so one bad slot does not stop the others.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["BACKOFF_BASE_S", "BACKOFF_MAX_S", "CRASH_LOOP_DEATHS", "CRASH_WINDOW_S", "STOP_GRACE_S",
           "RestartPolicy"]

BACKOFF_BASE_S = 0.5
"""Seconds before the first restart of a worker that died."""
BACKOFF_MAX_S = 30.0
"""Longest wait between restarts."""
CRASH_LOOP_DEATHS = 5
"""Deaths within :data:`CRASH_WINDOW_S` that make a crash loop (K)."""
CRASH_WINDOW_S = 60.0
"""The crash-loop window (T seconds)."""
STOP_GRACE_S = 30.0
"""Seconds a stopping worker gets to finish in-flight callbacks and stop its channels before it is killed."""


@dataclass
class RestartPolicy:
    """Deaths of one worker slot and what to do about the next one. Times are monotonic seconds."""

    base_s: float = BACKOFF_BASE_S
    max_s: float = BACKOFF_MAX_S
    deaths_for_loop: int = CRASH_LOOP_DEATHS
    window_s: float = CRASH_WINDOW_S
    deaths: deque[float] = field(default_factory=deque)

    def died(self, now: float) -> float | None:
        """Record a death at ``now``; return the seconds to wait before restarting, or None: a crash loop
        (``deaths_for_loop`` deaths within ``window_s``), do not restart."""
        self.deaths.append(now)
        while self.deaths and self.deaths[0] <= now - self.window_s:
            self.deaths.popleft()
        recent = len(self.deaths)
        if recent >= self.deaths_for_loop:
            return None
        return float(min(self.max_s, self.base_s * 2 ** (recent - 1)))
