"""Inline webhooks end to end: the real host, its aiohttp server and real components (WAT guests, the probe
guest, the Python Telegram guest). A webhook is first attempted on the event loop thread; one that needs a
worker (an outbound call, a pairing code, the inline deadline) is re-run there with its effects applied exactly
once; a looping guest cannot hold the loop; the per-channel guard and the host switch turn inline off."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from aiohttp import web
from conftest import BUILT_CHANNELS, REPO, InstallFn, minimal_caps
from fake_base import serving

from airlock.channels.channel import INLINE_DEADLINE
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

PROBE = REPO / "build" / "test-guests"
Call = tuple[str, bool]
"""(thread name, inline?) of one entry into a channel's on-http-request."""


@asynccontextmanager
async def running(home: Path, **config: Any) -> AsyncIterator[AirlockHost]:
    async with AirlockHost(HostConfig.build(home=home, listen_port=0, **config)) as host:
        yield host


def spy(host: AirlockHost, channel: str, monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Record on which thread, and whether inline, each on-http-request of ``channel`` starts."""
    calls: list[Call] = []
    ch = host.manager.slots[channel].channel
    original = ch.http_request

    def wrapper(req: Any, **how: Any) -> Any:
        calls.append((threading.current_thread().name, bool(how.get("inline"))))
        return original(req, **how)

    monkeypatch.setattr(ch, "http_request", wrapper)
    return calls


async def post(host: AirlockHost, path: str, **kw: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}{path}", **kw) as r:
        return r.status, await r.text()


async def health(host: AirlockHost, channel: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{host.base_url}/health/{channel}") as r:
        data: dict[str, Any] = await r.json()
        return data


LOOP_THREAD = threading.main_thread().name


async def test_webhook_without_outbound_call_completes_inline_on_the_loop(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_channel(watguest.build_component(wat_dir, "fast"), minimal_caps("fast"))
    async with running(airlock_home) as host:
        calls = spy(host, "fast", monkeypatch)
        assert await post(host, "/webhook/fast", data=b"hello") == (200, "ok")
        msg = await asyncio.wait_for(host.next_message(), 5)
        assert msg.content == "hello"
        assert threading.current_thread().name == LOOP_THREAD
        assert calls == [(LOOP_THREAD, True)]  # no second run on a worker
        shown = (await health(host, "fast"))["inline"]
        assert (shown["enabled"], shown["hits"], shown["aborts"], shown["trips"]) == (True, 1, {}, 0)
        await asyncio.sleep(0.1)
        assert host.bus.qsize() == 0 and host.manager.slots["fast"].failures == 0


async def test_switched_off_every_webhook_runs_on_a_worker(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_channel(watguest.build_component(wat_dir, "fast"), minimal_caps("fast"))
    async with running(airlock_home, inline_callbacks=False) as host:
        calls = spy(host, "fast", monkeypatch)
        for body in (b"one", b"two"):
            assert await post(host, "/webhook/fast", data=body) == (200, "ok")
            assert (await asyncio.wait_for(host.next_message(), 5)).content == body.decode()
        assert [inline for _, inline in calls] == [False, False]
        assert all(name.startswith("airlock-cb") for name, _ in calls)
        assert (await health(host, "fast"))["inline"]["enabled"] is False


@pytest.fixture
async def echo_platform() -> AsyncIterator[tuple[str, list[str]]]:
    """Counts every request it gets."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with serving(app) as url:
        yield url, seen


async def test_outbound_call_moves_to_a_worker_and_happens_once(
    airlock_home: Path, install_channel: InstallFn, echo_platform: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    base, seen = echo_platform
    caps = json.loads((PROBE / "probe.capabilities.json").read_text())
    install_channel(PROBE / "probe.wasm", caps)
    SecretStore.open(airlock_home).set("telegram_bot_token", "123:abc")
    caplog.set_level(logging.INFO)
    async with running(airlock_home, upstream_overrides={"api.telegram.org": base}) as host:
        calls = spy(host, "probe", monkeypatch)
        status, text = await post(host, "/webhook/probe",
                                  json={"url": "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getMe"})
        assert status == 200 and json.loads(text)["status"] == 200
        msg = await asyncio.wait_for(host.next_message(), 5)
        assert msg.user_id == "probe"
        await asyncio.sleep(0.2)
        assert host.bus.qsize() == 0  # one message, from the worker run only
        assert seen == ["/bot123:abc/getMe"]  # the upstream saw exactly one request
        assert [inline for _, inline in calls] == [True, False]
        assert calls[0][0] == LOOP_THREAD and calls[1][0].startswith("airlock-cb")
        slot = host.manager.slots["probe"]
        assert (slot.inline.hits, dict(slot.inline.aborts), slot.failures) == (0, {"http-request": 1}, 0)
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("airlock")]
    assert sum("probe saw" in m for m in logged) == 1  # the guest's log line: the worker run's only
    assert not [m for m in logged if "host bug" in m or "failed" in m]


async def test_pairing_code_created_once_when_the_webhook_moves_to_a_worker(
    airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeTelegram(bot_username="airlock_test_bot") as fake:
        install_channel(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
                        bot_username="airlock_test_bot", polling_enabled=False, webhook_enabled=True,
                        dm_policy="pairing")
        SecretStore.open(airlock_home).set("telegram_bot_token", fake.token)
        async with running(airlock_home, upstream_overrides={"api.telegram.org": fake.base_url}) as host:
            calls = spy(host, "telegram", monkeypatch)
            secret = host.secrets.get("telegram_webhook_secret") or ""
            update = fake.push_message("let me in", chat_id=777, user_id=777)
            status, _ = await post(host, "/webhook/telegram", json=update,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": secret})
            assert status == 200
            sent = await fake.wait_for_sent(1, timeout=10)
            pending = host.pairing.pending("telegram")
            assert len(pending) == 1 and pending[0].code in sent[0]["text"]
            await asyncio.sleep(0.3)
            assert len(fake.sent_messages) == 1 and host.bus.qsize() == 0
            slot = host.manager.slots["telegram"]
            # The inline attempt stopped at the pairing upsert (or, on a loaded machine, at its deadline).
            assert [inline for _, inline in calls] == [True, False]
            assert sum(slot.inline.aborts.values()) == 1 and slot.failures == 0


async def test_looping_guest_leaves_the_loop_times_out_and_trips_the_guard(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_channel(watguest.build_component(wat_dir, "spin", mode="loop"),
                    minimal_caps("spin", callback_timeout_secs=1))
    install_channel(watguest.build_component(wat_dir, "fast"), minimal_caps("fast"))
    async with running(airlock_home) as host:
        calls = spy(host, "spin", monkeypatch)
        spinning = asyncio.create_task(post(host, "/webhook/spin", data=b"x"))
        await asyncio.sleep(0.15)  # the inline attempt (<= 20 ms) is over; the worker run has 1 s
        started = time.monotonic()
        for i in range(5):  # another channel keeps answering while the looping guest runs
            assert await post(host, "/webhook/fast", data=f"m{i}".encode()) == (200, "ok")
        assert not spinning.done(), f"fast webhooks took {time.monotonic() - started:.2f} s"
        assert (await spinning)[0] == 500
        slot = host.manager.slots["spin"]
        assert [inline for _, inline in calls] == [True, False]
        assert (dict(slot.inline.aborts), slot.failures, slot.inline.trips) == ({INLINE_DEADLINE: 1}, 1, 0)
        failures = [r.getMessage() for r in caplog.records if "[spin] on-http-request failed" in r.getMessage()]
        assert len(failures) == 1 and "guest trap (timeout)" in failures[0]  # the real run's class, once

        assert (await post(host, "/webhook/spin", data=b"x"))[0] == 500  # second deadline hit: guard trips
        assert slot.inline.trips == 1 and not slot.inline.should_try()
        calls.clear()
        assert (await post(host, "/webhook/spin", data=b"x"))[0] == 500
        assert calls == [(calls[0][0], False)] and calls[0][0].startswith("airlock-cb")  # straight to a worker
        assert slot.failures == 3 and (await health(host, "spin"))["inline"]["trips"] == 1
        assert host.manager.slots["fast"].inline.hits == 5
