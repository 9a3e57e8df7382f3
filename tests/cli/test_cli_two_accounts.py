"""Two accounts of one platform in one gateway: the Telegram component installed twice through the real CLI
(``telegram``, and ``--as support-bot``), each with its own token (``telegram_bot_token`` and
``support-bot/telegram_bot_token``), config, pairing store, workspace and health, against two fake Telegram Bot
API servers (``airlock_demo.telegram``) behind a router that sends each token's calls to its own bot. Each bot
answers its own chats and only those; the component is compiled and held in memory once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from clirun import MASTER_KEY, run_cli
from conftest import BUILT_CHANNELS

from airlock.agents.echo import echo_agent
from airlock.channels.activation import public_path
from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "telegram.wasm"
CAPS = BUILT_CHANNELS / "telegram.capabilities.json"
TOKENS = {"telegram": "111111:main-bot-secret-token", "support-bot": "222222:support-bot-secret-token"}
WAIT_S = 20.0


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeTelegram]]:
    async with FakeTelegram(TOKENS["telegram"], bot_username="main_bot") as main, \
            FakeTelegram(TOKENS["support-bot"], bot_username="support_bot") as support:
        yield {"telegram": main, "support-bot": support}


@pytest.fixture
async def router(fakes: dict[str, FakeTelegram]) -> AsyncIterator[str]:
    """``/bot<token>/<method>`` -> the fake bot with that token (one upstream override serves both)."""
    by_token = {f.token: f for f in fakes.values()}
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def forward(request: web.Request) -> web.Response:
        fake = by_token.get(request.match_info["token"])
        if fake is None:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        async with session.request(request.method, fake.base_url + request.rel_url.raw_path_qs,
                                   data=await request.read(), headers={
                                       "Content-Type": request.headers.get("Content-Type", "application/json")}) as r:
            return web.Response(status=r.status, body=await r.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await session.close()
        await runner.cleanup()


def test_an_instance_serves_its_own_webhook_path() -> None:
    assert public_path("/webhook/telegram", "telegram", "telegram") == "/webhook/telegram"
    assert public_path("/webhook/telegram", "support-bot", "telegram") == "/webhook/support-bot"
    assert public_path("/webhook/telegram/x", "support-bot", "telegram") == "/webhook/support-bot/x"
    assert public_path("/hooks/in", "support-bot", "telegram") == "/webhook/support-bot/hooks/in"


async def _cli(home: Path, *args: str, input: str | None = None) -> str:
    proc = await asyncio.to_thread(run_cli, home, *args, input=input)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


async def test_two_telegram_bots_side_by_side_each_answers_its_own_chats(
        airlock_home: Path, fakes: dict[str, FakeTelegram], router: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_MASTER_KEY", MASTER_KEY)  # the CLI's key (clirun)
    caps = json.loads(CAPS.read_text())
    caps["config"].update(polling_enabled=True, dm_policy="open")
    src = tmp_path / "telegram.capabilities.json"
    src.write_text(json.dumps(caps))
    # The first account as any install makes it (in process: the CLI's install is tested elsewhere) ...
    stage(ChannelStore(airlock_home / "channels"), WASM.read_bytes(), src.read_bytes(), source=str(src))
    SecretStore.open(airlock_home).set("telegram_bot_token", TOKENS["telegram"])
    # ... and the second through the CLI: its own name, secret namespace and settings.
    out = await _cli(airlock_home, "channels", "install", str(WASM), str(src), "--as", "support-bot")
    assert "airlock secrets set support-bot/telegram_bot_token" in out
    await _cli(airlock_home, "secrets", "set", "support-bot/telegram_bot_token", input=TOKENS["support-bot"] + "\n")
    await _cli(airlock_home, "channels", "config", "set", "support-bot", "dm_policy", "pairing")

    config = HostConfig.build(home=airlock_home, listen_port=0, upstream_overrides={"api.telegram.org": router})
    async with AirlockHost(config, secrets=SecretStore.open(airlock_home), control=True) as host:
        main, support = host.manager.slots["telegram"], host.manager.slots["support-bot"]
        assert main.active and support.active, (main.reason, support.reason)
        assert main.channel.loaded.component is support.channel.loaded.component  # compiled once, shared
        assert support.channel.caps.config["dm_policy"] == "pairing" and main.channel.caps.config["dm_policy"] == "open"
        agent = asyncio.create_task(echo_agent(host))
        try:
            fakes["telegram"].push_message("hello main", chat_id=101, user_id=101)
            fakes["support-bot"].push_message("hello support", chat_id=202, user_id=202)
            sent_main = await fakes["telegram"].wait_for_sent(1, timeout=WAIT_S)
            assert [(m["chat_id"], m["text"]) for m in sent_main] == [(101, "echo: hello main")]
            code_msg = (await fakes["support-bot"].wait_for_sent(1, timeout=WAIT_S))[0]
            assert code_msg["chat_id"] == 202 and "pairing code" in code_msg["text"]
            [pending] = host.pairing.pending("support-bot")  # the guest said "telegram"; its instance's store
            assert host.pairing.pending("telegram") == []
            # the message names the instance the operator approves on (the host's instance_name)
            assert f"airlock pairing approve support-bot {pending.code}" in code_msg["text"]
            host.pairing.approve("support-bot", pending.code)
            fakes["support-bot"].push_message("again", chat_id=202, user_id=202)
            sent_support = await fakes["support-bot"].wait_for_sent(2, timeout=WAIT_S)
            assert (sent_support[1]["chat_id"], sent_support[1]["text"]) == (202, "echo: again")
            await asyncio.sleep(0.5)
            assert len(fakes["telegram"].sent_messages) == 1  # nothing of the support bot's went to the main bot
        finally:
            agent.cancel()
        assert host.manager.missing_secrets(support.channel.caps, "support-bot") == []
        # A setting the new start refuses (the guest's on-start fails): rolled back at once, setting not kept.
        settings = (airlock_home / "channels" / "support-bot" / "operator.json").read_bytes()
        refused = await asyncio.to_thread(run_cli, airlock_home, "channels", "config", "set", "support-bot",
                                          "poll_interval_ms", "soon")
        assert refused.returncode == 1 and "did not start (on-start failed" in refused.stderr, refused.stderr
        assert "runs again" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert (airlock_home / "channels" / "support-bot" / "operator.json").read_bytes() == settings
        assert host.manager.slots["support-bot"].active and host.manager.slots["telegram"].active
    with sqlite3.connect(airlock_home / "state.db") as db:
        offsets = dict(db.execute("SELECT channel, value FROM workspace WHERE path = 'state/offset'").fetchall())
        instances = {row[0] for row in db.execute("SELECT DISTINCT instance FROM inbound")}
    assert set(offsets) == {"telegram", "support-bot"}  # each account's own poll cursor
    assert instances == {"telegram", "support-bot"}
    # The token of one account never went to the other's bot.
    assert all(TOKENS["support-bot"] not in path for _, path in fakes["telegram"].requests)
    assert all(TOKENS["telegram"] not in path for _, path in fakes["support-bot"].requests)
