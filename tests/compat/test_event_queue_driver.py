"""``EventQueue`` scheduling with a real workspace and a scripted on-poll (the part a guest cannot show quickly):
frames that come while a poll runs get another poll, polls never overlap, a full queue holds delivery back, and
stopping waits for the poll in progress."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from airlock.capabilities.workspace import Workspace
from airlock.channels.event_queue import BATCH_PATH, MAX_QUEUE_ITEMS, EventQueue

T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


class Guest:
    """An on-poll that records each batch (and clears it, as a guest does), optionally held until released;
    ``held_back`` lists emit-rate waits to answer first (such a poll applies nothing, so the batch stays)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws, self.batches, self.running, self.overlaps = ws, [], 0, 0
        self.held_back: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def poll(self) -> float | None:
        self.running += 1
        self.overlaps += self.running > 1
        self.entered.set()
        await self.gate.wait()
        self.running -= 1
        if self.held_back:
            return self.held_back.pop(0)
        self.batches.append(json.loads(self.ws.get(BATCH_PATH) or "[]"))
        self.ws._values[BATCH_PATH] = "[]"  # the guest's clear, without a callback
        return None


def make(**kw: Any) -> tuple[EventQueue, Guest]:
    ws = Workspace("t")
    guest = Guest(ws)
    q = EventQueue("t", ws, run=in_thread, poll=guest.poll, lane=asyncio.Lock(), **kw)
    return q, guest


async def settle(q: EventQueue) -> None:
    for _ in range(500):
        if q._task is None or q._task.done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("queue never settled")


async def test_frames_during_a_poll_get_another_poll_and_polls_never_overlap() -> None:
    q, guest = make()
    guest.gate.clear()
    await q.deliver("a")
    await guest.entered.wait()
    await q.deliver("b")
    await q.deliver("c")
    guest.gate.set()
    await settle(q)
    assert guest.batches == [["a"], ["b", "c"]] and guest.overlaps == 0 and q.polls == 2


async def test_a_full_queue_holds_delivery_until_a_batch_is_taken() -> None:
    q, guest = make()
    guest.gate.clear()
    await q.deliver("first")
    await guest.entered.wait()  # the poll of "first" holds the lane
    for i in range(MAX_QUEUE_ITEMS):
        await q.deliver(f"f{i}")
    blocked = asyncio.create_task(q.deliver("one too many"))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # waits instead of dropping the oldest frame
    guest.gate.set()
    await asyncio.wait_for(blocked, 5)
    await settle(q)
    frames = [f for batch in guest.batches for f in batch]
    assert frames == ["first", *[f"f{i}" for i in range(MAX_QUEUE_ITEMS)], "one too many"]


async def test_stop_waits_for_the_poll_in_progress_and_takes_nothing_after() -> None:
    q, guest = make()
    guest.gate.clear()
    await q.deliver("x")
    await guest.entered.wait()
    await q.deliver("y")
    stopping = asyncio.create_task(q.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # on-shutdown must not start beside this poll
    guest.gate.set()
    await asyncio.wait_for(stopping, 5)
    assert guest.batches == [["x"]] and q.polls == 1  # "y" stays queued (durable queues keep it for next time)


async def test_a_poll_held_back_by_the_emit_rate_runs_again_on_the_same_batch() -> None:
    drops: list[int] = []
    q, guest = make(on_drop=drops.append)
    guest.held_back = [0.05, 0.05]
    guest.gate.clear()
    await q.deliver("kept")
    await guest.entered.wait()  # the first poll is on the batch ["kept"]
    await q.deliver("later")
    guest.gate.set()
    await settle(q)
    assert guest.batches == [["kept"], ["later"]] and q.polls == 4  # two waits, then applied: nothing replaced
    assert drops == []


async def test_no_poll_while_the_agent_side_queue_is_full() -> None:
    room = asyncio.Event()
    q, guest = make(wait_for_room=room.wait)
    await q.deliver("waits")
    await asyncio.sleep(0.05)
    assert q.polls == 0 and guest.batches == []
    room.set()
    await settle(q)
    assert guest.batches == [["waits"]]
