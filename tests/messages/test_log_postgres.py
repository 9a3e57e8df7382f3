"""What only the PostgreSQL log has to prove: several processes' pools leasing from one table at once never hand out
an entry twice (``FOR UPDATE SKIP LOCKED``), and a database that goes away is ``StateUnavailable`` (nothing
applied), then works again when it is back, on the same log object."""

from __future__ import annotations

import threading
import time

import pytest
from servers import PostgresServer

from airlock.errors import StateUnavailable
from airlock.messages.model import NewEntry, Route
from airlock.messages.postgres import PostgresMessageLog
from airlock.state.postgres import RECONNECT_WINDOW_S

T0 = 1_800_000_000.0
ENTRIES = 300
LEASERS = 6


def entry(content: str, conv: str) -> NewEntry:
    return NewEntry(instance="tg", user_id="u1", user_name=None, thread_id=None, content=content, metadata_json="{}",
                    route=Route(agent="main", session_key=f"s-{conv}", conversation=conv))


def test_concurrent_leasers_on_separate_pools_never_share_an_entry(pg_url: str) -> None:
    writer = PostgresMessageLog.open(pg_url)
    writer.commit("tg", {}, [entry(str(i), f"c{i % 7}") for i in range(ENTRIES)], T0)
    logs = [PostgresMessageLog.open(pg_url) for _ in range(2)]  # two "nodes"
    got: list[list[str]] = [[] for _ in range(LEASERS)]
    start = threading.Barrier(LEASERS)

    def lease_all(i: int) -> None:
        start.wait()
        log = logs[i % 2]
        while batch := log.lease("main", 7, 60, T0):
            got[i].extend(e.id for e in batch)
            for e in batch:
                assert log.ack(e.id, e.lease_token, T0)

    threads = [threading.Thread(target=lease_all, args=(i,)) for i in range(LEASERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    leased = [eid for ids in got for eid in ids]
    assert len(leased) == ENTRIES and len(set(leased)) == ENTRIES  # each exactly once
    assert sum(1 for ids in got if ids) >= 2  # really concurrent: more than one leaser got work
    assert writer.backlog() == 0
    for log in [writer, *logs]:
        log.close()


def test_database_down_is_state_unavailable_then_recovers(stoppable_postgres: PostgresServer) -> None:
    server = stoppable_postgres
    log = PostgresMessageLog.open(server.create_schema(), connect_wait_s=1.0)
    log.commit("tg", {"state/offset": "1"}, [entry("before", "c1")], T0)
    server.stop()
    started = time.monotonic()
    with pytest.raises(StateUnavailable) as caught:
        log.commit("tg", {"state/offset": "2"}, [entry("during", "c1")], T0)
    assert time.monotonic() - started < 5  # bounded by connect_wait_s and connect_timeout, not hanging
    assert "127.0.0.1" not in str(caught.value) and str(server.port) not in str(caught.value)
    with pytest.raises(StateUnavailable):
        log.backlog()
    server.start()
    back = time.monotonic()
    while True:  # the pool reconnects within RECONNECT_WINDOW_S (+ one connect wait) of the server's return
        try:
            log.commit("tg", {"state/offset": "3"}, [entry("after", "c1")], T0)
            break
        except StateUnavailable:
            assert time.monotonic() - back < RECONNECT_WINDOW_S + 5
    assert time.monotonic() - back < RECONNECT_WINDOW_S + 5
    assert log.load_workspace("tg") == {"state/offset": "3"}
    assert [e.content for e in log.list_inbound()] == ["after", "before"]  # "during" was not applied
    log.close()


def test_platform_ids_and_pending_replacement_on_postgresql(pg_url: str) -> None:
    """World 0.2.0's outbox additions behave as on SQLite (tests/messages/test_streaming.py): a sent reply keeps its
    platform id; a not-yet-due entry takes a newer payload (and due time), a due one does not; not_before holds."""
    from airlock.messages.outbox import Outbound

    log = PostgresMessageLog.open(pg_url)
    try:
        reply = Outbound(instance="tg", conversation="pg-ids", kind="respond", payload={"content": "hi"})
        held = Outbound(instance="tg", conversation="pg-ids-2", kind="edit", payload={"content": "a"},
                        not_before=T0 + 10)
        [sent, waiting] = log.append_outbox([reply, held], T0)
        assert waiting.next_attempt_at == T0 + 10
        log.mark_sent(sent.id, T0 + 1, "4711")
        assert log.get_outbox(sent.id).platform_message_id == "4711"  # type: ignore[union-attr]
        assert log.replace_pending(waiting.id, {"content": "ab"}, T0 + 2)
        assert log.get_outbox(waiting.id).payload == {"content": "ab"}  # type: ignore[union-attr]
        assert log.replace_pending(waiting.id, {"content": "abc"}, T0 + 3, T0 + 3.5)
        assert not log.replace_pending(waiting.id, {"content": "late"}, T0 + 4)  # due now: it may be in flight
        assert log.get_outbox(waiting.id).payload == {"content": "abc"}  # type: ignore[union-attr]
    finally:
        log.close()
