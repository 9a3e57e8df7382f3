"""The Telegram poller under ``airlock serve --workers 2`` (issue 12, items 1 and 4), all real: the supervisor and
workers, the Telegram component (CPython guest, long polls), the fake Bot API on loopback (it records every
getUpdates offset and any two getUpdates that overlap), an agent over the agent HTTP API.

- Only the worker holding the lease ``poll:telegram`` polls: the fake never sees two getUpdates at once.
- kill -9 of the holder: another worker takes over within lease_ttl + a renewal + one poll (plus the time the
  kill itself takes to be noticed by nobody: the lease just runs out), and polls from the cursor the dead holder
  committed (the offsets never go backwards).
- Every message pushed reaches the agent, exactly once after dedupe by id.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import BUILT_CHANNELS, InstallFn
from workers_harness import Agent, cli, env_for, start

from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

TTL_S = 3.0
"""lease_ttl_s of this test (15 s by default): the takeover bound scales with it."""
LONG_POLL_S = 1
RESUME_BOUND_S = TTL_S + TTL_S / 3 + LONG_POLL_S + 2.0
"""Takeover within lease_ttl + one renewal interval + one poll, + 2 s for a loaded 2-core machine."""


def lease_holder(home: Path) -> tuple[str, int] | None:
    """(holder, token) of the poller's lease, read from state.db as another process would."""
    with sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True, timeout=5) as db:
        row = db.execute("SELECT holder, token FROM leases WHERE name = 'poll:telegram' AND expires_at > ?",
                         (time.time(),)).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


async def test_one_poller_across_workers_and_takeover_after_kill_9(
        airlock_home: Path, install_channel: InstallFn, tmp_path: Path) -> None:
    install_channel(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
                    polling_enabled=True, dm_policy="open", bot_username="airlock_test_bot",
                    long_poll_timeout_s=LONG_POLL_S)
    (airlock_home / "airlock.toml").write_text(f'default_agent = "bot"\nlease_ttl_s = {TTL_S}\n')
    env = env_for(airlock_home)
    async with FakeTelegram(bot_username="airlock_test_bot") as fake:
        await cli(env, "secrets", "set", "telegram_bot_token", stdin=fake.token.encode())
        token = json.loads(await cli(env, "agents", "add", "bot", "--json"))["token"]
        gw = await start(airlock_home, tmp_path / "serve.log", "--upstream", f"api.telegram.org={fake.base_url}")
        agent = Agent(gw, token)
        pushed: list[str] = []

        async def push(n: int) -> None:
            for _ in range(n):
                text = f"m{len(pushed):03d}"
                fake.push_message(text, chat_id=100 + len(pushed) % 2, user_id=100 + len(pushed) % 2, username="u")
                pushed.append(text)
                await asyncio.sleep(0.05)

        try:
            async with aiohttp.ClientSession() as s:
                await push(20)
                await agent.drain(s, lambda got: len({m["content"] for m in got}) >= 20, 60)
                holder = lease_holder(airlock_home)
                assert holder is not None
                victim = int(holder[0].split("/")[1])
                assert victim in {w["pid"] for w in gw.workers()}
                calls_before = len(fake.get_updates_offsets)
                os.kill(victim, signal.SIGKILL)
                killed_at = time.monotonic()
                await asyncio.sleep(0.05)
                calls_at_kill = len(fake.get_updates_offsets)  # the dead holder's last call, if it was under way
                while len(fake.get_updates_offsets) == calls_at_kill:
                    assert time.monotonic() - killed_at < RESUME_BOUND_S, (
                        f"no poll {RESUME_BOUND_S} s after the holder was killed: {gw.log()[-3000:]}")
                    await asyncio.sleep(0.02)
                resumed_s = time.monotonic() - killed_at
                new = lease_holder(airlock_home)
                assert new is not None and new[0] != holder[0] and new[1] > holder[1]
                await push(20)
                await agent.drain(s, lambda got: {m["content"] for m in got} >= set(pushed), 60)
        finally:
            code = await gw.stop()
        assert code == 0, gw.log()[-3000:]
        assert calls_before > 1
        assert resumed_s >= TTL_S - 1.0, "the lease ran out first (the holder was killed, it never released)"
        assert fake.get_updates_overlaps == 0, "two workers polled the bot at once"
        offsets = [o for o in fake.get_updates_offsets if o is not None]
        assert offsets == sorted(offsets), f"a cursor went backwards: {offsets}"
        first = fake.get_updates_offsets.index(offsets[0])
        assert None not in fake.get_updates_offsets[first:], "a holder polled without the committed cursor"
        assert sorted({m["content"] for m in agent.received}) == sorted(pushed)
