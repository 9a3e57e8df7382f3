"""``airlock serve`` with ``state = "postgresql://..."`` end to end (issue 12), all real: the gateway process, a
PostgreSQL server that is stopped mid-run (``stoppable_postgres``), the template-rust component, a fake platform on
loopback receiving the reply, and an agent speaking the agent HTTP API.

1. A webhook is answered 200; the message reaches the agent over ``GET /v1/messages``; the agent's reply
   acknowledges it and goes out through the outbox to the platform; PostgreSQL holds the acked entry and the sent
   reply.
The webhook secret is set with ``airlock secrets set`` into PostgreSQL (encrypted), not into the home's file.

2. PostgreSQL is stopped: every webhook is answered 503 with Retry-After (never 500, never 200 = accepted and lost);
   once it is back, webhooks are answered 200 again within a bound, and exactly the 200-answered messages are in
   the log (none of the refused ones).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest
from aiohttp import web
from conftest import BUILT_CHANNELS, InstallFn
from servers import PostgresServer, free_port

from airlock.messages.postgres import PostgresMessageLog
from airlock.state.postgres import CONNECT_WAIT_S, RECONNECT_WINDOW_S, PgDb
from airlock.stores._sql import PgQmarkDb
from airlock.stores.agents import AgentRegistry

pytestmark = pytest.mark.e2e

CHANNEL = "template-rust"
SECRET = "pg-e2e-webhook-secret"
START_TIMEOUT_S = 60.0
RECOVERY_S = RECONNECT_WINDOW_S + 2 * CONNECT_WAIT_S + 5
"""Seconds after PostgreSQL is back within which webhooks must be accepted again."""


async def fake_platform() -> tuple[web.AppRunner, str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}", received


async def start_gateway(env: dict[str, str], port: int, platform_url: str,
                        logfile: Path) -> asyncio.subprocess.Process:
    with logfile.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airlock.cli", "serve", "--port", str(port), "--agent", "none", "--no-admin",
            "--upstream", f"hooks.example.com={platform_url}", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.returncode is None, logfile.read_text()[-3000:]
            try:
                async with s.get(f"http://127.0.0.1:{port}/health/{CHANNEL}") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("the gateway did not come up: " + logfile.read_text()[-3000:])


async def set_secret(env: dict[str, str], name: str, value: str) -> None:
    cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "airlock.cli", "secrets", "set", name, env=env,
                                               stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                               stderr=asyncio.subprocess.PIPE)
    _, err = await cli.communicate(value.encode())
    assert cli.returncode == 0, err.decode()


class Gateway(NamedTuple):
    """A running ``airlock serve`` of ``serve_template``."""

    proc: asyncio.subprocess.Process
    env: dict[str, str]
    """Its environment (home, master key, agent API port): a CLI run with it reaches the same state."""
    base: str
    """The gateway's URL."""
    api: str
    """The agent API's URL, ``.../v1``."""
    auth: dict[str, str]
    """The ``Authorization`` header of the agent ``bot``."""


async def serve_template(home: Path, install: InstallFn, state_url: str, master_key: str, platform_url: str,
                         logfile: Path, config: str) -> Gateway:
    """``airlock serve`` in a subprocess (stderr to ``logfile``) with ``config`` as its airlock.toml (its state on
    ``state_url``), the template-rust channel installed (DMs open, its webhook secret set through the CLI, so into
    the state backend, encrypted), replies going to ``platform_url``, and an agent ``bot`` registered."""
    install(BUILT_CHANNELS / f"{CHANNEL}.wasm", BUILT_CHANNELS / f"{CHANNEL}.capabilities.json", dm_policy="open")
    (home / "airlock.toml").write_text(config)
    api_port, port = free_port(), free_port()
    env = {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_MASTER_KEY": master_key,
           "AIRLOCK_AGENT_API_PORT": str(api_port)}
    await set_secret(env, "template_rust_webhook_secret", SECRET)
    registry = AgentRegistry(PgQmarkDb(PgDb(state_url, max_size=1), owns_db=True))  # the cluster's registry
    token, _ = registry.add("bot", None)
    registry.close()
    proc = await start_gateway(env, port, platform_url, logfile)
    return Gateway(proc, env, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}/v1",
                   {"Authorization": f"Bearer {token}"})


async def post(s: aiohttp.ClientSession, base: str, mid: str) -> tuple[int, str | None]:
    async with s.post(f"{base}/webhook/{CHANNEL}", json={"user": "u1", "text": f"text {mid}", "id": mid},
                      headers={"X-Airlock-Webhook-Secret": SECRET}) as r:
        return r.status, r.headers.get("Retry-After")


async def test_serve_on_postgresql_delivers_and_answers_503_while_the_database_is_down(
    airlock_home: Path, install_channel: InstallFn, stoppable_postgres: PostgresServer, master_key: str, tmp_path: Path,
) -> None:
    url = stoppable_postgres.create_schema()
    runner, platform_url, received = await fake_platform()
    proc, env, base, api, auth = await serve_template(
        airlock_home, install_channel, url, master_key, platform_url, tmp_path / "serve.log",
        f'state = "{url}"\ndefault_agent = "bot"\n')
    log = PostgresMessageLog.open(url)
    try:
        async with aiohttp.ClientSession() as s:
            # 1. webhook -> PostgreSQL log -> agent API -> reply -> outbox -> platform
            assert await post(s, base, "m-1") == (200, None)
            async with s.get(f"{api}/messages?wait=10", headers=auth) as r:
                assert r.status == 200
                (msg,) = (await r.json())["messages"]
            assert msg["content"] == "text m-1"
            async with s.post(f"{api}/messages/{msg['id']}/reply", headers=auth,
                              json={"text": "pong", "lease_token": msg["lease_token"]}) as r:
                assert r.status in (200, 201, 202), await r.text()
            deadline = time.monotonic() + 15
            while not received and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert [b.get("text") for b in received] == ["pong"]
            entry = log.get(msg["id"])
            assert entry is not None and entry.state == "acked"
            (sent,) = log.list_outbox()
            assert sent.state == "sent" and sent.in_reply_to == msg["id"]

            # 2. the database goes away: 503 + Retry-After, never 500 nor 200
            stoppable_postgres.stop()
            started = time.monotonic()
            refused = [await post(s, base, f"down-{i}") for i in range(4)]
            assert all(status == 503 and retry for status, retry in refused), refused
            # only the first waits for a connection (CONNECT_WAIT_S); the others are refused at once
            assert time.monotonic() - started < CONNECT_WAIT_S + 2
            async with s.get(f"{base}/health") as r:
                assert r.status == 503

            # ... and it comes back: accepted again within RECOVERY_S
            stoppable_postgres.start()
            back, status, i = time.monotonic(), 0, 0
            while status != 200:
                i += 1
                status, _ = await post(s, base, f"after-{i}")
                assert status in (200, 503), status
                assert time.monotonic() - back < RECOVERY_S, "webhooks still refused after the database came back"
                if status != 200:
                    await asyncio.sleep(0.2)
        contents = sorted(e.content for e in log.list_inbound())
        assert contents == sorted(["text m-1", f"text after-{i}"])  # nothing refused was kept
        cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "airlock.cli", "messages", "list", "--json",
                                                   env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
        out, err = await cli.communicate()
        assert cli.returncode == 0, err.decode()
        listed = {(d["direction"], d["state"]) for d in json.loads(out)}  # the operator's CLI reads PostgreSQL too
        assert {("in", "acked"), ("out", "sent")} <= listed
    finally:
        log.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await runner.cleanup()
