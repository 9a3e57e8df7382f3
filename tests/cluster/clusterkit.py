"""Helpers of the cluster tests that run channels on real ``airlock serve`` nodes: install the Telegram channel
(against the fake Bot API) and the template-rust webhook channel once for the cluster, and read which node holds a
poller's lease."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psycopg
from conftest import BUILT_CHANNELS
from nodeproc import Node, cli

from airlock_demo.telegram import FakeTelegram

BOT = "airlock_test_bot"
LONG_POLL_S = 1
"""The Telegram channel's long-poll timeout in these tests (``long_poll_timeout_s``; 25 s in production)."""
WEBHOOK_SECRET = "cluster-webhook-secret"
EMIT_PER_MINUTE = 60_000
"""The channels' emit rate limit in these tests (100 a minute in the shipped files): the load, not the limit, is
what the tests are about."""


def _caps(name: str, **config: Any) -> dict[str, Any]:
    doc = json.loads((BUILT_CHANNELS / f"{name}.capabilities.json").read_text())
    doc["config"].update(config)
    doc["capabilities"]["channel"]["emit_rate_limit"] = {"messages_per_minute": EMIT_PER_MINUTE,
                                                         "messages_per_hour": EMIT_PER_MINUTE * 60}
    return dict(doc)


def _install(home: Path, tmp: Path, name: str, **config: Any) -> None:
    caps = tmp / f"{name}.capabilities.json"
    caps.write_text(json.dumps(_caps(name, **config)))
    done = cli(home, "channels", "install", str(BUILT_CHANNELS / f"{name}.wasm"), str(caps))
    assert done.returncode == 0, done.stderr


def _secret(home: Path, name: str, value: str) -> None:
    done = cli(home, "secrets", "set", name, input=value + "\n")
    assert done.returncode == 0, done.stderr


def install_telegram(home: Path, tmp: Path, fake: FakeTelegram) -> None:
    """The Telegram channel for every node (``channels install`` on ``home``: the cluster's record), long-polling
    the fake, open DMs; its bot token in PostgreSQL. Blocking (CLI runs)."""
    _install(home, tmp, "telegram", polling_enabled=True, dm_policy="open", bot_username=BOT,
             long_poll_timeout_s=LONG_POLL_S)
    _secret(home, "telegram_bot_token", fake.token)


def install_webhook_channel(home: Path, tmp: Path) -> None:
    """The template-rust webhook channel for every node, open DMs, its webhook secret in PostgreSQL."""
    _install(home, tmp, "template-rust", dm_policy="open")
    _secret(home, "template_rust_webhook_secret", WEBHOOK_SECRET)


def upstream(fake: FakeTelegram) -> list[str]:
    """The ``serve`` arguments that send the Telegram channel's API calls to the fake."""
    return ["--upstream", f"api.telegram.org={fake.base_url}"]


def lease_of(pg_url: str, name: str = "poll:telegram") -> tuple[int, int] | None:
    """(pid, token) of the process holding lease ``name`` unexpired (holder ids are ``host/pid/random``)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT holder, token FROM leases WHERE name = %s AND expires_at > %s",
                           (name, time.time())).fetchone()
    return None if row is None else (int(str(row[0]).split("/")[1]), int(row[1]))


def holder(nodes: list[Node], pg_url: str) -> Node | None:
    """The node whose process holds the Telegram poller's lease, if any."""
    held = lease_of(pg_url)
    return next((n for n in nodes if held is not None and n.proc.pid == held[0]), None)


def confirmed(fake: FakeTelegram) -> int:
    """Update ids below this were confirmed by a poller (the highest getUpdates offset asked so far)."""
    return max((o for o in fake.get_updates_offsets if o is not None), default=0)


async def wait_until(cond: Any, timeout: float, what: str) -> None:
    """Poll ``cond()`` (blocking calls run in a thread) every 50 ms until true, else fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(cond):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.05)


def overlapping(intervals: list[tuple[float, float]]) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Pairs of getUpdates calls (``(started, ended)``) that ran at the same time."""
    found = []
    latest: tuple[float, float] | None = None  # of the calls started so far, the one that ends last
    for call in sorted(intervals):
        if latest is not None and call[0] < latest[1]:
            found.append((latest, call))
        if latest is None or call[1] > latest[1]:
            latest = call
    return found
