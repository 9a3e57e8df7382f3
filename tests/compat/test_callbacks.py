"""near:agent conformance: the ``on-status``, ``on-broadcast`` and ``on-shutdown`` exports, called by the real host.

The compat guest (IronClaw's telegram file, a FakeTelegram on loopback) shows what each call handed it by sending
it to the fake (``tests/guests/compat/compat_channel.py``). IronClaw's rules: nearai/ironclaw ``wit/channel.wit``
(the three exports) and ``src/channels/wasm/wrapper.rs`` (``WasmChannel::handle_status_update``,
``call_on_status``, ``status_to_wit``, ``call_on_broadcast``, ``impl Channel for WasmChannel``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from compat_support import next_message, telegram_host, webhook
from conftest import InstallFn

from airlock.channels import replies as replies_mod
from airlock.errors import GuestReturnedError
from airlock.runtime.values import STATUS_TYPES
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

REFRESH_S = 0.2
"""The "thinking" refresh for these tests (``TYPING_REFRESH_S``, 4 s in production, as IronClaw's 4 s repeater)."""


def seen(tg: FakeTelegram) -> list[dict[str, Any]]:
    """What the guest's on-status / on-broadcast calls received, as it sent them to the fake."""
    return [json.loads(m["text"]) for m in tg.sent_messages if m["text"].startswith("{")]


async def test_on_status_gets_every_status_with_the_original_metadata_and_typing_outlives_progress(
        airlock_home: Path, install_channel: InstallFn, monkeypatch: pytest.MonkeyPatch) -> None:
    """``status_to_wit``: each agent status reaches on-status as the WIT enum, with the text and the ORIGINAL
    message's metadata (the routing the channel needs). ``handle_status_update``: "thinking" is repeated every
    4 s; terminal or waiting states (done, interrupted, approval-needed, auth-required) stop the repeat, progress
    states (tool-*, job-started, status, auth-completed) keep it running, and the reply stops it. Airlock
    refreshes per message (IronClaw: one repeater per channel) and for at most 5 minutes."""
    monkeypatch.setattr(replies_mod, "TYPING_REFRESH_S", REFRESH_S)
    async with telegram_host(airlock_home, install_channel) as (host, tg):
        assert await webhook(host, {"message": {"from": {"id": 1001}, "chat": {"id": 1001}, "text": "hi"}}) == 200
        msg = await next_message(host)
        meta = {"chat_id": 1001, "validated": True}
        assert (await host.send_status(msg, "thinking", "working")).ok
        await tg.wait_for_chat_action(1)
        assert (await host.send_status(msg, "tool-started", "Tool started: search")).ok
        typing = len(tg.chat_actions)
        await asyncio.sleep(REFRESH_S * 4)
        assert len(tg.chat_actions) >= typing + 2  # still typing after a progress status (at most 1 in flight)
        assert (await host.send_status(msg, "done", "Done")).ok
        await asyncio.sleep(REFRESH_S)  # a refresh already running when "done" came may still finish
        settled = len(tg.chat_actions)
        await asyncio.sleep(REFRESH_S * 3)
        assert len(tg.chat_actions) == settled  # "done" stopped it
        others = [s for s in STATUS_TYPES if s not in ("thinking", "tool-started", "done")]
        for status in others:
            assert (await host.send_status(msg, status, f"text of {status}")).ok
        updates = [u for u in seen(tg) if u["status"] != "thinking"]
    assert updates[:2] == [{"status": "tool-started", "message": "Tool started: search", "metadata": meta},
                           {"status": "done", "message": "Done", "metadata": meta}]
    assert updates[2:] == [{"status": s, "message": f"text of {s}", "metadata": meta} for s in others]
    assert {"status": "thinking", "message": "working", "metadata": meta} in seen(tg)


async def test_on_broadcast_reaches_the_user_and_returns_the_guests_error(
        airlock_home: Path, install_channel: InstallFn) -> None:
    """``call_on_broadcast``: a proactive message goes to the user id with the agent's text; the guest's
    ``err(string)`` is the delivery's error. IronClaw passes an empty ``message-id`` and ``metadata-json`` ``""``;
    Airlock passes the outbox entry's id (stable across retries) and ``{}`` (the JSON object the field promises,
    which a guest that parses it accepts either way): a known difference no guest is worse off for."""
    async with telegram_host(airlock_home, install_channel) as (host, tg):
        out = await host.broadcast("telegram", "5005", "hello proactive")
        assert out.ok, out.error
        sent = await tg.wait_for_sent(1)
        refused = await host.broadcast("telegram", "5005", "fail")
    assert sent[0]["chat_id"] == 5005
    got = json.loads(sent[0]["text"])
    assert got["content"] == "hello proactive" and got["metadata"] == {} and got["thread_id"] is None
    assert got["message_id"]
    assert isinstance(refused.error, GuestReturnedError)
    assert "RuntimeError: the platform refused the broadcast" in str(refused.error)


async def test_on_shutdown_runs_when_the_host_stops(
        airlock_home: Path, install_channel: InstallFn, caplog: pytest.LogCaptureFixture) -> None:
    """``wit/channel.wit``: on-shutdown is "called when the channel is being unloaded". Airlock calls it once per
    active channel when the host stops (and when an operator disables the channel), after polling and sockets
    stopped, with outbound HTTP still available; its logs are flushed. IronClaw's host (``impl Channel for
    WasmChannel``, ``shutdown``) stops the channel's tasks without calling the export: a known difference, kept
    because the WIT promises the call and a guest's cleanup (e.g. deleting its webhook) needs it."""
    with caplog.at_level(logging.INFO, logger="airlock.guest"):
        async with telegram_host(airlock_home, install_channel) as (_host, tg):
            assert tg.sent_messages == []
    assert [(m["chat_id"], m["text"]) for m in tg.sent_messages] == [(1, "shutdown")]
    assert "[telegram] compat on-shutdown ran" in caplog.text
