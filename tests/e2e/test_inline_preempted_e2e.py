"""Inline webhooks on a busy process: an attempt that waited without running is not a slow attempt.

The inline guard (``channels.inline``) judges an attempt by the CPU time the event loop thread spent in it, not by
wall time: on a loaded machine (``--workers 2`` and a load generator on two cores) a 0.1 ms guest was often
descheduled mid-call, the guard took it for slow and switched inline off for 30 s. Here another thread holds the
channel's workspace lock (as its commit thread does, briefly, for every flush) when each webhook arrives, so every
inline attempt waits for it before the guest runs: its wall time is many times ``SLOW_S``, its CPU time is not."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from conftest import InstallFn, minimal_caps

from airlock.channels import inline
from airlock.host import AirlockHost
from airlock.host_config import HostConfig

pytestmark = pytest.mark.e2e

HOLD_S = 0.02
"""How long the other thread keeps the workspace lock once a webhook's attempt started (seconds): 20 times
``SLOW_S``."""


async def test_attempts_that_waited_stay_inline(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir, "fast"), minimal_caps("fast"))
    async with AirlockHost(HostConfig.build(home=airlock_home, listen_port=0)) as host:
        slot = host.manager.slots["fast"]
        lock = slot.channel.workspace._lock
        walls: list[float] = []
        original = slot.channel.http_request
        entered = threading.Event()

        def timed(req: Any, **how: Any) -> Any:
            entered.set()
            out = original(req, **how)
            if how.get("inline"):
                walls.append(out.elapsed_s)
            return out

        def hold(taken: threading.Event) -> None:
            with lock:
                taken.set()
                entered.wait(10)  # the attempt started: it waits for this lock from now on
                time.sleep(HOLD_S)

        slot.channel.http_request = timed  # type: ignore[method-assign]
        # past the warm-up, enough for the guard to judge: more than half of its window slow would trip it
        count = inline.WARMUP_ATTEMPTS + inline.WINDOW // 2 + 1
        async with aiohttp.ClientSession() as s:
            for i in range(count):
                taken = threading.Event()
                entered.clear()
                holder = threading.Thread(target=hold, args=(taken,))
                holder.start()
                taken.wait()
                async with s.post(f"{host.base_url}/webhook/fast", data=f"m{i}".encode()) as r:
                    assert r.status == 200
                holder.join()
        assert len(walls) == count and min(walls) >= HOLD_S, walls  # every attempt waited
        assert (slot.inline.hits, slot.inline.trips) == (count, 0)
        assert slot.inline.slow <= inline.WINDOW // 4 and slot.inline.should_try()
        for _ in range(count):
            await asyncio.wait_for(host.next_message(), 5)
