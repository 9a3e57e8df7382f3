"""Cross-node wake-up (``messages.wakeup``): two real ``airlock serve`` nodes on one real PostgreSQL; an agent
long-polls node A's agent API while webhooks are posted to node B. Node B's commit sends a NOTIFY; node A wakes the
waiting lease at once, not at its next look a second later. The latency from B's 200 answer to the agent holding the
message is measured for each message; its median must be well under that second (it was about half of it).

Measured on this 2-core machine: 1-3 ms (before: 670-710 ms); with the Redis bus, where the NOTIFY goes with the
publication to the stream (``tests/messages/test_wakeup.py`` checks when it is sent), 5-12 ms (before: ~700 ms)."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import pytest
from clusterkit import WEBHOOK_SECRET, install_webhook_channel
from nodeproc import Node, make_home
from servers import free_port

from airlock.state.postgres import PgDb
from airlock.stores._sql import PgQmarkDb
from airlock.stores.agents import AgentRegistry

pytestmark = pytest.mark.e2e

SAMPLES = 6
MEDIAN_BOUND_S = 0.25
"""The median latency allowed: a wake-up by NOTIFY takes milliseconds; a look every second averages 0.5 s."""


def agent_token(pg_url: str) -> str:
    """The token of a new agent ``bot``, registered for the whole cluster (agents live in PostgreSQL)."""
    registry = AgentRegistry(PgQmarkDb(PgDb(pg_url, max_size=1), owns_db=True))
    try:
        return registry.add("bot", None)[0]
    finally:
        registry.close()


async def test_an_agent_waiting_on_one_node_gets_a_message_appended_on_another_at_once(
        tmp_path: Path, pg_url: str, compile_cache: Path) -> None:
    homes = [make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b")]
    for home in homes:
        with (home / "airlock.toml").open("a") as f:
            f.write('default_agent = "bot"\n')
    await asyncio.to_thread(install_webhook_channel, homes[0], tmp_path)
    token = agent_token(pg_url)
    a, b = await asyncio.gather(*(asyncio.to_thread(Node, h, agent_api_port=free_port(),
                                                    logfile=tmp_path / f"{h.name}.log") for h in homes))
    auth = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(SAMPLES):
                async def wait_on_a() -> float:
                    async with s.get(f"{a.api_url}/messages?wait=10", headers=auth) as r:
                        assert r.status == 200, await r.text()
                        (msg,) = (await r.json())["messages"]
                    got = time.monotonic()
                    async with s.post(f"{a.api_url}/messages/{msg['id']}/ack", headers=auth,
                                      json={"lease_token": msg["lease_token"]}) as r:
                        assert r.status == 200, await r.text()
                    return got

                waiting = asyncio.create_task(wait_on_a())
                await asyncio.sleep(0.3)  # the lease is waiting on A
                async with s.post(f"{b.url}/webhook/template-rust", json={"user": "u1", "text": f"m{i}", "id": f"m{i}"},
                                  headers={"X-Airlock-Webhook-Secret": WEBHOOK_SECRET}) as r:
                    assert r.status == 200, await r.text()
                answered = time.monotonic()
                latencies.append(await asyncio.wait_for(waiting, 10) - answered)
    finally:
        await asyncio.gather(*(asyncio.to_thread(node.stop) for node in (a, b)))
    print("B -> A latency: " + ", ".join(f"{x * 1000:.0f}" for x in latencies) + " ms")
    assert statistics.median(latencies) < MEDIAN_BOUND_S, latencies
