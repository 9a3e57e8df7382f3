"""Host logs: ``configure_logging`` (json | text, level), context fields (channel, callback, one trace id per
request, also across the worker thread), and no stored secret value anywhere in the log of a realistic run:
the real Telegram guest against the fake Bot API, a sender whose display name is a stored secret, pairing
approved through the admin API, a reply, refused webhooks, at debug level."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from conftest import BUILT_CHANNELS, InstallFn, minimal_caps
from fake_telegram import FakeTelegram

from airlock.errors import ConfigError
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.observability import configure_logging
from airlock.observability.logs import REDACTOR
from airlock.stores import SecretStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "admin"))
import admin_helpers

pytestmark = pytest.mark.e2e


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything the ``airlock`` loggers write, as configured by ``configure_logging("json", "debug")``."""
    stream = io.StringIO()
    handler = configure_logging("json", "debug", stream=stream)
    yield stream
    logging.getLogger("airlock").removeHandler(handler)
    logging.getLogger("airlock").setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_formats_levels_and_bad_settings(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = logging.getLogger("airlock.test")
    configure_logging("text", "warning", stream=stream)
    log.info("not shown")
    log.warning("shown %d", 1)
    assert "not shown" not in stream.getvalue() and "WARNING airlock.test: shown 1" in stream.getvalue()
    json_stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream=json_stream)
    log.info("[%s] hello", "alpha")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    assert stream.getvalue().count("\n") == 1  # the first handler was replaced, not kept
    first, second = lines(json_stream)
    assert first["message"] == "[alpha] hello" and first["channel"] == "alpha" and first["level"] == "info"
    assert first["callback"] is None and first["trace_id"] is None and first["ts"].endswith("Z")
    assert "ValueError: boom" in second["exc"] and second["logger"] == "airlock.test"
    logging.getLogger("airlock").removeHandler(handler)
    with pytest.raises(ConfigError):
        configure_logging("xml", "info")
    with pytest.raises(ConfigError):
        configure_logging("json", "loud")


async def test_one_trace_id_per_request_on_the_loop_and_the_worker(
    captured: io.StringIO, airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    # The WAT guest logs the path in its callback, on a worker thread (inline attempts are off); the webhook
    # handler logs its answer on the event loop (debug level).
    install_channel(watguest.build_component(wat_dir, "alpha"), minimal_caps("alpha"))
    config = HostConfig.build(home=airlock_home, listen_port=0, inline_callbacks=False)
    async with AirlockHost(config) as host:
        for _ in range(2):
            assert await admin_helpers.post_webhook(host, "alpha") == 200
    records = lines(captured)
    guest = [r for r in records if r["logger"] == "airlock.guest" and r["message"] == "[alpha] /webhook/alpha"]
    answered = [r for r in records if r["message"] == "[alpha] webhook POST /webhook/alpha answered 200"]
    assert len(guest) == 2 and len(answered) == 2
    for g, a in zip(guest, answered, strict=True):
        assert (g["channel"], g["callback"]) == ("alpha", "on-http-request")
        assert (a["channel"], a["callback"]) == ("alpha", None)
        assert g["trace_id"] == a["trace_id"] and len(g["trace_id"]) == 16
    assert guest[0]["trace_id"] != guest[1]["trace_id"]


async def test_no_stored_secret_value_in_the_log_of_a_full_run(
    captured: io.StringIO, airlock_home: Path, install_channel: InstallFn
) -> None:
    pasted = "sk-proj-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
    store = SecretStore.open(airlock_home)
    store.set("openai_api_key", pasted)
    install_channel(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
                    bot_username="airlock_test_bot", polling_enabled=True, dm_policy="pairing",
                    long_poll_timeout_s=1)
    async with FakeTelegram(bot_username="airlock_test_bot") as fake:
        store.set("telegram_bot_token", fake.token)
        async with admin_helpers.admin_host(airlock_home, upstream_overrides={"api.telegram.org": fake.base_url},
                                            min_poll_interval_override_ms=50) as api:
            host = api.host
            # A stranger whose display name is the operator's API key (pasted by mistake): the guest logs it.
            fake.push_message("let me in", user_id=4242, first_name=pasted, username=None)
            sent = await fake.wait_for_sent(1, timeout=15)
            [pending] = host.pairing.pending("telegram")
            assert pending.code in sent[0]["text"]
            assert (await api.post("/api/pairing/telegram/approve", {"code": pending.code}))[0] == 200
            fake.push_message("hello after approval", user_id=4242, first_name=pasted, username=None)
            msg = await asyncio.wait_for(host.next_message(), 15)
            assert (await host.respond(msg, f"echo: {msg.content}")).ok
            async with aiohttp.ClientSession() as s:
                for value in ("nope", pasted):  # a refused webhook that carries a secret as its bad header
                    async with s.post(f"{host.base_url}/webhook/telegram", data=b"{}",
                                      headers={"X-Telegram-Bot-Api-Secret-Token": value}) as r:
                        assert r.status in (403, 404)
            logging.getLogger("airlock.test").warning("an operator's mistake: %s in %s", pasted, fake.token)
            values = {name: store.get(name) or "" for name in store.names()}
            assert set(values) >= {"openai_api_key", "telegram_bot_token", "telegram_webhook_secret"}
            assert (await api.get("/metrics"))[0] == 200
    text = captured.getvalue()
    assert len(text.splitlines()) >= 10 and all(json.loads(line) for line in text.splitlines())
    for name, value in values.items():
        assert value and value not in text, f"the value of {name} is in the log"
    assert "[REDACTED:openai_api_key]" in text and "[REDACTED:telegram_bot_token]" in text
    assert any(r["channel"] == "telegram" and r["callback"] == "on-poll" and r["trace_id"] for r in lines(captured))
    assert not REDACTOR._watched  # the host stopped watching its store when it stopped
