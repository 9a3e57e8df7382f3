"""The message log end to end (issue 8): real components in the real host, real HTTP, the real state.db.

- Redeliveries are one entry: the fake Telegram re-offers a message; a JSON webhook is redelivered.
- Replies retry by the platform's answer: 429 with retry_after=2 then 200 (once, after >= 2 s); 500 x3 then 200
  (once); 400 (no retry, a dead letter, retried by hand).
- An agent that stops acknowledging: webhooks get 503 only once the backlog limit is reached; a lease not
  acknowledged is offered again; everything is delivered once the agent is back.
- A webhook whose log write fails (SQLite refuses it) is answered 503 and nothing of it is kept, the guest's
  durable workspace write included, so the platform's redelivery is accepted.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from aiohttp import web
from conftest import BUILT_CHANNELS, InstallFn, minimal_caps
from fake_base import serving

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

TEMPLATE = "template-rust"
SECRET_NAME = "template_rust_webhook_secret"


@dataclass
class Platform:
    """A fake reply endpoint answering from a script of (status, JSON body) pairs, then 200."""

    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((time.monotonic(), await request.json()))
        status, body = self.script.pop(0) if self.script else (200, {"ok": True})
        return web.json_response(body, status=status)


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    fake = Platform()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    async with serving(app) as fake.base_url:
        yield fake


@asynccontextmanager
async def template_host(home: Path, platform: Platform) -> AsyncIterator[AirlockHost]:
    store = SecretStore.open(home)
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides={"hooks.example.com": platform.base_url})
    async with AirlockHost(config, secrets=store) as host:
        yield host


async def post_json(host: AirlockHost, payload: dict[str, Any]) -> int:
    headers = {"X-Airlock-Webhook-Secret": host.secrets.get(SECRET_NAME) or ""}
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/{TEMPLATE}", json=payload,
                                                     headers=headers) as r:
        return r.status


@pytest.fixture
def template(install_channel: InstallFn) -> None:
    install_channel(BUILT_CHANNELS / f"{TEMPLATE}.wasm", BUILT_CHANNELS / f"{TEMPLATE}.capabilities.json",
                    dm_policy="open")


async def wait_until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_telegram_reoffer_is_one_entry(airlock_home: Path, install_channel: InstallFn) -> None:
    install_channel(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
                    polling_enabled=True, dm_policy="open", bot_username="airlock_test_bot", long_poll_timeout_s=1)
    async with FakeTelegram(bot_username="airlock_test_bot") as fake:
        store = SecretStore.open(airlock_home)
        store.set("telegram_bot_token", fake.token)
        config = HostConfig.build(home=airlock_home, listen_port=0,
                                  upstream_overrides={"api.telegram.org": fake.base_url})
        async with AirlockHost(config, secrets=store) as host:
            update = fake.push_message("once only", chat_id=55, user_id=55, username="u")
            first = await asyncio.wait_for(host.next_message(), 15)
            fake.push_update({k: v for k, v in update.items() if k != "update_id"})  # the same message again
            await wait_until(lambda: not fake.pending_updates())
            await asyncio.sleep(1.5)  # a long poll or two for the re-offered update to be emitted
            assert [e.content for e in host.log.list_inbound()] == ["once only"]
            assert first.content == "once only" and host.bus.unacknowledged() == 1


async def test_redelivered_webhook_is_one_entry(
    airlock_home: Path, template: None, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with template_host(airlock_home, platform) as host:
        payload = {"user": "u1", "text": "hi", "id": "evt-1"}
        assert await post_json(host, payload) == 200
        host.manager.slots[TEMPLATE].channel.workspace._values.pop("state/seen")  # the guest forgets its ids
        assert await post_json(host, payload) == 200
        assert await post_json(host, {**payload, "id": "evt-2"}) == 200
        assert [e.dedupe_key for e in host.log.list_inbound()] == ["/message_id=evt-2", "/message_id=evt-1"]


async def reply_with(host: AirlockHost, platform: Platform, text: str) -> Any:
    assert await post_json(host, {"user": "u1", "text": "question", "id": f"q-{text}"}) == 200
    msg = await asyncio.wait_for(host.next_message(), 10)
    started = time.monotonic()
    out = await host.respond(msg, text)
    return msg, out, started


async def test_429_waits_retry_after_then_arrives_once(airlock_home: Path, template: None, platform: Platform) -> None:
    platform.script = [(429, {"ok": False, "retry_after": 2})]
    async with template_host(airlock_home, platform) as host:
        _msg, out, _started = await reply_with(host, platform, "after the limit")
        assert not out.ok  # the first attempt met the 429
        await wait_until(lambda: len(platform.received) == 2)
        (t1, _), (t2, body) = platform.received
        assert t2 - t1 >= 2.0 and body["text"] == "after the limit"
        await wait_until(lambda: host.log.list_outbox()[0].state == "sent")
        await asyncio.sleep(0.5)
        assert len(platform.received) == 2


async def test_500_three_times_then_arrives_once(airlock_home: Path, template: None, platform: Platform) -> None:
    platform.script = [(500, {"ok": False})] * 3
    async with template_host(airlock_home, platform) as host:
        await reply_with(host, platform, "eventually")
        await wait_until(lambda: len(platform.received) == 4)
        await wait_until(lambda: host.log.list_outbox()[0].state == "sent")
        entry = host.log.list_outbox()[0]
        assert entry.attempts == 4 and [b["text"] for _, b in platform.received] == ["eventually"] * 4
        await asyncio.sleep(0.5)
        assert len(platform.received) == 4


async def test_400_is_a_dead_letter_and_can_be_retried(airlock_home: Path, template: None, platform: Platform) -> None:
    platform.script = [(400, {"ok": False, "error": "chat not found"})]
    async with template_host(airlock_home, platform) as host:
        _msg, out, _ = await reply_with(host, platform, "lost?")
        assert not out.ok
        await wait_until(lambda: bool(host.log.list_outbox("failed")))
        (dead,) = host.log.list_outbox("failed")
        assert dead.attempts == 1 and "400" in (dead.last_error or "")
        await asyncio.sleep(1.0)
        assert len(platform.received) == 1  # not retried
        assert host.log.retry(dead.id, time.time())
        host.outbox.wake()
        await wait_until(lambda: host.log.get_outbox(dead.id).state == "sent")  # type: ignore[union-attr]
        assert len(platform.received) == 2


async def test_agent_down_backpressure_then_everything_delivered(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir), minimal_caps())
    config = HostConfig.build(home=airlock_home, listen_port=0, bus_capacity=5, agent_visibility_timeout_s=0.5)
    async with AirlockHost(config) as host, aiohttp.ClientSession() as s:
        statuses = []
        for i in range(8):
            async with s.post(f"{host.base_url}/webhook/minimal", data=f"m{i}".encode()) as r:
                statuses.append(r.status)
                if r.status == 503:
                    assert int(r.headers["Retry-After"]) > 0
        assert statuses == [200] * 5 + [503] * 3  # 503 only once the backlog limit is reached
        leased = await host.next_message()  # the agent takes one and dies before acking
        await asyncio.sleep(0.7)
        again = await host.next_message()
        assert again.id == leased.id  # offered again after the visibility timeout
        seen = [again.content]
        await host.ack(again)
        while len(seen) < 5:
            msg = await asyncio.wait_for(host.next_message(), 5)
            seen.append(msg.content)
            await host.ack(msg)
        assert sorted(seen) == [f"m{i}" for i in range(5)] and host.bus.qsize() == 0
        async with s.post(f"{host.base_url}/webhook/minimal", data=b"m9") as r:
            assert r.status == 200
        assert json.loads(json.dumps([e.state for e in host.log.list_inbound()]))[0] == "ready"


async def test_a_webhook_whose_log_write_fails_gets_503_and_nothing_is_kept(
        airlock_home: Path, template: None, platform: Platform) -> None:
    async with template_host(airlock_home, platform) as host:
        conn = sqlite3.connect(airlock_home / "state.db")  # SQLite itself refuses this one message
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON inbound WHEN NEW.content = 'refused' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        conn.commit()
        headers = {"X-Airlock-Webhook-Secret": host.secrets.get(SECRET_NAME) or ""}
        async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/{TEMPLATE}", headers=headers,
                                                         json={"user": "u1", "text": "refused", "id": "m1"}) as r:
            assert (r.status, r.headers.get("Retry-After")) == (503, "5")
            assert "refused by the test" not in await r.text()
        assert host.log.list_inbound() == []
        conn.execute("DROP TRIGGER refuse")
        conn.commit()
        conn.close()
        # The platform redelivers: the guest's own "seen" record of m1 was undone with the failed commit, so the
        # redelivery is accepted (not answered "duplicate") and reaches the agent once.
        assert await post_json(host, {"user": "u1", "text": "refused", "id": "m1"}) == 200
        message = await asyncio.wait_for(host.next_message(), 10)
        assert message.content == "refused"
        assert [e.content for e in host.log.list_inbound()] == ["refused"]
