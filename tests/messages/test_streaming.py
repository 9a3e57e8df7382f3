"""Streamed replies and edits on the real SQLite log with an injected clock: the edit pacing per conversation
(``EDIT_INTERVAL_S``), coalescing of texts into the waiting edit, the final text last, the held head of a channel
without on-edit, the outbox sender's send-time gate, and the outbox's platform message ids (with the column added
to a ``state.db`` made before world 0.2.0)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.channels.channel import CallOutcome
from airlock.messages.model import OutboxEntry
from airlock.messages.outbox import Outbound, OutboxSender
from airlock.messages.ratelimit import SendRate
from airlock.messages.sqlite import SqliteMessageLog
from airlock.messages.streaming import EDIT_INTERVAL_S, STREAM_HOLD_S, EditPacer, StreamError, StreamService

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(tmp_path: Path) -> SqliteMessageLog:
    return SqliteMessageLog(tmp_path / "state.db")


def head(text: str = "first", conv: str = "tg:1") -> Outbound:
    return Outbound(instance="tg", conversation=conv, kind="respond",
                    payload={"content": text, "thread_id": None, "metadata_json": '{"chat_id": 1}'}, in_reply_to="m1")


async def open_stream(log: SqliteMessageLog, clock: Clock, *, can_edit: bool = True) -> tuple[StreamService, str]:
    service = StreamService(log, lambda _instance: can_edit, lambda: None, clock=clock)
    [entry] = log.append_outbox([service.head(head())], clock())
    service.opened(entry)
    return service, entry.id


def edits(log: SqliteMessageLog) -> list[OutboxEntry]:
    return sorted((e for e in log.list_outbox() if e.kind == "edit"), key=lambda e: e.seq)


def test_the_pacer_gives_each_conversation_one_slot_per_interval() -> None:
    clock = Clock()
    pacer = EditPacer(clock=clock)
    assert [pacer.reserve("a"), pacer.reserve("a"), pacer.reserve("b")] == [T0, T0 + EDIT_INTERVAL_S, T0]
    clock.now = T0 + 10
    assert pacer.reserve("a") == T0 + 10  # an idle conversation's next edit may go at once


async def test_a_fast_stream_is_coalesced_into_paced_edits_with_the_final_text_last(log: SqliteMessageLog) -> None:
    clock = Clock()
    service, head_id = await open_stream(log, clock)
    texts = [f"part {i}" for i in range(1, 21)]
    for i, text in enumerate(texts):  # 20 texts, 0.1 s apart: 2 s of streaming
        clock.now = T0 + 0.1 * (i + 1)
        await service.edit(head_id, text)
        # the sender takes whatever is due (as the outbox would), so a newer text cannot join it any more
        for due in log.due_outbox(clock.now, 10):
            if due.kind == "edit":
                log.mark_sent(due.id, clock.now)
    clock.now = T0 + 2.05
    await service.edit(head_id, "the end", final=True)
    made = edits(log)
    slots = [e.next_attempt_at for e in made]
    assert all(b - a >= EDIT_INTERVAL_S for a, b in itertools.pairwise(slots)), slots
    assert len(made) <= 4, "20 texts in 2 s became at most one edit per second, plus the final one"
    assert made[-1].payload["content"] == "the end" and made[-1].payload.get("final") is True
    assert all(e.payload["target"] == head_id for e in made)
    sent = [e.payload["content"] for e in made[:-1]]
    assert sent == sorted(sent, key=texts.index), "texts never go backwards"
    with pytest.raises(StreamError, match="finished"):
        await service.edit(head_id, "more")


async def test_a_waiting_edit_takes_the_newest_text(log: SqliteMessageLog) -> None:
    clock = Clock()
    service, head_id = await open_stream(log, clock)
    await service.edit(head_id, "a")          # slot T0: due now
    first = edits(log)[0]
    log.mark_sent(first.id, clock.now)
    await service.edit(head_id, "ab")         # slot T0 + 1: waits
    await service.edit(head_id, "abc")        # coalesced into it
    await service.edit(head_id, "abcd", final=True)
    made = edits(log)
    assert [e.payload["content"] for e in made] == ["a", "abcd"]
    assert made[1].next_attempt_at == T0 + EDIT_INTERVAL_S and made[1].payload["final"] is True


async def test_without_on_edit_the_head_is_held_and_released_with_the_final_text(log: SqliteMessageLog) -> None:
    clock = Clock()
    service, head_id = await open_stream(log, clock, can_edit=False)
    held = log.get_outbox(head_id)
    assert held is not None and held.next_attempt_at == T0 + STREAM_HOLD_S
    assert log.due_outbox(T0 + 1, 10) == []
    clock.now = T0 + 1
    await service.edit(head_id, "partial")
    clock.now = T0 + 2
    await service.edit(head_id, "whole", final=True)
    [entry] = log.due_outbox(T0 + 2, 10)
    assert (entry.id, entry.payload["content"], entry.kind) == (head_id, "whole", "respond")
    assert edits(log) == []


async def test_a_one_off_edit_needs_on_edit(log: SqliteMessageLog) -> None:
    clock = Clock()
    [reply] = log.append_outbox([head("sent")], clock())
    plain = StreamService(log, lambda _i: False, lambda: None, clock=clock)
    with pytest.raises(StreamError, match="cannot edit"):
        await plain.edit(reply.id, "new")
    with pytest.raises(StreamError, match="no reply"):
        await plain.edit("01ARZ3NDEKTSV4RRFFQ69G5FAV", "new")
    editing = StreamService(log, lambda _i: True, lambda: None, clock=clock)
    entry = await editing.edit(reply.id, "new")
    assert entry.kind == "edit" and "final" not in entry.payload and "stream_part" not in entry.payload


async def test_the_sender_holds_edits_of_a_conversation_an_interval_apart(log: SqliteMessageLog) -> None:
    """Whatever made two edits due together (a delayed send, a restart), they go out EDIT_INTERVAL_S apart by the
    sender's clock: the second waits until the injected clock moves on."""
    clock = Clock()
    delivered: list[tuple[str, float]] = []

    async def deliver(entry: OutboxEntry) -> CallOutcome:
        delivered.append((entry.payload["content"], clock.now))
        return CallOutcome(callback=entry.kind)

    def rate(_instance: str) -> SendRate:
        return SendRate(1000, 1000, 1000, 1000)

    log.append_outbox([Outbound(instance="tg", conversation="c", kind="edit", payload={"content": t})
                       for t in ("one", "two")], T0)
    sender = OutboxSender(log, deliver, rate, clock=clock)
    sender.start()
    try:
        await _until(lambda: len(delivered) == 1)
        await asyncio.sleep(0.3)
        assert [c for c, _ in delivered] == ["one"], "the second edit waits for the clock"
        clock.now = T0 + EDIT_INTERVAL_S
        sender.wake()
        await _until(lambda: len(delivered) == 2)
        assert delivered[1] == ("two", T0 + EDIT_INTERVAL_S)
    finally:
        await sender.stop()


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline
        await asyncio.sleep(0.02)


def test_sent_replies_keep_their_platform_id(log: SqliteMessageLog) -> None:
    [reply] = log.append_outbox([head()], T0)
    log.mark_sent(reply.id, T0 + 1, "4711")
    stored = log.get_outbox(reply.id)
    assert stored is not None and (stored.state, stored.platform_message_id) == ("sent", "4711")


def test_a_state_db_from_before_world_0_2_0_gets_the_column(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SqliteMessageLog(db).close()
    conn = sqlite3.connect(db)  # the 0.1.0 era table: no platform_message_id
    conn.execute("ALTER TABLE outbox DROP COLUMN platform_message_id")
    conn.execute("INSERT INTO outbox (id, instance, conversation, kind, payload_json, state, next_attempt_at, "
                 "created_at, updated_at) VALUES ('old', 'tg', 'c', 'respond', '{}', 'sent', 0, 0, 0)")
    conn.commit()
    conn.close()
    log = SqliteMessageLog(db)
    old = log.get_outbox("old")
    assert old is not None and old.platform_message_id is None
    [reply] = log.append_outbox([head()], T0)
    log.mark_sent(reply.id, T0, "9")
    assert log.get_outbox(reply.id).platform_message_id == "9"  # type: ignore[union-attr]


async def test_an_unchanged_text_is_not_sent_again(log: SqliteMessageLog) -> None:
    clock = Clock()
    service, head_id = await open_stream(log, clock)
    assert (await service.edit(head_id, "first")).id == head_id  # the head's own text: nothing new
    await service.edit(head_id, "second")
    log.mark_sent(edits(log)[0].id, clock.now)
    clock.now = T0 + 5
    await service.edit(head_id, "second")
    assert [e.payload["content"] for e in edits(log)] == ["second"]
    await service.edit(head_id, "second", final=True)  # the final text is always sent: it closes the stream
    assert [e.payload.get("final") for e in edits(log)] == [None, True]
