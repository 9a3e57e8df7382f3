"""Platform send rates that come from a published limit: WeCom's per-member limits (30 a minute, 1000 an hour,
excess dropped by WeCom; developer.work.weixin.qq.com/document/path/90236) must hold for any sending pattern the
per-chat bucket admits."""

from __future__ import annotations

from airlock.messages.ratelimit import TokenBucket, rate_for


def most_sent(window_s: float, rate: float, burst: float, step_s: float = 0.05) -> int:
    """Sends a bucket admits in ``window_s`` seconds when asked as fast as possible (starting full)."""
    bucket, now, sent = TokenBucket(rate, burst, 0.0), 0.0, 0
    while now <= window_s:
        if bucket.wait_s(now) == 0.0:
            bucket.take()
            sent += 1
        now += step_s
    return sent


def test_wecom_per_member_limits_hold() -> None:
    wecom = rate_for("wecom")
    assert most_sent(60, wecom.per_chat_per_second, wecom.chat_burst) <= 30
    assert most_sent(3600, wecom.per_chat_per_second, wecom.chat_burst, step_s=0.5) <= 1000
