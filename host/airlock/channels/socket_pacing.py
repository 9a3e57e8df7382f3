"""Pacing for the host-owned websockets (``socket_runtime``): the reconnect backoff and the rolling window that
limits the frames a guest may send. Both are pure and thread-safe where they say so."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["BACKOFF_BASE_S", "BACKOFF_CAP_S", "Backoff", "RateWindow"]

BACKOFF_BASE_S = 1.0
"""First reconnect delay ceiling, seconds."""
BACKOFF_CAP_S = 64.0
"""Largest reconnect delay, seconds."""


class Backoff:
    """Full-jitter exponential backoff: attempt ``n`` (from 0) waits ``rand() * min(cap_s, base_s * 2**n)``.

    ``rand`` returns floats in [0, 1). Delays are seconds, never above ``cap_s`` (64 s by default).
    """

    def __init__(self, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S,
                 rand: Callable[[], float] = random.random) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s, self.cap_s, self.rand = base_s, cap_s, rand
        self.attempt = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 62))

    def next_delay(self) -> float:
        delay = min(self.ceiling(), max(0.0, self.rand() * self.ceiling()))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class RateWindow:
    """At most ``limit`` events per rolling ``window_s`` seconds. Thread-safe."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            now = self.clock()
            while self._times and now - self._times[0] >= self.window_s:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return False
            self._times.append(now)
            return True
