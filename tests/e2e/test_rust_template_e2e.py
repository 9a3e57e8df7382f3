"""End to end: the Rust template channel (guest-plugins/template-rust, built by `make rust-guests`) in the real
host, with a real aiohttp webhook server in front and a fake reply endpoint on 127.0.0.1 behind the allow-listed
https://hooks.example.com (an upstream override). Also: the Rust component and the Python Telegram component in
one host."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from channel_e2e import assert_no_message, next_message
from conftest import BUILT_CHANNELS, InstallFn
from fake_base import serving

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

NAME = "template-rust"
WASM = BUILT_CHANNELS / f"{NAME}.wasm"
CAPS = BUILT_CHANNELS / f"{NAME}.capabilities.json"
WEBHOOK = f"/webhook/{NAME}"
SECRET_HEADER = "X-Airlock-Webhook-Secret"
SECRET_NAME = "template_rust_webhook_secret"
REPLY_TOKEN_NAME = "template_rust_reply_token"
REPLY_TOKEN = "reply-token-not-for-guests-7f3a"


@dataclass
class ReplyServer:
    """The fake receiver of replies: records every request; answers with ``status``."""

    base_url: str = ""
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.headers.append(dict(request.headers))
        self.received.append(await request.json())
        return web.json_response({"ok": self.status < 300}, status=self.status)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} replies, got {self.received}")
            await asyncio.sleep(0.02)
        return self.received


@pytest.fixture
async def replies() -> AsyncIterator[ReplyServer]:
    server = ReplyServer()
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    async with serving(app) as server.base_url:
        yield server


@asynccontextmanager
async def running_host(
    home: Path, replies: ReplyServer, overrides: dict[str, str] | None = None, reply_token: bool = True
) -> AsyncIterator[AirlockHost]:
    store = SecretStore.open(home)
    if reply_token:
        store.set(REPLY_TOKEN_NAME, REPLY_TOKEN)
    upstream = {"hooks.example.com": replies.base_url, **(overrides or {})}
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides=upstream)
    async with AirlockHost(config, secrets=store) as host:
        yield host


def install_template(install: InstallFn, **config: Any) -> None:
    if not WASM.exists():
        pytest.fail(f"{WASM} is missing: run `make rust-guests`")
    install(WASM, CAPS, **config)


async def post(host: AirlockHost, payload: Any, secret: str | None = None) -> tuple[int, Any]:
    """POST to the template's webhook with the generated secret (or ``secret``); (status, JSON or text)."""
    value = secret if secret is not None else host.secrets.get(SECRET_NAME) or ""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{host.base_url}{WEBHOOK}", data=body, headers={SECRET_HEADER: value,
                                                                           "Content-Type": "application/json"})
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


async def test_round_trip_with_host_injected_reply_token(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="open")
    async with running_host(airlock_home, replies) as host:
        status, body = await post(host, {"user": "u1", "name": "Ada", "text": "hello rust", "thread": "t9",
                                         "id": "m-1"})
        assert (status, body) == (200, {"status": "accepted"})
        msg = await next_message(host)
        assert (msg.channel, msg.content, msg.user_id, msg.user_name, msg.thread_id) == (
            NAME, "hello rust", "u1", "Ada", "t9")
        assert json.loads(msg.inbound.metadata_json) == {"user": "u1", "message_id": "m-1", "thread": "t9"}
        out = await host.respond(msg, "hi Ada")
        assert out.ok, out.error
        [reply] = await replies.wait_for(1)
    assert replies.paths == ["/airlock/reply"]
    assert reply["user"] == "u1" and reply["text"] == "hi Ada"
    assert reply["thread"] == "t9" and reply["in_reply_to"] == "m-1" and reply["message_id"]
    # The bearer token was added by the host at the boundary (credential "reply" in the capabilities file).
    assert replies.headers[0]["Authorization"] == f"Bearer {REPLY_TOKEN}"


async def test_reply_without_token_still_works_because_credential_is_optional(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="open")
    async with running_host(airlock_home, replies, reply_token=False) as host:
        assert (await post(host, {"user": "u1", "text": "x"}))[0] == 200
        out = await host.respond(await next_message(host), "y")
        assert out.ok, out.error
        await replies.wait_for(1)
    assert "Authorization" not in replies.headers[0]


async def test_secret_missing_or_wrong_rejected_before_guest(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_template(install_channel, dm_policy="open")
    async with running_host(airlock_home, replies) as host:
        channel = host.manager.slots[NAME].channel
        calls: list[object] = []
        original = channel.http_request
        monkeypatch.setattr(channel, "http_request", lambda req: calls.append(req) or original(req))
        async with aiohttp.ClientSession() as s:
            missing = await s.post(f"{host.base_url}{WEBHOOK}", json={"user": "u", "text": "sneaky"})
            assert missing.status == 401
        wrong_status, wrong_body = await post(host, {"user": "u", "text": "sneaky"}, secret="nope")
        assert wrong_status == 403 and "nope" not in json.dumps(wrong_body)
        assert calls == []
        await assert_no_message(host, 0.3)


async def test_bad_payloads_answer_400_and_emit_nothing(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="open")
    async with running_host(airlock_home, replies) as host:
        for payload in (b"{not json", b"[]", {"user": "u"}, {"user": "u", "text": "   "}, {"user": {}, "text": "x"},
                        {"user": "u", "text": "t" * 65_537}):
            status, body = await post(host, payload)
            assert status == 400 and "error" in body, (payload if isinstance(payload, bytes) else str(payload)[:80])
        async with aiohttp.ClientSession() as s:
            health = await s.get(f"{host.base_url}/health/{NAME}")
            assert health.status == 200 and (await health.json())["active"] is True
        await assert_no_message(host, 0.3)


async def test_unknown_sender_gets_pairing_code_once_then_approval_admits(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="pairing")
    async with running_host(airlock_home, replies) as host:
        status, body = await post(host, {"user": "stranger", "name": "Zed", "text": "let me in"})
        assert status == 202 and body["status"] == "pairing"
        pending = host.pairing.pending(NAME)
        assert len(pending) == 1 and pending[0].code == body["code"]
        assert body["approve_with"] == f"airlock pairing approve {NAME} {pending[0].code}"
        again = await post(host, {"user": "stranger", "text": "please"})
        assert again == (202, {"status": "pairing"})
        await assert_no_message(host, 0.3)
        host.pairing.approve(NAME, pending[0].code)
        assert (await post(host, {"user": "stranger", "text": "now?"}))[0] == 200
        assert (await next_message(host)).content == "now?"


async def test_allowlist_denies_strangers_and_admits_listed_ids(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="allowlist", allow_from=["ada", 42], owner_id="boss")
    async with running_host(airlock_home, replies) as host:
        assert (await post(host, {"user": "x", "text": "no"}))[0] == 403
        assert (await post(host, {"user": "x", "name": "ada", "text": "a name is not an id"}))[0] == 403
        assert (await post(host, {"user": "ada", "text": "by id"}))[0] == 200
        assert (await post(host, {"user": 42, "text": "by number"}))[0] == 200
        assert (await post(host, {"user": "boss", "text": "owner"}))[0] == 200
        got = [(await next_message(host)).content for _ in range(3)]
        assert got == ["by id", "by number", "owner"]
        assert host.pairing.pending(NAME) == []
        await assert_no_message(host, 0.3)


async def test_redelivery_dropped_even_after_restart(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="open")
    payload = {"user": "u1", "text": "once", "id": "evt-1"}
    async with running_host(airlock_home, replies) as host:
        assert await post(host, payload) == (200, {"status": "accepted"})
        assert await post(host, payload) == (200, {"status": "duplicate"})
        assert (await next_message(host)).content == "once"
        await assert_no_message(host, 0.3)
    # state/seen is a durable workspace path: a restarted host still knows the id.
    async with running_host(airlock_home, replies) as host:
        assert await post(host, payload) == (200, {"status": "duplicate"})
        assert await post(host, {**payload, "id": "evt-2"}) == (200, {"status": "accepted"})
        assert (await next_message(host)).content == "once"


async def test_reply_failure_reported_without_secrets(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="open")
    replies.status = 500
    async with running_host(airlock_home, replies) as host:
        await post(host, {"user": "u1", "text": "x"})
        out = await host.respond(await next_message(host), "reply")
        assert not out.ok
        assert "status 500" in str(out.error)
        assert REPLY_TOKEN not in str(out.error)


async def test_reply_url_off_the_allow_list_is_refused_by_the_host(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, dm_policy="open", reply_url="https://evil.example.com/airlock/reply")
    async with running_host(airlock_home, replies, overrides={"evil.example.com": replies.base_url}) as host:
        await post(host, {"user": "u1", "text": "x"})
        out = await host.respond(await next_message(host), "leak?")
        assert not out.ok and "allow" in str(out.error).lower()
        await asyncio.sleep(0.2)
    assert replies.received == []


async def test_non_https_reply_url_keeps_channel_inactive(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    install_template(install_channel, reply_url="http://hooks.example.com/airlock/reply")
    async with running_host(airlock_home, replies) as host:
        slot = host.manager.slots[NAME]
        assert not slot.active
        assert "reply_url" in slot.reason


async def test_rust_and_python_channels_side_by_side(
    airlock_home: Path, install_channel: InstallFn, replies: ReplyServer
) -> None:
    telegram_wasm = BUILT_CHANNELS / "telegram.wasm"
    install_template(install_channel, dm_policy="open")
    install_channel(telegram_wasm, BUILT_CHANNELS / "telegram.capabilities.json", bot_username="airlock_test_bot",
                    polling_enabled=True, long_poll_timeout_s=25, dm_policy="open")
    async with FakeTelegram(bot_username="airlock_test_bot") as fake:
        SecretStore.open(airlock_home).set("telegram_bot_token", fake.token)
        async with running_host(airlock_home, replies, overrides={"api.telegram.org": fake.base_url}) as host:
            assert host.manager.slots[NAME].active and host.manager.slots["telegram"].active
            fake.push_message("from telegram", chat_id=777, user_id=777, username="alice")
            assert (await post(host, {"user": "u1", "text": "from rust"}))[0] == 200
            got = {}
            for _ in range(2):
                msg = await next_message(host)
                got[msg.channel] = msg
            assert got[NAME].content == "from rust" and got["telegram"].content == "from telegram"
            # Each reply goes out through its own channel's component and capabilities.
            assert (await host.respond(got["telegram"], "hi telegram")).ok
            assert (await host.respond(got[NAME], "hi rust")).ok
            sent = await fake.wait_for_sent(1)
            [reply] = await replies.wait_for(1)
    assert sent[0]["text"] == "hi telegram" and sent[0]["chat_id"] == 777
    assert reply["text"] == "hi rust" and reply["user"] == "u1"
