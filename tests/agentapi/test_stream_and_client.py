"""WebSocket /v1/stream and the typed Python client (airlock.agent_client), against a real started host."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from apihelp import (
    api,
    auth,
    host_fixture,  # noqa: F401 (fixture)
    inject,
    poll,
)

from airlock.agent_client import AgentApiError, AgentClient
from airlock.agentapi.stream import MAX_IN_FLIGHT
from airlock.host import AirlockHost


async def test_stream_pushes_messages_and_takes_acks_and_replies(host: AirlockHost) -> None:
    token = host.agents.add("ws", None)[0]
    first = inject(host, "ws", "one", chat="1")
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{api(host)}/v1/stream", headers=auth(token)) as ws:
        frame = await asyncio.wait_for(ws.receive_json(), 5)
        assert frame["type"] == "message" and frame["message"]["id"] == first
        await ws.send_json({"type": "ack", "id": first, "lease_token": frame["message"]["lease_token"]})
        assert await asyncio.wait_for(ws.receive_json(), 5) == {"type": "acked", "id": first}
        second = inject(host, "ws", "two", chat="2")  # arrives while connected: pushed at once
        frame = await asyncio.wait_for(ws.receive_json(), 5)
        assert frame["message"]["id"] == second
        await ws.send_json({"type": "reply", "id": second, "lease_token": frame["message"]["lease_token"],
                            "text": "answer"})
        answer = await asyncio.wait_for(ws.receive_json(), 5)
        assert answer["type"] == "replied" and host.log.get_outbox(answer["outbox_id"]) is not None
        await ws.send_str("not json")
        bad = await asyncio.wait_for(ws.receive_json(), 5)
        assert bad["type"] == "error" and bad["status"] == 400
        await ws.send_json({"type": "ack", "id": second, "lease_token": "stale"})  # acked already: fine
        assert (await asyncio.wait_for(ws.receive_json(), 5))["type"] == "acked"
    assert host.bus.unacknowledged() == 0


async def test_stream_flow_control_and_leases_given_back_on_close(host: AirlockHost) -> None:
    token = host.agents.add("ws", None)[0]
    for chat in range(MAX_IN_FLIGHT + 3):
        inject(host, "ws", f"m{chat}", chat=str(chat + 1))
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{api(host)}/v1/stream", headers=auth(token)) as ws:
            got = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(MAX_IN_FLIGHT)]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.receive_json(), 0.5)  # no more than MAX_IN_FLIGHT unacked
            m = got[0]["message"]
            await ws.send_json({"type": "ack", "id": m["id"], "lease_token": m["lease_token"]})
            assert (await asyncio.wait_for(ws.receive_json(), 5))["type"] == "acked"
            assert (await asyncio.wait_for(ws.receive_json(), 5))["type"] == "message"  # room again
        # closed with MAX_IN_FLIGHT messages held: they are handed out again at once, not after 30 s
        await asyncio.sleep(0.2)
        again = await poll(s, host, token, wait=2, limit=100)
        assert len(again) == MAX_IN_FLIGHT + 2


async def test_typed_client(host: AirlockHost) -> None:
    token = host.agents.add("py", None)[0]
    mid = inject(host, "py", "hi there")
    async with AgentClient(api(host), token) as agent:
        [m] = await agent.messages(wait=1)
        assert (m.id, m.content, m.user_name, m.metadata) == (mid, "hi there", "alice", {"chat_id": 1})
        accepted = await agent.reply(m.id, "hello", lease_token=m.lease_token, idempotency_key="k1")
        again = await agent.reply(m.id, "hello", lease_token=m.lease_token, idempotency_key="k1")
        assert accepted == again and accepted.state == "pending"
        state = await agent.outbox(accepted.outbox_id)
        assert state.kind == "respond" and state.id == accepted.outbox_id
        with pytest.raises(AgentApiError) as err:
            await agent.ack("01ARZ3NDEKTSV4RRFFQ69G5FAV", "x")
        assert err.value.status == 404
        with pytest.raises(AgentApiError) as err:
            await agent.broadcast("nope", "1", "hi")
        assert err.value.status == 404
        assert await agent.messages(wait=0) == []
    async with AgentClient(api(host), "wrong") as stranger:
        with pytest.raises(AgentApiError) as err:
            await stranger.messages(wait=0)
        assert err.value.status == 401


async def test_typed_client_streams_a_reply(host: AirlockHost) -> None:
    """reply(stream=True) then edit(): on a channel that is not running (none here) the stream's head is held and
    takes each newer text; the final one releases it; a finished stream refuses more (409)."""
    token = host.agents.add("py", None)[0]
    inject(host, "py", "hi there")
    async with AgentClient(api(host), token) as agent:
        [m] = await agent.messages(wait=1)
        head = await agent.reply(m.id, "par", lease_token=m.lease_token, stream=True)
        held = host.log.get_outbox(head.outbox_id)
        assert held is not None and held.payload["stream"] and held.next_attempt_at > time.time() + 60
        assert (await agent.edit(head.outbox_id, "partial")).outbox_id == head.outbox_id
        final = await agent.edit(head.outbox_id, "partial, then whole", final=True)
        assert final.outbox_id == head.outbox_id
        released = host.log.get_outbox(head.outbox_id)
        assert released is not None and released.payload["content"] == "partial, then whole"
        assert released.next_attempt_at <= time.time()
        with pytest.raises(AgentApiError) as err:
            await agent.edit(head.outbox_id, "more")
        assert err.value.status == 409
        with pytest.raises(AgentApiError) as err:
            await agent.edit("01ARZ3NDEKTSV4RRFFQ69G5FAV", "x")
        assert err.value.status == 404
