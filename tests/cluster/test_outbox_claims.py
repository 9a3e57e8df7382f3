"""The outbox on a cluster: two senders, each on its own pool (two nodes), read one PostgreSQL outbox and deliver
to a fake platform on 127.0.0.1. Every reply reaches the platform once, in order per conversation, never two of
one conversation at once (``messages.postgres.due_outbox`` claims; issue 12, "Cluster of nodes")."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from airlock.channels.outcome import CallOutcome
from airlock.messages.model import OutboxEntry
from airlock.messages.outbox import Outbound, OutboxSender
from airlock.messages.postgres import PostgresMessageLog
from airlock.messages.ratelimit import SendRate

CONVERSATIONS = 8
PER_CONVERSATION = 6
PLATFORM_DELAY_S = 0.02
"""The fake platform's answer time: long enough that both senders look at the outbox while a send is running."""
FAST = SendRate(1000.0, 1000.0, 1000.0, 1000.0)


class FakePlatform:
    """Records every send it receives and whether two sends of one conversation overlapped."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (conversation, entry id), in arrival order
        self.open: dict[str, int] = defaultdict(int)
        self.overlaps = 0

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        conv = str(body["conversation"])
        self.open[conv] += 1
        self.overlaps += self.open[conv] > 1
        try:
            await asyncio.sleep(PLATFORM_DELAY_S)
            self.sent.append((conv, str(body["id"])))
        finally:
            self.open[conv] -= 1
        return web.json_response({"ok": True})


@pytest.fixture
async def platform() -> AsyncIterator[tuple[FakePlatform, str]]:
    fake = FakePlatform()
    app = web.Application()
    app.router.add_post("/send", fake.send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}/send"
    await runner.cleanup()


def poster(session: aiohttp.ClientSession, url: str) -> Callable[[OutboxEntry], asyncio.Future[CallOutcome]]:
    async def deliver(entry: OutboxEntry) -> CallOutcome:
        async with session.post(url, json={"id": entry.id, "conversation": entry.conversation}) as resp:
            resp.raise_for_status()
        return CallOutcome(callback=entry.kind)
    return deliver  # type: ignore[return-value]


async def test_two_nodes_send_each_reply_once_in_order(pg_url: str, platform: tuple[FakePlatform, str]) -> None:
    fake, url = platform
    logs = [PostgresMessageLog.open(pg_url), PostgresMessageLog.open(pg_url)]
    appended: dict[str, list[str]] = defaultdict(list)
    outbound = [Outbound(instance="tg", conversation=f"c{c}", kind="reply", payload={"content": f"{c}.{i}"})
                for i in range(PER_CONVERSATION) for c in range(CONVERSATIONS)]
    for o in outbound:
        appended[o.conversation].append(o.id)
    await asyncio.to_thread(logs[0].append_outbox, outbound, 0.0)
    async with aiohttp.ClientSession() as session:
        senders = [OutboxSender(log, poster(session, url), lambda _i: FAST) for log in logs]
        for s in senders:
            s.start()
        try:
            async with asyncio.timeout(30):
                while len(fake.sent) < len(outbound):
                    for s in senders:  # both nodes look all the time (as on new appends): the widest race
                        s.wake()
                    await asyncio.sleep(0.005)
            await asyncio.sleep(0.3)  # a duplicate, if any, would arrive now
        finally:
            for s in senders:
                await s.stop()
            for log in logs:
                log.close()
    ids = [i for _c, i in fake.sent]
    assert len(ids) == len(set(ids)) == len(outbound)
    per_conv: dict[str, list[str]] = defaultdict(list)
    for conv, eid in fake.sent:
        per_conv[conv].append(eid)
    assert per_conv == appended  # never reordered within a conversation
    assert fake.overlaps == 0
    assert senders[0].sent > 0 and senders[1].sent > 0  # both nodes did send: the claims split the work
    assert senders[0].sent + senders[1].sent == len(outbound)


def test_a_claim_hides_the_conversation_until_it_ends_or_expires(pg_url: str) -> None:
    a, b = PostgresMessageLog.open(pg_url), PostgresMessageLog.open(pg_url)
    try:
        first, second = a.append_outbox([Outbound(instance="tg", conversation="c", kind="reply", payload={}),
                                          Outbound(instance="tg", conversation="c", kind="reply", payload={})], 0.0)
        assert [e.id for e in a.due_outbox(1.0, 10, claim_s=5.0)] == [first.id]
        assert b.due_outbox(1.0, 10) == []  # claimed: not the entry, nor the next one of its conversation
        assert [e.id for e in b.due_outbox(6.0, 10)] == [first.id]  # the claim expired (its node died)
        b.release_outbox([first.id])
        a.renew_outbox([first.id], 100.0)  # a released entry is not claimed again by a renewal
        assert [e.id for e in a.due_outbox(7.0, 10, claim_s=5.0)] == [first.id]
        a.renew_outbox([first.id], 20.0)
        assert b.due_outbox(15.0, 10) == []  # renewed past its first expiry
        a.reschedule(first.id, 30.0, "429", 16.0)  # the outcome ends the claim; not due before 30
        assert b.due_outbox(17.0, 10) == []
        assert [e.id for e in b.due_outbox(30.0, 10)] == [first.id]
        b.mark_sent(first.id, 31.0)
        assert [e.id for e in a.due_outbox(31.0, 10)] == [second.id]
    finally:
        a.close()
        b.close()
