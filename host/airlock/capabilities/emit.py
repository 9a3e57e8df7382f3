"""The ``emit-message`` host function: messages for the agent, buffered until the callback succeeds.

Limits: 100 messages per callback; content at most ``max_message_size`` bytes (65536 by default, from
the capabilities file); per channel ``emit_rate_limit`` (100/minute and 5000/hour by default), counted
when messages are delivered. What is dropped is counted and logged, never silently lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..runtime.values import EmittedMessage

MAX_PER_CALLBACK = 100
MAX_ATTACHMENTS_PER_MESSAGE = 32

log = logging.getLogger("airlock.emit")


class SlidingWindowLimiter:
    """Counts events in sliding one-minute and one-hour windows. Thread-safe.

    One deque per window, so an event costs O(1) amortized (not a scan of the hour's events: with a
    5000/hour limit that scan cost up to ~0.2 ms per message, measured by ``make bench``).
    """

    def __init__(self, per_minute: int, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._clock = clock
        self._minute: deque[float] = deque()
        self._hour: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Record one event and return True, or return False if either window is full."""
        with self._lock:
            now = self._clock()
            while self._hour and now - self._hour[0] >= 3600:
                self._hour.popleft()
            while self._minute and now - self._minute[0] >= 60:
                self._minute.popleft()
            if len(self._minute) >= self.per_minute or len(self._hour) >= self.per_hour:
                return False
            self._minute.append(now)
            self._hour.append(now)
            return True


@dataclass
class EmitBuffer:
    """Messages emitted during one callback, with counts of what was refused."""

    max_message_size: int
    messages: list[EmittedMessage] = field(default_factory=list)
    dropped_over_cap: int = 0
    dropped_too_large: int = 0

    def add(self, msg: EmittedMessage) -> None:
        # emit-message has no error case in the WIT, so refusals are counted and logged, not returned.
        if len(self.messages) >= MAX_PER_CALLBACK:
            self.dropped_over_cap += 1
            return
        if len(msg.content.encode("utf-8")) > self.max_message_size:
            self.dropped_too_large += 1
            return
        if len(msg.attachments) > MAX_ATTACHMENTS_PER_MESSAGE:
            self.dropped_too_large += 1
            return
        self.messages.append(msg)

    def report(self, channel: str) -> None:
        if self.dropped_over_cap:
            log.warning("[%s] %d emitted messages dropped (limit %d per callback)", channel,
                        self.dropped_over_cap, MAX_PER_CALLBACK)
        if self.dropped_too_large:
            log.warning("[%s] %d emitted messages dropped (content over %d bytes or too many attachments)",
                        channel, self.dropped_too_large, self.max_message_size)


class EmitLimiter:
    """Per-channel delivery rate limit; counts and logs what it drops."""

    def __init__(self, channel: str, per_minute: int, per_hour: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.channel = channel
        self._window = SlidingWindowLimiter(per_minute, per_hour, clock)
        self.dropped = 0

    def admit(self, messages: list[EmittedMessage]) -> list[EmittedMessage]:
        admitted = [m for m in messages if self._window.try_acquire()]
        dropped = len(messages) - len(admitted)
        if dropped:
            self.dropped += dropped
            log.warning("[%s] %d messages dropped by the emit rate limit (%d/min, %d/h); %d dropped so far",
                        self.channel, dropped, self._window.per_minute, self._window.per_hour, self.dropped)
        return admitted
