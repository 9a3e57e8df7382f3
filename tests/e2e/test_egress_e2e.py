"""End to end: what a real sandboxed component can and cannot reach, and that no secret value ever shows
up in anything it, the platform or the log sees. The probe guest (tests/guests/probe) performs the HTTP
request a test asks for and answers with everything it observed."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from conftest import REPO, InstallFn
from fake_base import serving

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

PROBE = REPO / "build" / "test-guests"
TOKEN = "987654:SUPER-secret/token+value"
OTHER_SECRET = "xoxb-not-for-this-channel"


@pytest.fixture
async def echo_platform() -> AsyncIterator[tuple[str, list[str]]]:
    """A platform that echoes the path it was called on (so a leaked token would come back)."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"ok": True, "you_called": request.raw_path},
                                 headers={"X-Echo-Path": request.raw_path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with serving(app) as url:
        yield url, seen


@pytest.fixture
async def probe_host(
    airlock_home: Path, install_channel: InstallFn, echo_platform: tuple[str, list[str]]
) -> AsyncIterator[AirlockHost]:
    caps = json.loads((PROBE / "probe.capabilities.json").read_text())
    caps["capabilities"]["http"]["allowlist"].append({"host": "localhost", "path_prefix": "/"})
    install_channel(PROBE / "probe.wasm", caps)
    store = SecretStore.open(airlock_home)
    store.set("telegram_bot_token", TOKEN)
    store.set("slack_bot_token", OTHER_SECRET)
    config = HostConfig.build(home=airlock_home, listen_port=0,
                              upstream_overrides={"api.telegram.org": echo_platform[0]})
    async with AirlockHost(config, secrets=store) as host:
        yield host


async def probe(host: AirlockHost, **ask: Any) -> tuple[dict[str, Any], str]:
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{host.base_url}/webhook/probe", json=ask)
        text = await r.text()
        assert r.status == 200, text
        return json.loads(text), text


def airlock_log(caplog: pytest.LogCaptureFixture) -> str:
    """Everything Airlock logged (the fake platform's own access log is not Airlock's)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("airlock"))


def assert_no_secret(*texts: str) -> None:
    forms = {TOKEN, quote(TOKEN, safe=""), quote(TOKEN, safe=":+"), OTHER_SECRET}
    for text in texts:
        for form in forms:
            assert form not in text


async def test_token_injected_at_boundary_and_redacted_everywhere(
    probe_host: AirlockHost, echo_platform: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen, raw = await probe(probe_host, url="https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getMe",
                            secret="telegram_bot_token")
    # The platform received the real token in the path ...
    # (a "/" inside a value injected into a path segment is percent-encoded, as it must be)
    assert echo_platform[1] == [f"/bot{quote(TOKEN, safe=':+')}/getMe"]
    # ... while the guest saw the call succeed, knew the secret exists, and never saw its value.
    assert seen["status"] == 200 and seen["secret_exists"] is True
    assert "[REDACTED]" in seen["body"]
    message = await probe_host.next_message()
    assert_no_secret(raw, message.content, json.dumps(seen), airlock_log(caplog))


async def test_host_off_the_allow_list_refused(
    probe_host: AirlockHost, echo_platform: tuple[str, list[str]]
) -> None:
    seen, _ = await probe(probe_host, url="https://evil.example.com/steal")
    assert "error" in seen and "allow" in seen["error"].lower()
    assert echo_platform[1] == []


async def test_name_resolving_to_loopback_refused(probe_host: AirlockHost) -> None:
    seen, _ = await probe(probe_host, url="https://localhost/admin")
    assert "error" in seen, seen
    assert any(word in seen["error"].lower() for word in ("non-public", "private", "loopback")), seen


async def test_placeholder_for_a_secret_the_channel_may_not_use_refused(
    probe_host: AirlockHost, echo_platform: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen, raw = await probe(probe_host, url="https://api.telegram.org/bot{SLACK_BOT_TOKEN}/getMe",
                            secret="slack_bot_token")
    assert "error" in seen and seen["secret_exists"] is False
    assert echo_platform[1] == []
    assert_no_secret(raw, airlock_log(caplog))


async def test_plain_http_refused(probe_host: AirlockHost, echo_platform: tuple[str, list[str]]) -> None:
    seen, _ = await probe(probe_host, url="http://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}/getMe")
    assert "error" in seen and "https" in seen["error"].lower()
    assert echo_platform[1] == []
