"""``airlock serve`` with ``state = "postgresql://..."`` and ``bus = "redis://..."`` end to end (issue 12, item 3),
all real: the gateway process, the session's PostgreSQL, a Redis of this test's own (killed mid-run and started
again empty on the same port), the template-rust component, and an agent speaking the agent HTTP API.

1. webhook -> PostgreSQL -> Redis stream -> agent (``GET /v1/messages``) -> ack: the entry is in the agent's
   stream, its ack is recorded in PostgreSQL and in Redis (nothing pending in the group).
2. Messages published to Redis but not yet read when Redis is killed, messages accepted while it is down, and
   messages after it came back without its data: every webhook answered 200 reaches the agent (re-published from
   PostgreSQL), once per message id after the agent's dedupe by id, each conversation's
   first deliveries in the order its webhooks were answered; while Redis is down the agent is answered 503 with
   Retry-After (not 500), webhooks still 200 (the durable record is PostgreSQL).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from conftest import InstallFn
from servers import RedisServer
from test_postgres_serve_e2e import CHANNEL, SECRET, fake_platform, serve_template

from airlock.messages.postgres import PostgresMessageLog
from airlock.messages.redisbus import GROUP

pytestmark = pytest.mark.e2e

USERS = 4
"""Conversations (one per sender) the load spreads over."""
PER_PHASE = 12
"""Webhooks posted before the kill, while Redis is down, and after it is back (each)."""
DELIVERY_S = 40.0
"""Seconds within which every accepted message must have reached the agent."""
STREAM = "airlock:inbound:bot"


async def post(s: aiohttp.ClientSession, base: str, user: str, text: str) -> int:
    async with s.post(f"{base}/webhook/{CHANNEL}", json={"user": user, "text": text, "id": text},
                      headers={"X-Airlock-Webhook-Secret": SECRET}) as r:
        return r.status


class Agent:
    """An HTTP agent: long-polls, records every delivery (duplicates too), acks each, retries on 503."""

    def __init__(self, api: str, auth: dict[str, str]) -> None:
        self.api, self.auth = api, auth
        self.deliveries: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.unavailable_answers: list[tuple[int, str | None]] = []

    async def run(self, s: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with s.get(f"{self.api}/messages?wait=1&limit=10", headers=self.auth) as r:
                    self.statuses.append(r.status)
                    if r.status != 200:
                        self.unavailable_answers.append((r.status, r.headers.get("Retry-After")))
                        await asyncio.sleep(0.2)
                        continue
                    batch = (await r.json())["messages"]
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
                continue
            for msg in batch:
                self.deliveries.append(msg)
                async with s.post(f"{self.api}/messages/{msg['id']}/ack", headers=self.auth,
                                  json={"lease_token": msg["lease_token"]}) as r:
                    self.statuses.append(r.status)


async def test_serve_with_a_redis_bus_delivers_through_redis_and_survives_a_redis_restart(
    airlock_home: Path, install_channel: InstallFn, pg_url: str, own_redis: RedisServer, master_key: str,
    tmp_path: Path,
) -> None:
    runner, platform_url, _received = await fake_platform()
    proc, _env, base, api, auth = await serve_template(
        airlock_home, install_channel, pg_url, master_key, platform_url, tmp_path / "serve.log",
        f'state = "{pg_url}"\nbus = "{own_redis.url}"\ndefault_agent = "bot"\nagent_visibility_timeout_s = 5\n')
    log = PostgresMessageLog.open(pg_url)
    r = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        async with aiohttp.ClientSession() as s:
            # 1. webhook -> PostgreSQL -> Redis -> agent -> ack
            assert await post(s, base, "u0", "first") == 200
            async with s.get(f"{api}/messages?wait=10", headers=auth) as resp:
                assert resp.status == 200
                (msg,) = (await resp.json())["messages"]
            assert [f["id"] for _x, f in r.xrange(STREAM)] == [msg["id"]]  # it went through the agent's stream
            assert r.xpending(STREAM, GROUP)["pending"] == 1
            async with s.post(f"{api}/messages/{msg['id']}/ack", headers=auth,
                              json={"lease_token": msg["lease_token"]}) as resp:
                assert resp.status == 200, await resp.text()
            assert r.xpending(STREAM, GROUP)["pending"] == 0
            entry = log.get(msg["id"])
            assert entry is not None and entry.state == "acked"

            # 2. load with a Redis crash in the middle
            agent, stop = Agent(api, auth), asyncio.Event()
            accepted: list[tuple[str, str]] = []  # (user, text) in the order they were answered 200
            n = 0

            async def phase() -> None:
                nonlocal n
                for _ in range(PER_PHASE):
                    user, text = f"u{n % USERS}", f"m{n:03d}"
                    n += 1
                    status = await post(s, base, user, text)
                    assert status == 200, status  # PostgreSQL holds the record: Redis down is no reason to refuse
                    accepted.append((user, text))

            await phase()  # no agent reads yet: these sit published in Redis, unread, when it dies
            deadline = time.monotonic() + 10
            while len(r.xrange(STREAM)) < 1 + PER_PHASE:
                assert time.monotonic() < deadline, "not published"
                await asyncio.sleep(0.05)
            own_redis.kill()
            consumer = asyncio.create_task(agent.run(s, stop))
            await phase()
            await asyncio.sleep(1.5)  # the agent polls a Redis that is gone
            own_redis.start()  # same port, no data: no streams, no groups, no epoch
            await phase()
            deadline = time.monotonic() + DELIVERY_S
            wanted = {text for _u, text in accepted}
            while {m["content"].removeprefix("text ") for m in agent.deliveries} < wanted:
                assert time.monotonic() < deadline, sorted(wanted - {m["content"] for m in agent.deliveries})
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(consumer, 15)

        by_id: dict[str, str] = {}
        for m in agent.deliveries:
            assert by_id.setdefault(m["id"], m["content"]) == m["content"]
        contents = sorted(c.removeprefix("text ") for c in by_id.values())
        assert contents == sorted(wanted)  # after dedupe by id: each accepted message exactly once, nothing else
        first_seen: list[str] = []
        for m in agent.deliveries:
            text = m["content"].removeprefix("text ")
            if text not in first_seen:
                first_seen.append(text)
        for u in range(USERS):  # each conversation's first deliveries in the order its webhooks were accepted
            mine = [t for user, t in accepted if user == f"u{u}"]
            assert [t for t in first_seen if t in mine] == mine
        assert agent.unavailable_answers, "the agent never met the Redis outage"
        assert all(st == 503 and retry for st, retry in agent.unavailable_answers), agent.unavailable_answers
        assert 500 not in agent.statuses
        assert log.backlog() == 0
        late = {f["id"] for _x, f in r.xrange(STREAM)}  # the new Redis carried the re-published entries
        assert late and late <= set(by_id)
    finally:
        r.close()
        log.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await runner.cleanup()
