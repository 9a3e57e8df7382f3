"""Send rates per channel instance: token buckets applied before an outbound callback runs.

Two buckets guard each send: one for the whole channel instance and one for the conversation (chat). Defaults
follow each platform's published limits:

- Telegram Bot API: about 30 messages/s overall and 1 message/s per chat (core.telegram.org/bots/faq);
- Slack: chat.postMessage about 1 message/s per channel (api.slack.com/methods/chat.postMessage, rate limits);
- Discord: 5 messages per 5 s per channel (discord.com/developers/docs/topics/rate-limits, observed per-route);
- WhatsApp Cloud API: 80 messages/s per business number (developers.facebook.com, throughput);
- Feishu: 5 messages/s per bot to one chat, 50/s per app (open.feishu.cn, message frequency limits);
- WeCom: an app may send one member at most 30 messages a minute and 1000 an hour, "超过部分会被丢弃不下发" (the excess
  is dropped; developer.work.weixin.qq.com/document/path/90236): 0.27/s with a burst of 3 per chat stays under both.
Other channels get 10/s overall and 1/s per chat. The capabilities file may override both
(``capabilities.channel.send_rate``: ``per_second`` and ``per_chat_per_second``, with bursts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SendRate:
    """Tokens per second and burst size, overall and per chat. Rates > 0, bursts >= 1."""

    per_second: float
    burst: float
    per_chat_per_second: float
    chat_burst: float


PLATFORM_RATES: dict[str, SendRate] = {
    "telegram": SendRate(30.0, 30.0, 1.0, 1.0),
    "slack": SendRate(1.0, 3.0, 1.0, 1.0),
    "discord": SendRate(5.0, 5.0, 1.0, 5.0),
    "whatsapp": SendRate(80.0, 80.0, 1.0, 5.0),
    "feishu": SendRate(50.0, 50.0, 5.0, 5.0),
    "wecom": SendRate(10.0, 10.0, 0.27, 3.0),
}
DEFAULT_RATE = SendRate(10.0, 10.0, 1.0, 1.0)
MAX_CHAT_BUCKETS = 10_000
"""Per-chat buckets kept per instance; the least recently used are forgotten past this (a forgotten chat starts
with a full bucket, which only ever allows what the platform allows a new chat)."""


class TokenBucket:
    """A token bucket: ``rate`` tokens/s up to ``burst``. Not thread-safe on its own (``SendLimiter`` locks)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def wait_s(self, now: float) -> float:
        """Seconds until one token is there (0.0 if one is there now)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class SendLimiter:
    """The buckets of one channel instance. ``acquire(chat)`` returns 0.0 and takes a token from both buckets, or
    takes nothing and returns the seconds to wait. Thread-safe."""

    def __init__(self, rate: SendRate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._overall = TokenBucket(rate.per_second, rate.burst, clock())
        self._chats: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def acquire(self, chat: str) -> float:
        with self._lock:
            now = self._clock()
            bucket = self._chats.pop(chat, None) or TokenBucket(self.rate.per_chat_per_second, self.rate.chat_burst,
                                                                 now)
            self._chats[chat] = bucket  # most recently used last
            if len(self._chats) > MAX_CHAT_BUCKETS:
                self._chats.pop(next(iter(self._chats)))
            wait = max(self._overall.wait_s(now), bucket.wait_s(now))
            if wait == 0.0:
                self._overall.take()
                bucket.take()
            return wait


def rate_for(platform: str, override: SendRate | None = None) -> SendRate:
    """The send rate of a channel: the capabilities file's override, else the platform's default."""
    return override if override is not None else PLATFORM_RATES.get(platform, DEFAULT_RATE)
