"""The ``emit-message`` host function: messages for the agent, buffered until the callback succeeds.

Limits: 100 messages per callback; content at most ``max_message_size`` bytes (65536 by default, from
the capabilities file): a longer one is dropped, or, for ``near:agent`` components (``EmitBuffer.truncate_long``),
cut at a UTF-8 boundary and ended with :data:`TRUNCATED_MARK` within the same size, as IronClaw's host keeps it
(``src/channels/wasm/host.rs``, ``ChannelHostState::emit_message``); per channel ``emit_rate_limit`` (100/minute
and 5000/hour by default): a callback whose messages do not fit is not applied at all (``EmitLimiter.reserve``; the
webhook answers 429, a poll retries), so nothing is acknowledged and then dropped. Per-callback refusals are counted
and logged, never silently lost.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..runtime.values import EmittedMessage

MAX_PER_CALLBACK = 100
MAX_ATTACHMENTS_PER_MESSAGE = 32
TRUNCATED_MARK = "... (truncated)"

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

    def try_acquire(self, count: int = 1) -> bool:
        """Record ``count`` events at once and return True, or return False (nothing recorded) if they do not
        all fit in both windows. A batch larger than a window's whole limit is admitted only into an empty
        window (so one callback's burst is never refused forever)."""
        with self._lock:
            now = self._expire()
            if not (self._fits(len(self._minute), count, self.per_minute)
                    and self._fits(len(self._hour), count, self.per_hour)):
                return False
            self._minute.extend([now] * count)
            self._hour.extend([now] * count)
            return True

    def release(self, count: int) -> None:
        """Un-count the ``count`` most recent events (a batch whose callback was not applied after all)."""
        with self._lock:
            for window in (self._minute, self._hour):
                for _ in range(min(count, len(window))):
                    window.pop()

    def retry_after(self, count: int = 1) -> float:
        """Seconds until ``count`` more events would fit both windows (0.0 when they fit now)."""
        with self._lock:
            now = self._expire()
            return max(self._wait(self._minute, 60, self.per_minute, count, now),
                       self._wait(self._hour, 3600, self.per_hour, count, now))

    @classmethod
    def _wait(cls, window: deque[float], span: float, limit: int, count: int, now: float) -> float:
        if cls._fits(len(window), count, limit):
            return 0.0
        # the oldest `excess` events must leave (all of them for a batch over the whole limit)
        excess = min(len(window), len(window) + count - limit) if count <= limit else len(window)
        return span - (now - window[excess - 1])

    @staticmethod
    def _fits(used: int, count: int, limit: int) -> bool:
        return used + count <= limit or (used == 0 and count > limit)

    def _expire(self) -> float:
        now = self._clock()
        while self._hour and now - self._hour[0] >= 3600:
            self._hour.popleft()
        while self._minute and now - self._minute[0] >= 60:
            self._minute.popleft()
        return now


class Window(Protocol):
    """Sliding one-minute and one-hour windows of events (:class:`SlidingWindowLimiter`'s interface)."""

    per_minute: int
    per_hour: int

    def try_acquire(self, count: int = 1) -> bool: ...

    def release(self, count: int) -> None: ...

    def retry_after(self, count: int = 1) -> float: ...


@dataclass
class EmitBuffer:
    """Messages emitted during one callback, with counts of what was refused."""

    max_message_size: int
    truncate_long: bool = False
    """Cut content over ``max_message_size`` instead of dropping the message (``near:agent`` components)."""
    messages: list[EmittedMessage] = field(default_factory=list)
    dropped_over_cap: int = 0
    dropped_too_large: int = 0
    truncated: int = 0

    def add(self, msg: EmittedMessage) -> None:
        # emit-message has no error case in the WIT, so refusals are counted and logged, not returned.
        if len(self.messages) >= MAX_PER_CALLBACK:
            self.dropped_over_cap += 1
            return
        raw = msg.content.encode("utf-8")
        if len(raw) > self.max_message_size:
            if not self.truncate_long:
                self.dropped_too_large += 1
                return
            keep = raw[: max(0, self.max_message_size - len(TRUNCATED_MARK))].decode("utf-8", "ignore")
            msg = dataclasses.replace(msg, content=keep + TRUNCATED_MARK)
            self.truncated += 1
        if len(msg.attachments) > MAX_ATTACHMENTS_PER_MESSAGE:
            self.dropped_too_large += 1
            return
        self.messages.append(msg)

    def report(self, channel: str) -> None:
        if self.dropped_over_cap:
            log.warning("[%s] %d emitted messages dropped (limit %d per callback)", channel,
                        self.dropped_over_cap, MAX_PER_CALLBACK)
        if self.truncated:
            log.warning("[%s] %d emitted messages truncated to %d bytes", channel, self.truncated,
                        self.max_message_size)
        if self.dropped_too_large:
            log.warning("[%s] %d emitted messages dropped (content over %d bytes or too many attachments)",
                        channel, self.dropped_too_large, self.max_message_size)


class EmitLimiter:
    """Per-channel delivery rate limit.

    ``reserve`` is the rule the host applies: a callback's messages are admitted all together or not at all,
    before anything the callback did is applied (``channels.channel``), so nothing is acknowledged and then
    dropped. ``admit`` (a partial admission that drops the rest) is kept for callers that cannot retry.
    """

    def __init__(self, channel: str, per_minute: int, per_hour: int,
                 clock: Callable[[], float] = time.monotonic, window: Window | None = None) -> None:
        """``window``: where the messages are counted (default: this process's :class:`SlidingWindowLimiter`;
        the workers of ``serve --workers N`` share one, ``capabilities.emit_shared``)."""
        self.channel = channel
        self._window: Window = window if window is not None else SlidingWindowLimiter(per_minute, per_hour, clock)
        self.shared = window is not None
        """Counted in a store other processes share: ``reserve`` does I/O, so it is never called on the event
        loop (``channels.channel``: an inline attempt that emitted is completed on a worker thread)."""
        self.dropped = 0
        self.refused = 0
        """Messages refused by ``reserve`` (their input is retried, so they are not lost)."""

    def reserve(self, count: int) -> float:
        """Count ``count`` messages and return 0.0, or count nothing and return the seconds to wait (> 0)
        before the batch can fit. ``count`` 0 always fits. A shared window whose database is down raises
        ``StateUnavailable`` (``capabilities.emit_shared``)."""
        if count <= 0 or self._window.try_acquire(count):
            return 0.0
        self.refused += count
        log.info("[%s] %d message(s) held back by the emit rate limit (%d/min, %d/h); the input will be retried",
                 self.channel, count, self._window.per_minute, self._window.per_hour)
        return max(self._window.retry_after(count), 1.0)

    def release(self, count: int) -> None:
        """Give back a ``reserve`` whose callback was not applied (a workspace conflict re-runs it)."""
        self._window.release(count)

    def admit(self, messages: list[EmittedMessage]) -> list[EmittedMessage]:
        admitted = [m for m in messages if self._window.try_acquire()]
        dropped = len(messages) - len(admitted)
        if dropped:
            self.dropped += dropped
            log.warning("[%s] %d messages dropped by the emit rate limit (%d/min, %d/h); %d dropped so far",
                        self.channel, dropped, self._window.per_minute, self._window.per_hour, self.dropped)
        return admitted
