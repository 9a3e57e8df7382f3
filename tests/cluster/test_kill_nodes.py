"""The cluster under kill -9 (issue 12's test): two real ``airlock serve`` nodes (homes of their own, one real
PostgreSQL, one real Redis bus, the same ``AIRLOCK_MASTER_KEY``), the Telegram channel long-polling the fake Bot API
(it records every getUpdates call's interval and offset) and the template-rust webhook channel, installed once for
the cluster. While messages flow, the node holding the Telegram poller's lease is killed with SIGKILL every
:data:`KILL_EVERY_S` seconds, :data:`KILLS` times, and restarted at once (so each node dies in turn).

The load: :data:`SENDERS` webhook conversations spread over both nodes by a client that posts a message again until
a node answers it 2xx (at-least-once, as platforms do; ``loadkit.WebhookSender``), Telegram messages pushed into the
fake in two chats, and one agent leasing and acking through the agent API of each node in turn
(``loadkit.ClusterAgent``; the agent API, not a third process's in-process API: it is what an agent of a cluster
uses, and a node killed under it is the failure to survive). Between two kills, Redis is killed and comes back
empty, and later PostgreSQL is stopped and started again (issue 12: "Restart Redis mid-run: nothing lost. Stop
PostgreSQL: webhooks get 503").

Asserted: every message whose webhook was answered 2xx, and every Telegram update (each one confirmed by a later
getUpdates offset), reached the agent exactly once after dedupe by message id; each conversation's first deliveries
came in the order it was sent; the poller resumed within ``lease_ttl_s`` + one long poll (+ slack for a loaded
2-core machine) of each kill; no two getUpdates of the bot ever ran at once; the offsets asked never went back; no
webhook and no agent call was answered 500, and while PostgreSQL was down webhooks were refused with 503.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import psycopg
import pytest
from clusterkit import (
    LONG_POLL_S,
    confirmed,
    holder,
    install_telegram,
    install_webhook_channel,
    lease_of,
    overlapping,
    upstream,
)
from loadkit import ClusterAgent, WebhookSender, exactly_once, first_deliveries_in_order
from nodeproc import Node, make_home
from servers import PostgresServer, RedisServer, free_port
from test_wakeup_nodes import agent_token

from airlock.state.postgres import CONNECT_WAIT_S
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

TTL_S = 3.0
"""``lease_ttl_s`` of the nodes (15 s by default)."""
VISIBILITY_S = 5.0
"""``agent_visibility_timeout_s``: a delivery lost with a killed node comes again this much later."""
KILLS = 5
KILL_EVERY_S = 10.0
SENDERS = 4
SEND_PAUSE_S = 0.05
"""Each webhook sender's pause between two accepted messages."""
TELEGRAM_EVERY_S = 0.4
"""A Telegram message is pushed into the fake this often (two chats, in turn)."""
SLACK_S = 2.0
"""Allowance for a loaded 2-core machine on top of each bound."""
RESUME_BOUND_S = TTL_S + LONG_POLL_S + SLACK_S
"""The Telegram poller resumes within lease_ttl + one poll of its holder's death (issue 12)."""
REDIS_DOWN_S = 2.0
PG_DOWN_S = CONNECT_WAIT_S + 1.0
"""How long Redis, then PostgreSQL, is down (between two kills): PostgreSQL longer than a webhook waits for a
connection (``state.postgres.CONNECT_WAIT_S``), so webhooks are refused meanwhile."""
REDIS_DOWN_AT_S = 14.0
PG_DOWN_AT_S = 34.0
"""Seconds into the run at which Redis is killed (and started again empty), and PostgreSQL stopped (and started)."""
DRAIN_S = 30.0
RESTART_S = 30.0
"""Seconds within which a killed node must be running again (started again while PostgreSQL is down)."""
"""Seconds after the load stops within which everything accepted must have reached the agent."""


class Cluster:
    """The two nodes, each restarted on its own ports and log file."""

    def __init__(self, homes: list[Path], extra: list[str], logs: Path) -> None:
        self.homes, self.extra, self.logs = homes, extra, logs
        self.ports = [(free_port(), free_port()) for _ in homes]
        self.nodes: list[Node] = []

    def start(self, i: int) -> Node:
        port, api = self.ports[i]
        return Node(self.homes[i], port=port, agent_api_port=api, extra=self.extra,
                    logfile=self.logs / f"{self.homes[i].name}.log")

    async def start_all(self) -> None:
        self.nodes = list(await asyncio.gather(*(asyncio.to_thread(self.start, i) for i in range(len(self.homes)))))

    async def restart(self, i: int) -> None:
        """A new process in node ``i``'s home, on its ports (a kill -9 left them free); started again until it comes
        up, as a service manager does (a node that cannot reach PostgreSQL at start exits)."""
        deadline = time.monotonic() + RESTART_S
        while True:
            try:
                new = await asyncio.to_thread(self.start, i)
                break
            except AssertionError:  # it exited while starting
                assert time.monotonic() < deadline, f"node {i} did not come back: {self.tail()}"
                await asyncio.sleep(1.0)
        self.nodes[i].proc, self.nodes[i].port = new.proc, new.port

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


def log_rows(pg_url: str, started: float) -> str:
    """What the log holds of each message (for a failure's message): seq, when received (s into the run), the bus
    epoch and stream id it was published under, attempts, state."""
    offset = time.time() - time.monotonic() + started
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT content, seq, received_at, bus_epoch, bus_id, attempts, state FROM inbound "
                            "ORDER BY seq").fetchall()
    return "\n".join(f"{c} seq {q} at {r - offset:.2f} epoch {str(e)[:6]} xid {x} attempts {a} {st}"
                     for c, q, r, e, x, a, st in rows)


def homes_for(tmp_path: Path, pg_url: str, redis_url: str, compile_cache: Path) -> list[Path]:
    homes = [make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b")]
    for home in homes:
        with (home / "airlock.toml").open("a") as f:
            f.write(f'bus = "{redis_url}"\ndefault_agent = "bot"\nlease_ttl_s = {TTL_S}\n'
                    f"agent_visibility_timeout_s = {VISIBILITY_S}\n")
    return homes


async def push_telegram(fake: FakeTelegram, pushed: dict[str, list[str]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        n = sum(len(v) for v in pushed.values())
        chat = 100 + n % 2
        sender = f"t{chat}"
        text = f"{sender}-{len(pushed.setdefault(sender, [])):04d}"
        fake.push_message(text, chat_id=chat, user_id=chat)
        pushed[sender].append(text)
        await asyncio.sleep(TELEGRAM_EVERY_S)


async def outages(redis: RedisServer, pg: PostgresServer, started: float) -> None:
    """Between two node kills: Redis killed and started again empty (REDIS_DOWN_AT_S); later PostgreSQL stopped and
    started again (PG_DOWN_AT_S)."""
    await asyncio.sleep(started + REDIS_DOWN_AT_S - time.monotonic())
    await asyncio.to_thread(redis.kill)
    await asyncio.sleep(REDIS_DOWN_S)
    await asyncio.to_thread(redis.start)
    await asyncio.sleep(started + PG_DOWN_AT_S - time.monotonic())
    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(PG_DOWN_S)
    await asyncio.to_thread(pg.start)


async def kill_holders(cluster: Cluster, pg_url: str, fake: FakeTelegram, started: float) -> list[float]:
    """Every KILL_EVERY_S from ``started``: SIGKILL the node holding the poller's lease and restart it; return, per
    kill, how long the Telegram poller took to poll again (the first getUpdates that started after the kill)."""
    resumed: list[float] = []
    for k in range(KILLS):
        await asyncio.sleep(started + (k + 1) * KILL_EVERY_S - time.monotonic())  # every 10 s, restarts included
        while (victim := await asyncio.to_thread(holder, cluster.nodes, pg_url)) is None:  # after an outage
            assert time.monotonic() < started + (k + 1) * KILL_EVERY_S + TTL_S + 5, f"no holder: {cluster.tail()}"
            await asyncio.sleep(0.1)
        before = await asyncio.to_thread(lease_of, pg_url)
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)
        restart = asyncio.create_task(cluster.restart(cluster.nodes.index(victim)))
        deadline = killed_at + RESUME_BOUND_S + 10
        while not (polls := [t for t in fake.get_updates_started if t > killed_at]):
            assert time.monotonic() < deadline, f"no poll after kill {len(resumed) + 1}: {cluster.tail()}"
            await asyncio.sleep(0.02)
        resumed.append(polls[0] - killed_at)
        after = await asyncio.to_thread(lease_of, pg_url)
        assert before is not None and after is not None and after[1] > before[1], (before, after)  # taken over
        await restart
    return resumed


async def test_two_nodes_killed_in_turn_lose_nothing_and_poll_once(
        tmp_path: Path, stoppable_postgres: PostgresServer, own_redis: RedisServer, compile_cache: Path) -> None:
    pg_url = stoppable_postgres.create_schema()
    homes = homes_for(tmp_path, pg_url, own_redis.url, compile_cache)
    token = agent_token(pg_url)
    stop_load, stop_agent = asyncio.Event(), asyncio.Event()
    async with FakeTelegram(bot_username="airlock_test_bot") as fake:
        await asyncio.gather(asyncio.to_thread(install_telegram, homes[0], tmp_path, fake),  # each on one node,
                             asyncio.to_thread(install_webhook_channel, homes[1], tmp_path))  # for both
        cluster = Cluster(homes, upstream(fake), tmp_path)
        await cluster.start_all()
        senders = [WebhookSender(f"u{i}", cluster.nodes, SEND_PAUSE_S) for i in range(SENDERS)]
        agent = ClusterAgent(cluster.nodes, token)
        pushed: dict[str, list[str]] = {}
        try:
            async with aiohttp.ClientSession() as s:
                load = [asyncio.create_task(t) for t in (*(w.run(s, stop_load) for w in senders),
                                                        push_telegram(fake, pushed, stop_load))]
                consumer = asyncio.create_task(agent.run(s, stop_agent))
                started = time.monotonic()
                outage = asyncio.create_task(outages(own_redis, stoppable_postgres, started))
                resumed = await kill_holders(cluster, pg_url, fake, started)
                await outage
                stop_load.set()
                await asyncio.gather(*load)
                last_update = fake.push_message("t100-end", chat_id=100, user_id=100)["update_id"]
                pushed["t100"].append("t100-end")
                accepted = {w.user: w.accepted for w in senders}
                everything = {c for texts in (*accepted.values(), *pushed.values()) for c in texts}
                deadline = time.monotonic() + DRAIN_S
                while not (confirmed(fake) > last_update and agent.contents() >= everything):
                    assert time.monotonic() < deadline, (
                        f"{len(everything - agent.contents())} messages not delivered {DRAIN_S} s after the load: "
                        f"{sorted(everything - agent.contents())[:20]}\n{cluster.tail()}")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # a duplicate delivery, if any, would come now
                stop_agent.set()
                await consumer
        finally:
            stop_load.set()
            stop_agent.set()
            await asyncio.gather(*(asyncio.to_thread(n.stop) for n in cluster.nodes))
    print(f"accepted {sum(map(len, accepted.values()))} webhooks ({sum(w.retries for w in senders)} posted again), "
          f"{sum(map(len, pushed.values()))} Telegram messages; {len(agent.deliveries)} deliveries; "
          f"poller resumed after {', '.join(f'{r:.1f}' for r in resumed)} s")
    exactly_once(agent.deliveries, sorted(everything))
    late = first_deliveries_in_order(agent.deliveries, {**accepted, **pushed}, lambda: log_rows(pg_url, started))
    print(f"{late} messages first seen as a redelivery (their first answer died with a node)")
    assert max(resumed) <= RESUME_BOUND_S, resumed
    assert not overlapping(fake.get_updates_intervals), "two nodes polled the bot at once"
    assert fake.get_updates_overlaps == 0
    offsets = [o for o in fake.get_updates_offsets if o is not None]
    assert offsets == sorted(offsets), f"a cursor went backwards: {offsets}"
    webhook_answers = {st for w in senders for st in w.statuses}
    assert 503 in webhook_answers, "PostgreSQL was stopped: webhooks must have been refused with 503 meanwhile"
    assert webhook_answers <= {200, 503}, webhook_answers  # no 500, and no 404 from a node starting up
    assert 503 in agent.statuses, "the agent API answered 503 while Redis or PostgreSQL was down"
    assert 500 not in agent.statuses
