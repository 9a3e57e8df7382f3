"""End to end: the real WhatsApp component (Rust) in the real host and aiohttp server, webhooks signed with the
standard library's hmac (Meta's reference algorithm), replies to the fake Graph API on 127.0.0.1 with the access
token injected by the host.

A spy on the channel's on-http-request entry point proves that a refused request never reaches the guest; a spy
on the http-request host function shows what the guest itself sent (no token)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import channel_e2e
import pytest
from channel_e2e import GuestHttp, assert_no_message, next_message, record_guest_http, spy_guest
from conftest import BUILT_CHANNELS, InstallFn
from fake_whatsapp import (
    PHONE_NUMBER_ID,
    FakeWhatsApp,
    media_notification,
    new_message_id,
    sign,
    status_notification,
    text_notification,
)

from airlock.host import AirlockHost

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "whatsapp.wasm"
CAPS = BUILT_CHANNELS / "whatsapp.capabilities.json"
APP_SECRET = "4f3c2b1a00ffeeddccbbaa9988776655"
ALICE = "15551234567"
PATH = "/webhook/whatsapp"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhatsApp]:
    async with FakeWhatsApp() as f:
        yield f


@pytest.fixture
def guest_http(monkeypatch: pytest.MonkeyPatch) -> GuestHttp:
    return record_guest_http(monkeypatch)


def running_host(home: Path, fake: FakeWhatsApp) -> AbstractAsyncContextManager[AirlockHost]:
    secrets = {"whatsapp_access_token": fake.token, "whatsapp_app_secret": APP_SECRET}
    return channel_e2e.running_host(home, "whatsapp", secrets,
                                    {"graph.facebook.com": fake.base_url})


def install_whatsapp(install: InstallFn, **config: Any) -> None:
    install(WASM, CAPS, **config)


async def post_note(host: AirlockHost, payload: Any = None, *, body: bytes | None = None,
                    signature: str | None = "sign") -> tuple[int, str]:
    raw = body if body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Hub-Signature-256"] = sign(APP_SECRET, raw)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}{PATH}", data=raw, headers=headers) as r:
        return r.status, await r.text()


async def handshake(host: AirlockHost, params: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"{host.base_url}{PATH}", params=params) as r:
        return r.status, await r.text()


async def test_handshake_echoes_challenge_only_with_the_verify_token(
    fake: FakeWhatsApp, airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_whatsapp(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        token = host.secrets.get("whatsapp_verify_token")
        assert token and len(token) == 32  # auto-generated from the capabilities file
        calls = spy_guest(host, "whatsapp", monkeypatch)
        wrong = await handshake(host, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})
        missing = await handshake(host, {"hub.mode": "subscribe", "hub.challenge": "1"})
        assert (wrong[0], missing[0]) == (403, 401) and calls == []
        ok = await handshake(host, {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"})
        assert ok == (200, "1158201444")
        assert len(calls) == 1 and calls[0].secret_validated is True


async def test_dm_round_trip_with_host_injected_token(
    fake: FakeWhatsApp, airlock_home: Path, install_channel: InstallFn, guest_http: list[tuple[str, str, bytes]]
) -> None:
    install_whatsapp(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        wamid = new_message_id()
        status, _ = await post_note(host, text_notification("hello there", wa_id=ALICE, name="Alice",
                                                            message_id=wamid))
        assert status == 200
        msg = await next_message(host)
        assert (msg.channel, msg.content, msg.user_id, msg.user_name) == ("whatsapp", "hello there", ALICE, "Alice")
        assert msg.metadata["phone_number_id"] == PHONE_NUMBER_ID and msg.metadata["message_id"] == wamid
        out = await host.respond(msg, "hi Alice")
        assert out.ok, out.error
        sent = await fake.wait_for_sent(1)
        assert (sent[0]["to"], sent[0]["type"], sent[0]["text"]["body"]) == (ALICE, "text", "hi Alice")
        assert sent[0]["messaging_product"] == "whatsapp"
        # Threads kept: the reply quotes the message it answers.
        assert sent[0]["context"] == {"message_id": wamid}
    assert fake.calls[-1].authorization == f"Bearer {fake.token}"
    assert fake.calls[-1].version == "v20.0" and fake.calls[-1].phone_number_id == PHONE_NUMBER_ID
    assert guest_http and all(fake.token not in h and fake.token.encode() not in b for _, h, b in guest_http)


async def test_bad_or_missing_signature_rejected_before_guest(
    fake: FakeWhatsApp, airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_whatsapp(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        calls = spy_guest(host, "whatsapp", monkeypatch)
        raw = json.dumps(text_notification("sneaky", wa_id=ALICE)).encode()
        results = [
            await post_note(host, body=raw, signature=None),
            await post_note(host, body=raw, signature="sha256=" + "0" * 64),
            await post_note(host, body=raw, signature=sign("another-app-secret", raw)),
            await post_note(host, body=raw, signature=sign(APP_SECRET, raw)[7:]),  # no "sha256=" prefix
            await post_note(host, body=raw.replace(b"sneaky", b"evil!!"), signature=sign(APP_SECRET, raw)),
        ]
        assert [status for status, _ in results] == [401, 403, 403, 401, 403]
        assert all(APP_SECRET not in text and "sha256" not in text for _, text in results)
        assert calls == []
        await assert_no_message(host, 0.3)
        assert (await post_note(host, body=raw))[0] == 200
        assert (await next_message(host)).content == "sneaky"
        assert len(calls) == 1 and calls[0].secret_validated is True


async def test_statuses_and_media_ignored_duplicates_dropped(
    fake: FakeWhatsApp, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_whatsapp(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        # Our own sent messages come back only as statuses: they must never reach the agent.
        for status in ("sent", "delivered", "read"):
            assert (await post_note(host, status_notification("wamid.OURS", status, wa_id=ALICE)))[0] == 200
        assert (await post_note(host, media_notification("image", wa_id=ALICE)))[0] == 200
        assert (await post_note(host, media_notification("sticker", wa_id=ALICE)))[0] == 200
        note = text_notification("real text", wa_id=ALICE)
        assert (await post_note(host, note))[0] == 200
        assert (await post_note(host, note))[0] == 200  # Meta delivers at least once
        assert (await next_message(host)).content == "real text"
        await assert_no_message(host, 0.5)
    assert fake.sent == []


async def test_pairing_code_then_approval_admits(
    fake: FakeWhatsApp, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_whatsapp(install_channel, dm_policy="pairing")
    async with running_host(airlock_home, fake) as host:
        assert (await post_note(host, text_notification("let me in", wa_id=ALICE)))[0] == 200
        sent = await fake.wait_for_sent(1)
        pending = host.pairing.pending("whatsapp")
        assert len(pending) == 1 and pending[0].external_id == ALICE
        assert sent[0]["to"] == ALICE and pending[0].code in sent[0]["text"]["body"]
        assert (await post_note(host, text_notification("hello?", wa_id=ALICE)))[0] == 200
        await assert_no_message(host, 0.5)
        assert len(fake.sent) == 1
        host.pairing.approve("whatsapp", pending[0].code)
        assert (await post_note(host, text_notification("now?", wa_id=ALICE)))[0] == 200
        msg = await next_message(host)
        assert (msg.content, msg.user_id) == ("now?", ALICE)


async def test_graph_error_in_reply_is_reported_safely(
    fake: FakeWhatsApp, airlock_home: Path, install_channel: InstallFn
) -> None:
    install_whatsapp(install_channel, dm_policy="open")
    async with running_host(airlock_home, fake) as host:
        assert (await post_note(host, text_notification("hi", wa_id=ALICE)))[0] == 200
        msg = await next_message(host)
        fake.phone_number_ids.clear()  # the number was removed from the WhatsApp Business account
        out = await host.respond(msg, "are you there?")
        assert not out.ok and "HTTP 400 code 100" in str(out.error)
        assert fake.token not in str(out.error)
        assert fake.sent == []
