"""The agent HTTP API through a real started host: real aiohttp listener, real SQLite log and agents registry."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from apihelp import (
    Tokens,
    api,
    auth,
    host_fixture,  # noqa: F401 (fixture)
    inject,
    poll,
    session_fixture,  # noqa: F401 (fixture)
    started_host,
    tokens_fixture,  # noqa: F401 (fixture)
)

from airlock.agentapi.models import MAX_BODY_BYTES, MAX_TEXT_CHARS
from airlock.agentapi.service import MAX_WAIT_S
from airlock.host import AirlockHost
from airlock.messages.model import AttachmentRef


async def test_a_token_is_required(host: AirlockHost, tokens: Tokens, s: aiohttp.ClientSession) -> None:
    inject(host, "alpha", "secret stuff")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {tokens['alpha']}"},
                    {"Authorization": "Bearer " + "x" * 5000}):
        r = await s.get(f"{api(host)}/v1/messages", headers=headers)
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(await r.json()) == {"error"}
    r = await s.post(f"{api(host)}/v1/broadcast", json={"channel": "x", "user_id": "1", "content": "hi"})
    assert r.status == 401
    # the OpenAPI document is public; unknown paths answer JSON 404
    assert (await s.get(f"{api(host)}/v1/openapi.json")).status == 200
    r = await s.get(f"{api(host)}/v1/nothing", headers=auth(tokens["alpha"]))
    assert r.status == 404 and "error" in await r.json()
    # a removed agent's token stops working at once
    host.agents.remove("alpha", None)
    assert (await s.get(f"{api(host)}/v1/messages", headers=auth(tokens["alpha"]))).status == 401


async def test_agents_see_only_their_own_messages(host: AirlockHost, tokens: Tokens,
                                                  s: aiohttp.ClientSession) -> None:
    mine = inject(host, "alpha", "for alpha")
    assert await poll(s, host, tokens["beta"]) == []
    [m] = await poll(s, host, tokens["alpha"])
    assert (m["id"], m["content"], m["channel"], m["attempts"]) == (mine, "for alpha", "telegram", 1)
    assert m["session_key"] == "agent:alpha:telegram:1" and m["metadata"] == {"chat_id": 1}
    base = f"{api(host)}/v1/messages/{mine}"
    beta = auth(tokens["beta"])
    for path, body in (("ack", {"lease_token": m["lease_token"]}), ("reply", {"text": "hijack"}),
                       ("status", {"status": "thinking"})):
        r = await s.post(f"{base}/{path}", json=body, headers=beta)
        assert r.status == 404, path
    r = await s.post(f"{base}/reply", json={"text": "mine", "lease_token": m["lease_token"]},
                     headers=auth(tokens["alpha"]))
    assert r.status == 202
    outbox_id = (await r.json())["outbox_id"]
    assert (await s.get(f"{api(host)}/v1/outbox/{outbox_id}", headers=beta)).status == 404
    r = await s.get(f"{api(host)}/v1/outbox/{outbox_id}", headers=auth(tokens["alpha"]))
    doc = await r.json()
    assert (r.status, doc["kind"], doc["in_reply_to"]) == (200, "respond", mine)


async def test_ack_flow_and_lease_conflicts(airlock_home: Path, s: aiohttp.ClientSession) -> None:
    async with started_host(airlock_home, agent_visibility_timeout_s=0.5) as host:
        token = host.agents.add("alpha", None)[0]
        mid = inject(host, "alpha", "hello")
        [first] = await poll(s, host, token)
        assert host.bus.unacknowledged() == 1
        url = f"{api(host)}/v1/messages/{mid}/ack"
        r = await s.post(url, json={"lease_token": "not-the-token"}, headers=auth(token))
        assert r.status == 409
        await asyncio.sleep(0.6)  # the lease expires: the message is handed out again, under a new token
        [second] = await poll(s, host, token)
        assert second["id"] == mid and second["attempts"] == 2 and second["lease_token"] != first["lease_token"]
        stale = await s.post(url, json={"lease_token": first["lease_token"]}, headers=auth(token))
        assert stale.status == 409
        stale_reply = await s.post(f"{api(host)}/v1/messages/{mid}/reply",
                                   json={"text": "late", "lease_token": first["lease_token"]}, headers=auth(token))
        assert stale_reply.status == 409
        r = await s.post(url, json={"lease_token": second["lease_token"]}, headers=auth(token))
        assert (r.status, await r.json()) == (200, {"id": mid, "state": "acked"})
        assert host.bus.unacknowledged() == 0 and host.log.get(mid).state == "acked"  # type: ignore[union-attr]
        again = await s.post(url, json={"lease_token": second["lease_token"]}, headers=auth(token))
        assert again.status == 200
        assert host.log.list_outbox() == []  # an ack queues nothing


async def test_reply_acks_and_queues_in_one_step(host: AirlockHost, tokens: Tokens,
                                                 s: aiohttp.ClientSession) -> None:
    mid = inject(host, "alpha", "question")
    [m] = await poll(s, host, tokens["alpha"])
    r = await s.post(f"{api(host)}/v1/messages/{mid}/reply",
                     json={"text": "answer", "lease_token": m["lease_token"], "thread": "t1"},
                     headers=auth(tokens["alpha"]))
    assert r.status == 202
    doc = await r.json()
    assert host.log.get(mid).state == "acked"  # type: ignore[union-attr]
    out = host.log.get_outbox(doc["outbox_id"])
    assert out is not None and out.kind == "respond" and out.in_reply_to == mid
    assert out.payload["content"] == "answer" and out.payload["thread_id"] == "t1"
    assert out.payload["metadata_json"] == '{"chat_id": 1}'
    # no channel "telegram" is loaded in this host: the sender records the failure, visible to the agent
    deadline = time.monotonic() + 5
    while (state := host.log.get_outbox(doc["outbox_id"])) is not None and state.attempts == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    r = await s.get(f"{api(host)}/v1/outbox/{doc['outbox_id']}", headers=auth(tokens["alpha"]))
    seen = await r.json()
    assert seen["attempts"] >= 1 and "not active" in seen["last_error"]


async def test_long_poll_returns_when_a_message_arrives(host: AirlockHost, tokens: Tokens,
                                                        s: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    waiting = asyncio.create_task(poll(s, host, tokens["alpha"], wait=1000))  # more than the cap: cut to 60 s
    await asyncio.sleep(0.3)
    assert not waiting.done()
    inject(host, "alpha", "wake up")
    messages = await asyncio.wait_for(waiting, 5)
    assert [m["content"] for m in messages] == ["wake up"]
    assert time.monotonic() - started < 3
    # an empty poll without wait answers at once
    t0 = time.monotonic()
    assert await poll(s, host, tokens["alpha"], wait=0) == []
    assert time.monotonic() - t0 < 1
    assert MAX_WAIT_S == 60


async def test_limit_and_bad_requests(host: AirlockHost, tokens: Tokens, s: aiohttp.ClientSession) -> None:
    for chat in ("1", "2", "3"):
        inject(host, "alpha", f"m{chat}", chat=chat)
    assert len(await poll(s, host, tokens["alpha"], limit=2)) == 2
    h = auth(tokens["alpha"])
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"wait": "-1"}, {"wait": "nan"}):
        r = await s.get(f"{api(host)}/v1/messages", params=params, headers=h)
        assert r.status == 400, params
    # a wait too large for a float is cut to the cap like any other (the third message is there: no wait)
    r = await s.get(f"{api(host)}/v1/messages", params={"wait": "1e400"}, headers=h)
    assert r.status == 200
    [m] = (await r.json())["messages"]
    url = f"{api(host)}/v1/messages/{m['id']}/reply"
    cases = [(b"{not json", 400), (b"[1]", 400), (json.dumps({"text": 5}).encode(), 422),
             (json.dumps({"text": "x", "extra": 1}).encode(), 422),
             (json.dumps({"text": "x" * (MAX_TEXT_CHARS + 1)}).encode(), 422),
             (b"{" + b" " * MAX_BODY_BYTES + b"}", 413)]
    for body, status in cases:
        r = await s.post(url, data=body, headers={**h, "Content-Type": "application/json"})
        assert r.status == status, (body[:40], await r.text())
        assert "error" in await r.json()
    # the largest valid text, every character an astral one sent as a \ud83d\ude00 escape, is not too large
    big = json.dumps({"text": "\U0001F600" * MAX_TEXT_CHARS, "thread": "\U0001F600" * 256}, ensure_ascii=True)
    r = await s.post(url, data=big.encode(), headers={**h, "Content-Type": "application/json"})
    assert r.status == 202, await r.text()
    r = await s.post(url, json={"text": "with a file", "attachments": [{"id": "a"}]}, headers=h)
    assert r.status == 422 and (await r.json())["error"].startswith("attachments.0.sha256")
    r = await s.post(f"{api(host)}/v1/messages/not-an-id/ack", json={"lease_token": "x"}, headers=h)
    assert r.status == 404
    assert (await s.post(url, json={"text": "ok"}, headers={**h, "Idempotency-Key": "bad key"})).status == 400
    # channels not installed: status and broadcast are refused up front
    r = await s.post(f"{api(host)}/v1/messages/{m['id']}/status", json={"status": "thinking"}, headers=h)
    assert r.status == 404 and "no channel 'telegram'" in (await r.json())["error"]
    r = await s.post(f"{api(host)}/v1/broadcast", json={"channel": "nope", "user_id": "1", "content": "x"},
                     headers=h)
    assert r.status == 404


async def test_idempotent_posts(host: AirlockHost, tokens: Tokens, s: aiohttp.ClientSession) -> None:
    mid = inject(host, "alpha", "once")
    [m] = await poll(s, host, tokens["alpha"])
    url = f"{api(host)}/v1/messages/{mid}/reply"
    body = {"text": "only one reply", "lease_token": m["lease_token"]}
    h = auth(tokens["alpha"], **{"Idempotency-Key": "reply-1"})
    first = await s.post(url, json=body, headers=h)
    second = await s.post(url, json=body, headers=h)
    assert first.status == second.status == 202
    assert await first.json() == await second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(host.log.list_outbox()) == 1
    # the same key for another request is refused; another agent's identical key is its own
    other = await s.post(url, json={**body, "text": "different"}, headers=h)
    assert other.status == 422
    mid2 = inject(host, "beta", "for beta", chat="9")
    [b] = await poll(s, host, tokens["beta"])
    r = await s.post(f"{api(host)}/v1/messages/{mid2}/reply", json={"text": "b", "lease_token": b["lease_token"]},
                     headers=auth(tokens["beta"], **{"Idempotency-Key": "reply-1"}))
    assert r.status == 202 and (await r.json())["outbox_id"] != (await first.json())["outbox_id"]
    assert len(host.log.list_outbox()) == 2
    # an error answer is remembered too: a repeat does not run again
    mid3 = inject(host, "alpha", "third", chat="3")
    ack = auth(tokens["alpha"], **{"Idempotency-Key": "ack-1"})
    r1 = await s.post(f"{api(host)}/v1/messages/{mid3}/ack", json={"lease_token": "wrong"}, headers=ack)
    r2 = await s.post(f"{api(host)}/v1/messages/{mid3}/ack", json={"lease_token": "wrong"}, headers=ack)
    assert r1.status == r2.status == 409  # never leased: no token matches
    assert r2.headers.get("Idempotent-Replayed") == "true"


async def test_attachments_only_for_the_agent_they_were_routed_to(host: AirlockHost, tokens: Tokens,
                                                                  s: aiohttp.ClientSession) -> None:
    digest = host.blobs.put(b"%PDF-1.4 fake")
    ref = AttachmentRef(id="a1", mime_type="application/pdf", filename="f.pdf", size=13, sha256=digest)
    inject(host, "alpha", "see file", attachments=(ref,))
    url = f"{api(host)}/v1/attachments/{digest}"
    assert (await s.get(url, headers=auth(tokens["alpha"]))).status == 404  # not handed out yet
    [m] = await poll(s, host, tokens["alpha"])
    [a] = m["attachments"]
    assert a["url"] == f"/v1/attachments/{digest}" and a["sha256"] == digest
    r = await s.get(api(host) + a["url"], headers=auth(tokens["alpha"]))
    assert (r.status, await r.read()) == (200, b"%PDF-1.4 fake")
    assert (await s.get(url, headers=auth(tokens["beta"]))).status == 404
    assert (await s.get(f"{api(host)}/v1/attachments/../../etc", headers=auth(tokens["alpha"]))).status == 404


async def test_a_push_agent_cannot_poll(host: AirlockHost, s: aiohttp.ClientSession) -> None:
    token, secret = host.agents.add("pusher", host.secrets, "http://127.0.0.1:9/hook")
    assert secret and host.secrets.get(host.agents.get("pusher").push_secret_name or "") == secret  # type: ignore[union-attr]
    r = await s.get(f"{api(host)}/v1/messages", headers=auth(token))
    assert r.status == 403 and "push" in (await r.json())["error"]


async def test_the_api_can_be_disabled(airlock_home: Path) -> None:
    async with started_host(airlock_home, agent_api_enabled=False) as host:
        assert host.agent_api_port is None


async def test_a_taken_agent_port_is_a_one_line_config_error(airlock_home: Path) -> None:
    from airlock.errors import ConfigError

    async with started_host(airlock_home) as first:
        taken = first.agent_api_port
        other = airlock_home.parent / "other"
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{taken} for the agent API"):
            async with started_host(other, agent_api_port=taken):
                pass
