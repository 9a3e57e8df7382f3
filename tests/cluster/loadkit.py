"""The load of the cluster failure tests: webhook senders that retry until a 2xx answer (a platform's
at-least-once), an agent over the agent API of whichever node answers, and the checks on what the agent got.

- :class:`WebhookSender`: one conversation (one sender id) posting numbered messages to the template-rust webhook,
  each to the next node in turn; a message not answered 2xx (refused, 503, connection cut by a kill) is posted
  again, to the other node, with the same platform id, until one answers 2xx. ``accepted`` is the order of the 2xx
  answers; ``statuses`` every status seen (a 500 would be a defect: nothing may fail that way).
- :class:`ClusterAgent`: leases (``GET /v1/messages``) and acks through one node's agent API after the other, with
  its one token (agents are the cluster's); a node that does not answer is skipped. It records every
  delivery, duplicates included; the checks dedupe by message id, as an agent must.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from clusterkit import WEBHOOK_SECRET
from nodeproc import Node

RETRY_PAUSE_S = 0.1
"""A sender's pause before posting a refused message again."""
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class WebhookSender:
    """One conversation's sender (module docstring)."""

    user: str
    nodes: list[Node]
    pause_s: float
    accepted: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    retries: int = 0

    async def run(self, s: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        turn = int(self.user.removeprefix("u"))
        while not stop.is_set():
            text = f"{self.user}-{len(self.accepted):04d}"
            while True:  # the same message (same id) until some node answers 2xx
                node = self.nodes[turn % len(self.nodes)]
                turn += 1
                if await self._post(s, node, text):
                    break
                self.retries += 1
                await asyncio.sleep(RETRY_PAUSE_S)
            self.accepted.append(text)
            await asyncio.sleep(self.pause_s)

    async def _post(self, s: aiohttp.ClientSession, node: Node, text: str) -> bool:
        try:
            async with s.post(f"{node.url}/webhook/template-rust", json={"user": self.user, "text": text, "id": text},
                              headers={"X-Airlock-Webhook-Secret": WEBHOOK_SECRET}, timeout=REQUEST_TIMEOUT) as r:
                self.statuses.append(r.status)
                return 200 <= r.status < 300
        except (aiohttp.ClientError, TimeoutError):  # killed, restarting: not accepted, post it again
            return False


@dataclass
class Delivery:
    id: str
    content: str
    conversation: str
    attempts: int
    at: float


@dataclass
class ClusterAgent:
    """The agent (module docstring)."""

    nodes: list[Node]
    token: str
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def run(self, s: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        turn = 0
        while not stop.is_set():
            i = turn % len(self.nodes)
            turn += 1
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):  # that node is down: the other one
                await self._round(s, self.nodes[i], {"Authorization": f"Bearer {self.token}"})
                continue
            await asyncio.sleep(0.05)

    async def _round(self, s: aiohttp.ClientSession, node: Node, auth: dict[str, str]) -> None:
        async with s.get(f"{node.api_url}/messages?wait=1&limit=20", headers=auth, timeout=REQUEST_TIMEOUT) as r:
            self.statuses.append(r.status)
            if r.status != 200:
                await asyncio.sleep(0.1)
                return
            batch = (await r.json())["messages"]
        for m in batch:
            self.deliveries.append(Delivery(m["id"], m["content"], m["conversation"], m["attempts"],
                                            time.monotonic()))
            async with s.post(f"{node.api_url}/messages/{m['id']}/ack", headers=auth,
                              json={"lease_token": m["lease_token"]}, timeout=REQUEST_TIMEOUT) as r:
                self.statuses.append(r.status)  # 409: acked already (a redelivery of one acked meanwhile)

    def contents(self) -> set[str]:
        return {d.content for d in self.deliveries}


def exactly_once(deliveries: list[Delivery], sent: list[str]) -> None:
    """After dedupe by message id, each of ``sent`` was delivered under exactly one id, and nothing else was."""
    ids_of: dict[str, set[str]] = defaultdict(set)
    content_of: dict[str, str] = {}
    for d in deliveries:
        assert content_of.setdefault(d.id, d.content) == d.content, f"message {d.id} changed content"
        ids_of[d.content].add(d.id)
    twice = {c: ids for c, ids in ids_of.items() if len(ids) > 1}
    assert not twice, f"accepted once, delivered as several messages: {twice}"
    missing = sorted(set(sent) - set(ids_of))
    assert not missing, f"{len(missing)} accepted messages never reached the agent: {missing[:20]}"
    assert set(ids_of) == set(sent), f"delivered but never sent: {sorted(set(ids_of) - set(sent))[:20]}"


def first_deliveries_in_order(deliveries: list[Delivery], order: dict[str, list[str]],
                              explain: Callable[[], str] = str) -> int:
    """Each conversation's first deliveries (``attempts`` 1: the log handing the message out for the first time)
    arrived in the order the conversation was sent (``order``: sender -> contents in order; a content is
    ``SENDER-NUMBER``). A redelivery (``attempts`` > 1: its first delivery's answer was lost with a killed node) may
    come after later messages (``messages.log``'s rule). Returns how many messages the agent first saw as a
    redelivery."""
    seen: set[str] = set()
    firsts: dict[str, list[str]] = defaultdict(list)
    conversation_of: dict[str, str] = {}
    late = 0
    for d in deliveries:
        if d.id in seen:
            continue
        seen.add(d.id)
        sender = d.content.split("-", 1)[0]
        assert conversation_of.setdefault(sender, d.conversation) == d.conversation, "one sender, two conversations"
        if d.attempts == 1:
            firsts[sender].append(d.content)
        else:
            late += 1
    for sender, got in firsts.items():
        rank = {c: i for i, c in enumerate(order[sender])}
        wrong = [(a, b) for a, b in itertools.pairwise(got) if rank[a] > rank[b]]
        if wrong:
            relevant = "\n".join(line for line in explain().splitlines() if line.split(" ")[0] in wrong[0])
            raise AssertionError(f"{sender}: first deliveries out of order: {wrong[:5]} "
                                 f"({_when(deliveries, wrong[0])})\n{relevant}")
    return late


def _when(deliveries: list[Delivery], pair: tuple[str, str]) -> str:
    """When the deliveries of ``pair`` came (monotonic seconds) and as which attempt."""
    return "; ".join(f"{d.content} at {d.at:.2f} attempt {d.attempts}" for d in deliveries if d.content in pair)
