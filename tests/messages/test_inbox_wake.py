"""The inbox wakes only the agents an append concerns, one waiter per entry (real SQLite log).

Before, every append and every acknowledgement woke every waiting lease of every agent: with 8 waiting agents one
message cost 8 leases (8 thread hops and 8 SQLite transactions) on arrival and 8 more on its ack.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from airlock.messages.inbox import Inbox
from airlock.messages.model import Entry, NewEntry, Route
from airlock.messages.sqlite import SqliteMessageLog

T0 = 1_800_000_000.0


class CountingLog(SqliteMessageLog):
    """The real log, counting the leases it ran (on the event loop, ``try_lease``, or in a worker thread)."""

    leases = 0

    def lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        self.leases += 1
        return super().lease(agent, limit, visibility_s, now)

    def try_lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry] | None:
        leased = super().try_lease(agent, limit, visibility_s, now)
        self.leases += leased is not None  # None: it ran nothing, ``lease`` follows
        return leased


def entry(agent: str, content: str) -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=content, metadata_json="{}",
                    route=Route(agent=agent, session_key=f"s-{agent}", conversation=f"c-{agent}"))


async def test_an_append_wakes_one_waiter_of_its_agent_and_an_ack_wakes_none(tmp_path: Path) -> None:
    log = CountingLog(tmp_path / "state.db")
    inbox = Inbox(log)
    waiting_a = [asyncio.create_task(inbox.lease("a", 1, wait_s=5)) for _ in range(8)]
    waiting_b = [asyncio.create_task(inbox.lease("b", 1, wait_s=5)) for _ in range(4)]
    while log.leases < 12:  # every waiter looked once and found nothing
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    [e] = log.commit("tg", {}, [entry("a", "for a")], T0)
    inbox.appended(1, ["a"])
    done, _ = await asyncio.wait(waiting_a, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    [got] = (await next(iter(done)))
    assert got.id == e.id
    await asyncio.sleep(0.1)
    assert log.leases == 13  # one more lease: the woken waiter's; no other a, no b
    assert await inbox.ack(got.id, got.lease_token)
    await asyncio.sleep(0.1)
    assert log.leases == 13  # an acknowledgement makes nothing ready: nobody woke
    log.commit("tg", {}, [entry("b", "for b1"), entry("b", "for b2")], T0)
    inbox.appended(2, ["b", "b"])
    for _ in range(100):
        if sum(t.done() for t in waiting_b) == 2:
            break
        await asyncio.sleep(0.02)
    assert sorted(m.content for t in waiting_b if t.done() for m in t.result()) == ["for b1", "for b2"]
    assert log.leases == 15 and sum(t.done() for t in waiting_a) == 1  # two b waiters woke, two still wait
    for task in [*waiting_a, *waiting_b]:
        task.cancel()
    await asyncio.gather(*waiting_a, *waiting_b, return_exceptions=True)
    log.close()
