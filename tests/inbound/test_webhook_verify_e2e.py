"""Host-side webhook verification end to end: the real aiohttp server, the real secret store and real (WAT)
components, one per scheme, side by side in one host. A spy on each channel's on-http-request entry point shows
that a refused request never reaches the guest and an accepted one arrives with secret-validated = true
(false only where the host could not check: Meta POSTs without an app secret)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from conftest import InstallFn, minimal_caps
from nacl.signing import SigningKey
from webhook_signing import (
    discord_headers,
    discord_public_hex,
    feishu_encrypt,
    feishu_headers,
    feishu_v2_event,
    meta_headers,
    slack_headers,
)

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.runtime.values import IncomingHttpRequest
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

SLACK_SECRET = "slack-signing-secret-0123456789"
DISCORD_KEY = SigningKey(bytes(range(100, 132)))
APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "meta-verify-token"
FEISHU_TOKEN = "feishu-verification-token"
FEISHU_KEY = "feishu-encrypt-key"
TG_SECRET = "telegram-secret-token"

WEBHOOKS: dict[str, dict[str, Any]] = {
    "slk": {"hmac_secret_name": "slack_signing_secret"},
    "dsc": {"signature_key_secret_name": "discord_public_key"},
    "wa": {"scheme": "meta", "secret_name": "wa_verify_token", "app_secret_name": "wa_app_secret"},
    "wa0": {"secret_header": "X-Hub-Signature-256", "secret_name": "wa_verify_token",
            "verify_token_param": "hub.verify_token"},  # as IronClaw's whatsapp file: no app secret
    "fs": {"scheme": "feishu", "verification_token_secret_name": "fs_token", "encrypt_key_secret_name": "fs_key"},
    "tg": {"secret_header": "X-Telegram-Bot-Api-Secret-Token", "secret_name": "tg_secret"},
}
SECRETS = {"discord_public_key": discord_public_hex(DISCORD_KEY), "wa_verify_token": VERIFY_TOKEN,
           "wa_app_secret": APP_SECRET, "fs_token": FEISHU_TOKEN, "fs_key": FEISHU_KEY, "tg_secret": TG_SECRET}


@pytest.fixture
def installed(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> Iterator[Path]:
    for name, webhook in WEBHOOKS.items():
        methods = ("GET", "POST") if name.startswith("wa") else ("POST",)
        wasm = watguest.build_component(wat_dir, name, methods=methods)
        install_channel(wasm, minimal_caps(name, webhook=webhook, allow_polling=False))
    yield airlock_home


@asynccontextmanager
async def running(home: Path, monkeypatch: pytest.MonkeyPatch,
                  secrets: dict[str, str]) -> AsyncIterator[tuple[AirlockHost, dict[str, list[IncomingHttpRequest]]]]:
    store = SecretStore.open(home)
    for name, value in secrets.items():
        store.set(name, value)
    async with AirlockHost(HostConfig.build(home=home, listen_port=0), secrets=store) as host:
        seen: dict[str, list[IncomingHttpRequest]] = {}
        for name, slot in host.manager.slots.items():
            assert slot.active, (name, slot.reason)
            calls = seen.setdefault(name, [])
            original = slot.channel.http_request

            def spy(req: IncomingHttpRequest, _calls: list[IncomingHttpRequest] = calls,
                    _original: Any = original, **how: Any) -> Any:  # how: inline=True for inline attempts
                _calls.append(req)
                return _original(req, **how)

            monkeypatch.setattr(slot.channel, "http_request", spy)
        yield host, seen


async def send(host: AirlockHost, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
               method: str = "POST", params: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, f"{host.base_url}{path}", data=body,
                                                       headers=headers, params=params) as r:
        return r.status, await r.text()


def now() -> int:
    return int(time.time())


async def test_slack_refusals_never_reach_the_guest(
    installed: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "message", "text": "hi"}}).encode()
    async with running(installed, monkeypatch, SECRETS | {"slack_signing_secret": SLACK_SECRET}) as (host, seen):
        good = slack_headers(SLACK_SECRET, body, now())
        cases = [
            ({}, 401),
            (good | {"X-Slack-Signature": "v0=" + "0" * 64}, 403),
            (slack_headers("wrong-secret", body, now()), 403),
            (slack_headers(SLACK_SECRET, body, now() - 400), 403),
            (slack_headers(SLACK_SECRET, body, now() + 400), 403),
        ]
        with caplog.at_level(logging.WARNING, logger="airlock.inbound"):
            for headers, expected in cases:
                status, text = await send(host, "/webhook/slk", body, headers)
                assert status == expected
                assert json.loads(text) == {"error": "unauthorized" if expected == 401 else "forbidden"}
            assert await send(host, "/webhook/slk", body + b" ", good) == (403, '{"error": "forbidden"}')
        assert seen["slk"] == [] and host.bus.qsize() == 0
        logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(logged) == 6 and all("(slack)" in m for m in logged)
        assert not any(SLACK_SECRET in m or good["X-Slack-Signature"] in m for m in logged)

        assert (await send(host, "/webhook/slk", body, good))[0] == 200
        assert len(seen["slk"]) == 1 and seen["slk"][0].secret_validated is True and seen["slk"][0].body == body
        assert (await host.next_message()).content == body.decode()
        assert (await send(host, "/webhook/slk", body, good))[0] == 403  # replay
        assert len(seen["slk"]) == 1


async def test_missing_secret_refuses_until_stored_without_restart(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"type":"event_callback"}'
    async with running(installed, monkeypatch, SECRETS) as (host, seen):
        assert (await send(host, "/webhook/slk", body, slack_headers(SLACK_SECRET, body, now())))[0] == 403
        assert seen["slk"] == []
        SecretStore.open(installed).set("slack_signing_secret", SLACK_SECRET)  # what `airlock secrets set` does
        assert (await send(host, "/webhook/slk", body, slack_headers(SLACK_SECRET, body, now() + 1)))[0] == 200
        assert [r.secret_validated for r in seen["slk"]] == [True]


async def test_discord_signed_accepted_bad_refused_with_401(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"type": 1, "id": "1"}).encode()
    async with running(installed, monkeypatch, SECRETS) as (host, seen):
        other = SigningKey(bytes(range(32)))
        for headers in ({}, discord_headers(other, body, now()), discord_headers(DISCORD_KEY, body, now() - 301)):
            assert (await send(host, "/webhook/dsc", body, headers))[0] == 401
        assert seen["dsc"] == []
        assert (await send(host, "/webhook/dsc", body, discord_headers(DISCORD_KEY, body, now())))[0] == 200
        assert [r.secret_validated for r in seen["dsc"]] == [True]


async def test_meta_handshake_and_signed_posts(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    async with running(installed, monkeypatch, SECRETS) as (host, seen):
        assert (await send(host, "/webhook/wa", method="GET", params=hub | {"hub.verify_token": "x"}))[0] == 403
        assert (await send(host, "/webhook/wa", method="GET", params=hub | {"hub.mode": "other"}))[0] == 403
        assert (await send(host, "/webhook/wa", body, meta_headers("not-the-secret", body)))[0] == 403
        assert (await send(host, "/webhook/wa", body, {}))[0] == 401
        assert seen["wa"] == []
        assert (await send(host, "/webhook/wa", method="GET", params=hub))[0] == 200
        assert json.loads(seen["wa"][0].query_json) == {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
        assert VERIFY_TOKEN not in seen["wa"][0].query_json  # the guest never holds the verify token
        assert (await send(host, "/webhook/wa", body, meta_headers(APP_SECRET, body)))[0] == 200
        assert [(r.method, r.secret_validated) for r in seen["wa"]] == [("GET", True), ("POST", True)]


async def test_meta_without_app_secret_passes_posts_unvalidated(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"object": "whatsapp_business_account"}'
    hub = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "c"}
    async with running(installed, monkeypatch, SECRETS) as (host, seen):
        assert (await send(host, "/webhook/wa0", method="GET", params=hub | {"hub.verify_token": "x"}))[0] == 403
        assert (await send(host, "/webhook/wa0", body, {}))[0] == 200
        assert (await send(host, "/webhook/wa0", method="GET", params=hub))[0] == 200
        assert [(r.method, r.secret_validated) for r in seen["wa0"]] == [("POST", False), ("GET", True)]


async def test_header_secret_checked_and_never_shown_to_the_guest(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = "X-Telegram-Bot-Api-Secret-Token"
    async with running(installed, monkeypatch, SECRETS) as (host, seen):
        assert (await send(host, "/webhook/tg", b"{}", {header: "wrong"}))[0] == 403
        assert (await send(host, "/webhook/tg", b"{}", {}))[0] == 401
        assert seen["tg"] == []
        assert (await send(host, "/webhook/tg", b"{}", {header: TG_SECRET, "X-Other": "kept"}))[0] == 200
        [req] = seen["tg"]
        assert req.secret_validated
        assert json.loads(req.headers_json)["x-other"] == "kept"
        assert header.lower() not in json.loads(req.headers_json) and TG_SECRET not in req.headers_json


async def test_feishu_encrypted_event_reaches_the_guest_decrypted(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = json.dumps(feishu_v2_event(FEISHU_TOKEN, "hello feishu")).encode()
    body = feishu_encrypt(FEISHU_KEY, plain)
    async with running(installed, monkeypatch, SECRETS) as (host, seen):
        assert (await send(host, "/webhook/fs", body, feishu_headers("wrong-key", body)))[0] == 403
        assert (await send(host, "/webhook/fs", body, {}))[0] == 401  # an unsigned event
        assert (await send(host, "/webhook/fs", plain, feishu_headers(FEISHU_KEY, plain)))[0] == 401  # not encrypted
        assert seen["fs"] == []
        assert (await send(host, "/webhook/fs", body, feishu_headers(FEISHU_KEY, body)))[0] == 200
        [req] = seen["fs"]
        assert req.body == plain and req.secret_validated is True
        assert json.loads(req.headers_json)["content-length"] == str(len(plain))
        assert (await host.next_message()).content == plain.decode()  # the WAT guest emits the body it got
