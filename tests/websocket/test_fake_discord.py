"""The fake Discord itself, driven by plain aiohttp clients: REST auth and validation, interactions, the
gateway's own checks, and interaction signatures checked by an independent Ed25519 implementation
(``cryptography``), so other helpers' tests can rely on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fake_discord import DEFAULT_TOKEN, FakeDiscord, InteractionSigner

API = "/api/v10"
BOT = {"Authorization": f"Bot {DEFAULT_TOKEN}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval_ms=45000, expected_intents=4609) as f:
        yield f


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_create_message_needs_the_bot_token(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    url = f"{fake.base_url}{API}/channels/7070/messages"
    body = {"content": "hi", "message_reference": {"message_id": "1", "channel_id": "7070"}}
    async with http.post(url, json=body, headers=BOT) as r:
        assert r.status == 200
        msg = await r.json()
    assert msg["content"] == "hi" and msg["channel_id"] == "7070" and msg["type"] == 19
    assert msg["author"]["bot"] is True and fake.messages == [msg]
    for headers in ({}, {"Authorization": DEFAULT_TOKEN}, {"Authorization": f"Bearer {DEFAULT_TOKEN}"}):
        async with http.post(url, json=body, headers=headers) as r:
            assert r.status == 401 and (await r.json())["code"] == 0
    async with http.post(url, json={"content": "x" * 2001}, headers=BOT) as r:
        assert r.status == 400 and (await r.json())["code"] == 50035
    async with http.post(url, json={}, headers=BOT) as r:
        assert r.status == 400 and (await r.json())["code"] == 50006
    assert len(fake.messages) == 1 and len(fake.requests) == 6
    assert fake.requests[0].headers["Authorization"] == f"Bot {DEFAULT_TOKEN}"


async def test_interaction_callback_then_followup_and_edit(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    inter = fake.new_interaction(data={"id": "9", "name": "ask", "type": 1,
                                       "options": [{"name": "q", "type": 3, "value": "why?"}]})
    cb = f"{fake.base_url}{API}/interactions/{inter['id']}/{inter['token']}/callback"
    hook = f"{fake.base_url}{API}/webhooks/{fake.application_id}/{inter['token']}"
    async with http.post(hook, json={"content": "too early"}) as r:
        assert r.status == 404 and (await r.json())["code"] == 10015
    async with http.post(cb, json={"type": 99}) as r:
        assert r.status == 400
    async with http.post(cb, json={"type": 5}) as r:
        assert r.status == 204
    async with http.post(cb, json={"type": 5}) as r:
        assert r.status == 400 and (await r.json())["code"] == 40060
    async with http.post(f"{fake.base_url}{API}/interactions/{inter['id']}/wrong/callback", json={"type": 4}) as r:
        assert r.status == 404 and (await r.json())["code"] == 10062
    async with http.patch(hook + "/messages/@original", json={"content": "answer"}) as r:
        assert r.status == 200 and (await r.json())["content"] == "answer"
    async with http.post(hook, json={"content": "more"}) as r:
        assert r.status == 200 and (await r.json())["webhook_id"] == fake.application_id
    async with http.post(f"{fake.base_url}{API}/webhooks/1/{inter['token']}", json={"content": "x"}) as r:
        assert r.status == 404
    record = fake.interactions[inter["id"]]
    assert record.callbacks == [{"type": 5}] and record.followups == [{"content": "more"}]
    assert record.edits == [{"message_id": "@original", "content": "answer"}]


async def test_gateway_bot_and_me(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{fake.base_url}{API}/gateway/bot", headers=BOT) as r:
        assert (await r.json())["url"] == "wss://gateway.discord.gg"
    async with http.get(f"{fake.base_url}{API}/users/@me") as r:
        assert r.status == 401
    async with http.get(f"{fake.base_url}{API}/users/@me", headers=BOT) as r:
        assert (await r.json())["id"] == fake.bot_user["id"]
    async with http.get(f"{fake.base_url}{API}/nope", headers=BOT) as r:
        assert r.status == 404


def test_signer_signature_verifies_with_an_independent_ed25519() -> None:
    signer = InteractionSigner()
    body = json.dumps({"type": 1}).encode()
    headers = signer.headers(body, timestamp="1700000000")
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(signer.public_key_hex))
    key.verify(bytes.fromhex(headers["X-Signature-Ed25519"]), b"1700000000" + body)  # raises if wrong
    assert len(signer.public_key_hex) == 64 and headers["X-Signature-Timestamp"] == "1700000000"
    with pytest.raises(Exception):  # noqa: B017 - InvalidSignature; the body is part of what is signed
        key.verify(bytes.fromhex(headers["X-Signature-Ed25519"]), b"1700000000" + body + b" ")


async def gateway_session(fake: FakeDiscord, http: aiohttp.ClientSession,
                          identify: dict[str, Any] | None) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await http.ws_connect(f"{fake.base_url}/?v=10&encoding=json")
    hello = await ws.receive_json()
    if identify is not None:
        await ws.send_json({"op": 2, "d": identify})
    return ws, hello


IDENTIFY = {"token": DEFAULT_TOKEN, "intents": 4609, "properties": {"os": "linux", "browser": "t", "device": "t"}}


@pytest.mark.parametrize("identify, code", [
    ({**IDENTIFY, "token": "bad"}, 4004),
    ({**IDENTIFY, "properties": {}}, 4002),
    ({**IDENTIFY, "intents": 513}, 4013),  # differs from expected_intents
    ({**IDENTIFY, "intents": "4609"}, 4013),
])
async def test_gateway_identify_checks(fake: FakeDiscord, http: aiohttp.ClientSession,
                                       identify: dict[str, Any], code: int) -> None:
    ws, hello = await gateway_session(fake, http, identify)
    assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 45000
    msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == code
    await ws.close()


async def test_gateway_privileged_intents_are_disallowed(http: aiohttp.ClientSession) -> None:
    async with FakeDiscord() as fake:
        ws, _ = await gateway_session(fake, http, {**IDENTIFY, "intents": 4609 | (1 << 15)})
        assert (await ws.receive()).data == 4014
        await ws.close()


async def test_gateway_session_commands_and_protocol_errors(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    ws, _ = await gateway_session(fake, http, None)
    await ws.send_json({"op": 3, "d": {}})
    assert (await ws.receive()).data == 4003  # not authenticated yet
    await ws.close()

    ws, _ = await gateway_session(fake, http, IDENTIFY)
    ready = await ws.receive_json()
    assert ready["t"] == "READY" and ready["s"] == 1 and ready["d"]["session_id"].startswith("fake-session-")
    await ws.send_json({"op": 1, "d": 1})
    assert (await ws.receive_json())["op"] == 11
    seq = await fake.dispatch("MESSAGE_CREATE", fake.message_create("hello", guild_id="55"))
    got = await ws.receive_json()
    assert got["s"] == seq == 2 and got["d"]["content"] == "hello" and got["d"]["guild_id"] == "55"
    await ws.send_json({"op": 1, "d": 1})  # stale sequence: recorded as an error, still acknowledged
    assert (await ws.receive_json())["op"] == 11 and fake.heartbeat_seq_errors == [(1, 2)]
    await ws.send_json({"op": 8, "d": {"guild_id": "55", "query": "", "limit": 0}})
    await fake.wait_for(lambda: bool(fake.connections[-1].commands), "op 8 recorded")
    await ws.send_json({"op": 2, "d": IDENTIFY})
    assert (await ws.receive()).data == 4005  # already authenticated
    await ws.close()

    ws, _ = await gateway_session(fake, http, None)
    await ws.send_json({"op": 6, "d": {"token": DEFAULT_TOKEN, "session_id": ready["d"]["session_id"], "seq": 1}})
    replay = await ws.receive_json()
    resumed = await ws.receive_json()
    assert replay["s"] == 2 and resumed["t"] == "RESUMED" and resumed["s"] == 3
    await ws.send_json({"op": 42, "d": None})
    assert (await ws.receive()).data == 4001
    await ws.close()

    ws, _ = await gateway_session(fake, http, None)
    await ws.send_json({"op": 6, "d": {"token": DEFAULT_TOKEN, "session_id": "unknown", "seq": 1}})
    assert await ws.receive_json() == {"op": 9, "d": False, "s": None, "t": None}
    await ws.send_str("not json")
    assert (await ws.receive()).data == 4002
    await ws.close()
    assert len(fake.connections) == 4 and fake.resume_count == 2
