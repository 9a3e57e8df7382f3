"""``POST /v1/messages/ack`` through a real started host (real aiohttp listener; the log on a real SQLite file, the
session's PostgreSQL, or PostgreSQL + Redis): a leased batch acknowledged in one call, per-item results with the
single ack's rules and messages, bad bodies refused with nothing acknowledged, Idempotency-Key, and the Python client.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from apihelp import (
    api,
    auth,
    inject,
    poll,
    session_fixture,  # noqa: F401 (fixture)
    started_host,
)

from airlock.agent_client import AgentApiError, AgentClient
from airlock.agentapi.models import MAX_ACK_BATCH, MAX_BODY_BYTES
from airlock.agentapi.routes import MAX_LIMIT
from airlock.host import AirlockHost
from airlock.messages.inbox import MAX_LEASE_BATCH
from airlock.messages.redisbus import GROUP, RedisBusLog

UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
"""A well-formed message id that no test commits."""
_names = itertools.count()


async def ack_batch(s: aiohttp.ClientSession, host: AirlockHost, token: str, items: list[dict[str, Any]],
                    **headers: str) -> tuple[int, Any]:
    r = await s.post(f"{api(host)}/v1/messages/ack", json={"messages": items}, headers=auth(token, **headers))
    return r.status, await r.json()


def items_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": m["id"], "lease_token": m["lease_token"]} for m in messages]


def test_a_batch_holds_as_many_as_a_lease_hands_out() -> None:
    assert MAX_ACK_BATCH == MAX_LIMIT == MAX_LEASE_BATCH == 100


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redisbus"])
async def test_a_leased_batch_is_acked_in_one_call(airlock_home: Path, s: aiohttp.ClientSession,
                                                   request: pytest.FixtureRequest, backend: str) -> None:
    config: dict[str, Any] = {"agent_visibility_timeout_s": 0.5}
    if backend != "sqlite":
        config["state"] = request.getfixturevalue("pg_url")
    if backend == "redisbus":
        config["bus"] = request.getfixturevalue("redis_server").url
    agent = f"batch{next(_names)}"  # the bus's streams live in the session's Redis: a name of this test's own
    async with started_host(airlock_home, **config) as host:
        token = host.agents.add(agent, None)[0]
        ids = [inject(host, agent, f"m{i}", chat=str(i + 1)) for i in range(12)]
        leased = await poll(s, host, token, wait=5, limit=MAX_LIMIT)
        while len(leased) < len(ids):  # the bus publishes in the background: the rest come in a later lease
            leased += await poll(s, host, token, wait=5, limit=MAX_LIMIT)
        assert sorted(m["id"] for m in leased) == sorted(ids)
        status, doc = await ack_batch(s, host, token, items_of(leased))
        assert (status, doc) == (200, {"results": [{"id": m["id"], "state": "acked"} for m in leased]})
        assert all(e.state == "acked" for e in host.log.get_many(ids).values())
        assert host.bus.unacknowledged() == 0
        await asyncio.sleep(0.6)  # past the visibility timeout: an unacknowledged message would come back now
        assert await poll(s, host, token, wait=0.3) == []
        if isinstance(host.log, RedisBusLog):  # out of the consumer group's pending list (XACK), not just PostgreSQL
            r = redis.Redis.from_url(request.getfixturevalue("redis_server").url, decode_responses=True)
            assert r.xpending(host.log.stream_key(agent), GROUP)["pending"] == 0


async def test_a_mixed_batch_answers_each_item_in_order(airlock_home: Path, s: aiohttp.ClientSession) -> None:
    async with started_host(airlock_home, agent_visibility_timeout_s=0.5) as host:
        alpha, beta = (host.agents.add(name, None)[0] for name in ("alpha", "beta"))
        stale_id = inject(host, "alpha", "leased twice")
        [first] = await poll(s, host, alpha)
        await asyncio.sleep(0.6)  # its lease expires ...
        good_id, done_id = inject(host, "alpha", "good", chat="2"), inject(host, "alpha", "done", chat="3")
        leased = {m["id"]: m for m in await poll(s, host, alpha)}  # ... and it is handed out again, new token
        assert set(leased) == {stale_id, good_id, done_id}
        r = await s.post(f"{api(host)}/v1/messages/{done_id}/ack", json={"lease_token": leased[done_id]["lease_token"]},
                         headers=auth(alpha))
        assert r.status == 200
        inject(host, "beta", "beta's")
        [theirs] = await poll(s, host, beta)
        items = [{"id": good_id, "lease_token": leased[good_id]["lease_token"]},
                 {"id": theirs["id"], "lease_token": theirs["lease_token"]},
                 {"id": stale_id, "lease_token": first["lease_token"]},
                 {"id": UNKNOWN, "lease_token": "whatever"},
                 {"id": done_id, "lease_token": leased[done_id]["lease_token"]}]
        status, doc = await ack_batch(s, host, alpha, items)
        assert status == 200
        # the single ack's answers to the failed ones, for the same requests (nothing changed by asking)
        single = [await s.post(f"{api(host)}/v1/messages/{i['id']}/ack", json={"lease_token": i["lease_token"]},
                               headers=auth(alpha)) for i in items[1:4]]
        expected = [(r.status, (await r.json())["error"]) for r in single]
        assert [(r.status) for r in single] == [404, 409, 404]
        assert doc["results"] == [
            {"id": good_id, "state": "acked"},
            {"id": theirs["id"], "error": {"status": 404, "message": expected[0][1]}},
            {"id": stale_id, "error": {"status": 409, "message": expected[1][1]}},
            {"id": UNKNOWN, "error": {"status": 404, "message": f"no message {UNKNOWN} for agent alpha"}},
            {"id": done_id, "state": "acked"}]
        states = {i: e.state for i, e in host.log.get_many([good_id, theirs["id"], stale_id, done_id]).items()}
        assert states == {good_id: "acked", theirs["id"]: "leased", stale_id: "leased", done_id: "acked"}
        assert host.bus.unacknowledged() == 2  # beta's and the stale one's


async def test_bad_bodies_are_refused_and_nothing_is_acked(airlock_home: Path, s: aiohttp.ClientSession) -> None:
    async with started_host(airlock_home) as host:
        token = host.agents.add("alpha", None)[0]
        for chat in range(3):
            inject(host, "alpha", f"m{chat}", chat=str(chat + 1))
        good = items_of(await poll(s, host, token))
        url, headers = f"{api(host)}/v1/messages/ack", auth(token)
        too_many = good + [{"id": f"{UNKNOWN[:-3]}{i:03d}", "lease_token": "t"} for i in range(MAX_ACK_BATCH - 2)]
        cases: list[tuple[Any, int, str]] = [
            ({"messages": []}, 422, "messages: List should have at least 1 item"),
            ({"messages": too_many}, 422, f"messages: List should have at most {MAX_ACK_BATCH} items"),
            ({"messages": [*good, good[1]]}, 422,
             f"messages: message {good[1]['id']} appears more than once (each id once per batch)"),
            ({"messages": [good[0], {"id": good[1]["id"]}]}, 422, "messages.1.lease_token: Field required"),
            ({"messages": good, "extra": 1}, 422, "extra: Extra inputs are not permitted"),
            ({"messages": [{"id": 5, "lease_token": "t"}]}, 422, "messages.0.id: Input should be a valid string"),
            (good, 400, "the body must be a JSON object"),
            ("{not json", 400, "the body must be a JSON object"),
            ("x" * (MAX_BODY_BYTES + 1), 413, ""),
        ]
        assert len(too_many) == MAX_ACK_BATCH + 1
        for body, status, error in cases:
            data = body if isinstance(body, str) else json.dumps(body)
            r = await s.post(url, data=data, headers={**headers, "Content-Type": "application/json"})
            doc = await r.json()
            assert r.status == status and doc["error"].startswith(error), (body if len(data) < 500 else "big", doc)
            assert "Traceback" not in doc["error"] and ".py" not in doc["error"]  # safe: no internals
        assert host.bus.unacknowledged() == 3
        assert all(e.state == "leased" for e in host.log.get_many([g["id"] for g in good]).values())


async def test_an_idempotency_key_replays_the_first_answer(airlock_home: Path, s: aiohttp.ClientSession) -> None:
    async with started_host(airlock_home) as host:
        token = host.agents.add("alpha", None)[0]
        inject(host, "alpha", "one")
        [m] = await poll(s, host, token)
        items = [*items_of([m]), {"id": UNKNOWN, "lease_token": "t"}]
        url = f"{api(host)}/v1/messages/ack"
        first = await s.post(url, json={"messages": items}, headers=auth(token, **{"Idempotency-Key": "batch-1"}))
        assert first.status == 200 and "Idempotent-Replayed" not in first.headers
        answer = await first.json()
        assert [("state" in x, x.get("error", {}).get("status")) for x in answer["results"]] == [(True, None),
                                                                                                 (False, 404)]
        again = await s.post(url, json={"messages": items}, headers=auth(token, **{"Idempotency-Key": "batch-1"}))
        assert (again.status, await again.json()) == (200, answer)
        assert again.headers["Idempotent-Replayed"] == "true"
        other = await s.post(url, json={"messages": items[:1]}, headers=auth(token, **{"Idempotency-Key": "batch-1"}))
        assert other.status == 422 and "another request" in (await other.json())["error"]


async def test_the_python_client_acks_a_batch(airlock_home: Path) -> None:
    async with started_host(airlock_home) as host:
        token = host.agents.add("alpha", None)[0]
        for chat in range(4):
            inject(host, "alpha", f"m{chat}", chat=str(chat + 1))
        async with AgentClient(api(host), token) as agent:
            leased = await agent.messages(wait=5, limit=MAX_LIMIT)
            results = await agent.ack_many([(m.id, m.lease_token) for m in leased[:3]] + [(UNKNOWN, "t")],
                                           idempotency_key="k1")
            assert [(r.id, r.acked, r.status) for r in results] == [
                *((m.id, True, None) for m in leased[:3]), (UNKNOWN, False, 404)]
            assert results[-1].error == f"no message {UNKNOWN} for agent alpha"
            with pytest.raises(AgentApiError) as bad:
                await agent.ack_many([])
            assert bad.value.status == 422
        assert host.bus.unacknowledged() == 1
