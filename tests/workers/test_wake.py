"""Cross-process wake-up (``workers.wake``): what another worker appends wakes worker 0's waiting agents at once,
not at the inbox's next re-look (``messages.inbox.REFRESH_S``: a second). Real SQLite log (two connections, as two
workers have), real unix datagram socket."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from airlock.messages.inbox import REFRESH_S, Inbox
from airlock.messages.model import NewEntry, Route
from airlock.messages.sqlite import SqliteMessageLog
from airlock.workers import wake
from airlock.workers.wake import ForwardingInbox, WakeListener, WakeSender

T0 = 1_800_000_000.0


def entry(agent: str, n: int) -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=f"m{n}", metadata_json="{}",
                    route=Route(agent=agent, session_key="s", conversation=f"c{n}"))


async def test_another_worker_s_append_wakes_worker_0_s_waiting_agent_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent_side = Inbox(SqliteMessageLog(home / "state.db"))
    listener = WakeListener(home, agent_side)
    listener.start()
    other = ForwardingInbox(SqliteMessageLog(home / "state.db"), 100, visibility_s=60.0, home=home)
    try:
        waiting = asyncio.create_task(agent_side.lease("default", 1, wait_s=10))
        await asyncio.sleep(0.1)  # it looked, found nothing, waits
        started = time.monotonic()
        [appended] = other.log.commit("tg", {}, [entry("default", 1)], T0)
        other.appended(1, ["default"])  # what ChannelManager.dispatch does after the commit is durable
        [got] = await asyncio.wait_for(waiting, 10)
        assert got.id == appended.id
        assert time.monotonic() - started < REFRESH_S / 2  # woken, not found by the re-look
        assert (other.sender.sent, listener.received) == (1, 1)
    finally:
        listener.close()
        other.sender.close()
    assert not wake.wake_path(home).exists()


async def test_one_datagram_per_loop_turn_with_the_counts_by_agent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    seen: list[tuple[int, list[str] | None]] = []

    class Recording(Inbox):
        def appended(self, count: int, agents: object = None) -> None:
            seen.append((count, sorted(agents) if isinstance(agents, list) else None))

    listener = WakeListener(home, Recording(SqliteMessageLog(home / "state.db")))
    listener.start()
    sender = WakeSender(home)
    try:
        for _ in range(50):
            sender.appended(1, ["a"])
        sender.appended(2, ["b", "b"])
        await asyncio.sleep(0.1)
        sender.appended(3, None)  # agents not known: every waiter wakes
        await asyncio.sleep(0.1)
    finally:
        listener.close()
        sender.close()
    assert sender.sent == 2
    assert seen == [(52, ["a"] * 50 + ["b", "b"]), (3, None)]


async def test_without_worker_0_a_sender_drops_quietly_and_reconnects_later(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sender = WakeSender(home)
    sender.appended(1, ["a"])
    await asyncio.sleep(0.05)
    assert sender.sent == 0  # nobody listens: dropped, nothing raised
    got: list[int] = []

    class Recording(Inbox):
        def appended(self, count: int, agents: object = None) -> None:
            got.append(count)

    listener = WakeListener(home, Recording(SqliteMessageLog(home / "state.db")))
    listener.start()
    try:
        sender._retry_at = 0.0  # as if RECONNECT_S had passed
        sender.appended(4, ["a"] * 4)
        await asyncio.sleep(0.1)
    finally:
        listener.close()
        sender.close()
    assert got == [4] and sender.sent == 1


def test_datagrams_round_trip_and_malformed_ones_wake_nobody() -> None:
    assert wake.decode(wake.encode(Counter({"a": 2, "b": 1}))) == (3, ["a", "a", "b"])
    assert wake.decode(wake.encode(Counter({"*": 5}))) == (5, None)
    many = Counter({f"agent-{i}": 1 for i in range(1000)})  # more than one datagram holds
    data = wake.encode(many)
    assert len(data) <= wake.MAX_WAKE_BYTES and wake.decode(data) == (1000, None)
    for bad in (b"", b"x a\n", b"0 a\n", b"-1 a\n", b"2\n", b"\xff\xfe 1 a"):
        assert wake.decode(bad)[0] == 0
