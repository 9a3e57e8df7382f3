"""``InlineGuard``: decides, per channel, whether a webhook is first attempted inline on the event loop.

Why inline: handing a callback to a worker thread costs more than a small guest's whole sandboxed run on two
cores (executor wake-up plus GIL hand-offs; ``make bench``'s e2e diagnostics). An inline attempt blocks the loop
for at most one inline deadline (``channel.INLINE_DEADLINE_TICKS``: 10-20 ms) and is dropped, without trace,
when the guest needs a worker (``channels.channel``). An attempt that completes but took longer than
``SLOW_S`` counts against inline too: for a long guest the hand-off is cheap next to its run, and on a worker
the wasm runs outside the GIL, in parallel with the loop's HTTP work (measured: the Python Telegram guest, ~3 ms
a callback, serves fewer requests/s inline). "Took" is the event loop thread's CPU time, not wall time: on a
busy machine (``--workers 2`` and the load generator on two cores) a 0.1 ms guest was often descheduled
mid-call, so by wall time the first attempts looked slow, the guard switched inline off for 30 s and every
webhook paid the hand-off (measured: off within the first 15 attempts of each worker in ``bench/workers.py``).
For the same reason an attempt that ran into the inline deadline (wall time, counted by the epoch ticker) but
used less than ``PREEMPTED_CPU_S`` of CPU was descheduled, not slow: it is an abort like any other, not a
deadline hit. A channel's first ``WARMUP_ATTEMPTS`` completed attempts are never slow: the first runs of a freshly
loaded component touch its compiled code for the first time (page faults, lazy set-up) and took 1-3 ms of CPU,
so a worker that started under load switched inline off before its guest was warm (measured: 6 of the first 8).
The guard keeps all that rare: over the channel's last ``WINDOW`` attempts, more than ``MAX_ABORT_RATIO``
abandoned or slow (once at least ``MIN_SAMPLES`` were made), or
``MAX_DEADLINE_HITS`` attempts that ran into the deadline, switch inline off for the channel for
``COOLDOWN_S`` seconds, doubling on each consecutive trip up to ``MAX_COOLDOWN_S``. After a cooldown the window
starts empty; a window that fills up without a trip resets the cooldown to ``COOLDOWN_S``.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from .channel import INLINE_DEADLINE as DEADLINE

WINDOW = 32
"""Recent inline attempts the guard looks at."""
MIN_SAMPLES = 8
"""Attempts needed before the abort ratio can switch inline off."""
MAX_ABORT_RATIO = 0.5
"""More than this share of abandoned attempts in the window switches inline off."""
SLOW_S = 0.001
"""An inline attempt that used more CPU than this (seconds of the thread's CPU time, guest run plus its host
work) counts as slow."""
SLOW = "slow"
"""The window's mark of a completed but slow attempt."""
WARMUP_ATTEMPTS = 16
"""A channel's first completed attempts, which are never judged slow (module docstring)."""
PREEMPTED_CPU_S = 0.005
"""A deadline abort whose attempt used less CPU than this (seconds: half the shortest inline deadline, one 10 ms
epoch tick) spent most of its wall time descheduled: marked ``PREEMPTED``, not as a deadline hit."""
PREEMPTED = "preempted"
"""The window's mark of a deadline abort that was descheduled (``PREEMPTED_CPU_S``)."""
MAX_DEADLINE_HITS = 2
"""This many attempts in the window that ran into the inline deadline switch inline off (each blocked the
event loop for a whole deadline, the costly kind of abort)."""
COOLDOWN_S = 30.0
"""How long inline stays off after a first trip (seconds)."""
MAX_COOLDOWN_S = 600.0
"""Cap of the doubling cooldown (seconds)."""


class InlineGuard:
    """One channel's inline switch and counters. Used from the event loop thread only.

    Args:
        enabled: the host's switch (``HostConfig.inline_callbacks``); False: never inline.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, enabled: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self._clock = clock
        self._window: deque[str | None] = deque(maxlen=WINDOW)
        self._off_until = 0.0
        self._cooldown = COOLDOWN_S
        self.hits = 0
        """Inline attempts that completed (the callback's real run, success or guest failure)."""
        self.aborts: Counter[str] = Counter()
        """Abandoned attempts by reason (host function name or ``channel.INLINE_DEADLINE``)."""
        self.slow = 0
        """Completed inline attempts that took longer than ``SLOW_S``."""
        self.trips = 0
        """Times the guard switched inline off."""

    def should_try(self) -> bool:
        """Whether the next webhook of this channel is attempted inline."""
        if not self.enabled:
            return False
        if self._off_until and self._clock() < self._off_until:
            return False
        self._off_until = 0.0
        return True

    def record(self, abandoned: str | None, cpu_s: float | None = None) -> None:
        """Count one inline attempt: ``abandoned`` is its abort reason, or None if it completed inline
        (``cpu_s``: the CPU seconds it used, ``CallOutcome.cpu_s``, module docstring; None: not measured, so
        neither slow nor descheduled)."""
        mark = abandoned
        if abandoned is None:
            self.hits += 1
            if cpu_s is not None and cpu_s > SLOW_S and self.hits > WARMUP_ATTEMPTS:  # module docstring
                self.slow += 1
                mark = SLOW
        else:
            self.aborts[abandoned] += 1
            if abandoned == DEADLINE and cpu_s is not None and cpu_s < PREEMPTED_CPU_S:
                mark = PREEMPTED
        self._window.append(mark)
        if mark is not None and self._too_many_aborts():
            self._trip()
        elif len(self._window) == WINDOW and mark is None:
            self._cooldown = COOLDOWN_S

    def _too_many_aborts(self) -> bool:
        deadline_hits = sum(1 for r in self._window if r == DEADLINE)
        if deadline_hits >= MAX_DEADLINE_HITS:
            return True
        aborted = sum(1 for r in self._window if r is not None)
        return len(self._window) >= MIN_SAMPLES and aborted > MAX_ABORT_RATIO * len(self._window)

    def _trip(self) -> None:
        self.trips += 1
        self._off_until = self._clock() + self._cooldown
        self._cooldown = min(self._cooldown * 2, MAX_COOLDOWN_S)
        self._window.clear()

    @property
    def off_for_s(self) -> float:
        """Seconds until inline is tried again (0 when it is on)."""
        return max(0.0, self._off_until - self._clock()) if self._off_until else 0.0

    def as_dict(self) -> dict[str, Any]:
        """For ``/health``: switch, counters, and how long inline stays off."""
        return {"enabled": self.enabled, "hits": self.hits, "slow": self.slow, "aborts": dict(self.aborts),
                "trips": self.trips, "off_for_s": round(self.off_for_s, 1)}
