"""The agent API end to end: the real Telegram component in the real host, the fake Bot API on 127.0.0.1, and
agents that know only HTTP (a subprocess in plain Python, the Node example, a push receiver)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from apihelp import api, auth, poll
from conftest import BUILT_CHANNELS, InstallFn

from airlock.agentapi.push import verify
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
REPO = HERE.parents[1]
USER = 4242
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(bot_username="airlock_test_bot") as f:
        yield f


@asynccontextmanager
async def telegram_host(home: Path, fake: FakeTelegram, install: InstallFn, agent: str,
                        **channel: Any) -> AsyncIterator[AirlockHost]:
    cfg: dict[str, Any] = {"bot_username": "airlock_test_bot", "polling_enabled": True}
    cfg.update(channel)
    install(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json", **cfg)
    store = SecretStore.open(home)
    store.set("telegram_bot_token", fake.token)
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides={"api.telegram.org": fake.base_url},
                              default_agent=agent, min_poll_interval_override_ms=100)
    async with AirlockHost(config, secrets=store) as host:
        yield host


async def conversation(fake: FakeTelegram, host: AirlockHost) -> list[str]:
    """`make run`'s conversation: a stranger is answered with a pairing code, the operator approves, the agent
    answers the next message. Returns what the bot sent."""
    fake.push_message("hello", chat_id=USER, user_id=USER, username="demo_user")
    first = await fake.wait_for_sent(1, timeout=15)
    [pending] = host.pairing.pending("telegram")
    assert pending.code in first[0]["text"]
    host.pairing.approve("telegram", pending.code)
    fake.push_message("hello from Telegram, through the sandbox", chat_id=USER, user_id=USER, username="demo_user")
    sent = await fake.wait_for_sent(2, timeout=20)
    return [str(m["text"]) for m in sent]


async def agent_conversation(fake: FakeTelegram, host: AirlockHost, argv: list[str],
                             env: dict[str, str] | None = None) -> tuple[list[str], bytes]:
    """``conversation`` with the agent ``argv`` running as a subprocess (``env``: its whole environment, default
    this one's), which must then exit 0 within 20 s. Returns what the bot sent and the agent's stdout."""
    agent = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    try:
        texts = await conversation(fake, host)
        out, err = await asyncio.wait_for(agent.communicate(), 20)
    finally:
        if agent.returncode is None:
            agent.kill()
    assert agent.returncode == 0, err.decode()
    return texts, out


async def test_long_poll_returns_when_a_webhook_arrives(fake: FakeTelegram, airlock_home: Path,
                                                        install_channel: InstallFn) -> None:
    async with telegram_host(airlock_home, fake, install_channel, "hooked", polling_enabled=False,
                             webhook_enabled=True, dm_policy="open") as host:
        token = host.agents.add("hooked", None)[0]
        async with aiohttp.ClientSession() as s:
            waiting = asyncio.create_task(poll(s, host, token, wait=20))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            update = fake.push_message("via webhook", chat_id=USER, user_id=USER)
            t0 = time.monotonic()
            r = await s.post(f"{host.base_url}/webhook/telegram", json=update,
                             headers={SECRET_HEADER: host.secrets.get("telegram_webhook_secret") or ""})
            assert r.status == 200
            [m] = await asyncio.wait_for(waiting, 5)
            assert time.monotonic() - t0 < 2
            assert (m["content"], m["user_id"], m["channel"]) == ("via webhook", str(USER), "telegram")
            r = await s.post(f"{api(host)}/v1/messages/{m['id']}/reply",
                             json={"text": "got it", "lease_token": m["lease_token"]}, headers=auth(token))
            assert r.status == 202
            outbox_id = (await r.json())["outbox_id"]
            assert (await fake.wait_for_sent(1))[0]["text"] == "got it"
            for _ in range(50):  # the outbox records the delivery right after the platform answered
                doc = await (await s.get(f"{api(host)}/v1/outbox/{outbox_id}", headers=auth(token))).json()
                if doc["state"] == "sent":
                    break
                await asyncio.sleep(0.05)
            assert (doc["state"], doc["attempts"], doc["last_error"]) == ("sent", 1, None)


async def test_a_subprocess_agent_speaking_only_http_carries_the_conversation(
        fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn) -> None:
    async with telegram_host(airlock_home, fake, install_channel, "py-agent") as host:
        token = host.agents.add("py-agent", None)[0]
        # -I: isolated mode, no PYTHONPATH, no site-packages of this checkout: the agent cannot import airlock
        texts, out = await agent_conversation(
            fake, host, [sys.executable, "-I", str(HERE / "http_agent.py"), api(host), token, "1"])
        assert texts[1] == "echo: hello from Telegram, through the sandbox"
        assert b"replied to" in out
        assert await fake.wait_for_chat_action(1)  # its "thinking" reached Telegram as a chat action
        assert host.bus.unacknowledged() == 0


async def test_the_node_example_agent(fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: examples/agent.mjs cannot run (install Node 18+ to run this test)")
    async with telegram_host(airlock_home, fake, install_channel, "echo-js") as host:
        token = host.agents.add("echo-js", None)[0]
        env = {**os.environ, "AIRLOCK_API": api(host), "AIRLOCK_TOKEN": token, "MAX_REPLIES": "1"}
        texts, out = await agent_conversation(fake, host, [node, str(REPO / "examples" / "agent.mjs")], env)
        assert texts[1] == "echo: hello from Telegram, through the sandbox" and b"replied to" in out


EXAMPLES = REPO / "examples"


def _tsc(tmp: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Compile ``source`` (a copy of examples/agent.ts, maybe altered) with examples/tsconfig.json's settings and the
    pinned compiler into ``tmp`` (an ES module directory)."""
    (tmp / "agent.ts").write_text(source)
    (tmp / "package.json").write_text('{"type": "module"}')
    (tmp / "tsconfig.json").write_text(json.dumps({
        "extends": str(EXAMPLES / "tsconfig.json"),
        "compilerOptions": {"outDir": str(tmp / "out"), "typeRoots": [str(EXAMPLES / "node_modules" / "@types")]},
        "files": ["agent.ts"]}))
    tsc = EXAMPLES / "node_modules" / ".bin" / "tsc"
    return subprocess.run([str(tsc), "-p", str(tmp)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def typescript_compiler() -> None:
    """`make examples-ts` (npm ci of examples/package-lock.json: the pinned typescript and @types/node)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node or npm is not on PATH: examples/agent.ts cannot be compiled and run (install Node 18+)")
    done = subprocess.run(["make", "-s", "examples-ts"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and (EXAMPLES / "node_modules" / ".bin" / "tsc").exists(), done.stdout + done.stderr


def test_the_typescript_example_is_type_checked(typescript_compiler: None, tmp_path: Path) -> None:
    source = (EXAMPLES / "agent.ts").read_text()
    assert _tsc(tmp_path, source).returncode == 0
    assert "m.content" in source
    typo = _tsc(tmp_path, source.replace("m.content", "m.contents"))  # a field the API does not send
    assert typo.returncode != 0 and "contents" in typo.stdout, typo.stdout


async def test_the_typescript_example_agent(typescript_compiler: None, fake: FakeTelegram, airlock_home: Path,
                                            install_channel: InstallFn, tmp_path: Path) -> None:
    compiled = await asyncio.to_thread(_tsc, tmp_path, (EXAMPLES / "agent.ts").read_text())
    assert compiled.returncode == 0, compiled.stdout
    async with telegram_host(airlock_home, fake, install_channel, "echo-ts") as host:
        token = host.agents.add("echo-ts", None)[0]
        env = {**os.environ, "AIRLOCK_API": api(host), "AIRLOCK_TOKEN": token, "MAX_REPLIES": "1"}
        texts, out = await agent_conversation(fake, host, ["node", str(tmp_path / "out" / "agent.js")], env)
        assert texts[1] == "echo: hello from Telegram, through the sandbox" and b"replied to" in out


async def _two_in_a_row(fake: FakeTelegram, home: Path, install: InstallFn, name: str, *argv: str) -> None:
    """Two messages of one chat wait in the log when the example agent ``argv`` starts: it leases both at once,
    answers the newer, echoing both, and acknowledges the older in one ``POST /v1/messages/ack``."""
    async with telegram_host(home, fake, install, name, dm_policy="open") as host:
        token = host.agents.add(name, None)[0]
        for text in ("first", "second"):
            fake.push_message(text, chat_id=USER, user_id=USER, username="demo_user")
        deadline = time.monotonic() + 20
        while host.bus.unacknowledged() < 2:
            assert time.monotonic() < deadline, "the two messages never reached the log"
            await asyncio.sleep(0.05)
        env = {**os.environ, "AIRLOCK_API": api(host), "AIRLOCK_TOKEN": token, "MAX_REPLIES": "1"}
        agent = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(agent.communicate(), 20)
        finally:
            if agent.returncode is None:
                agent.kill()
        assert agent.returncode == 0, err.decode()
        assert b"acknowledged 1 older message(s) in one request" in out and b"not acknowledged" not in err
        assert [m["text"] for m in await fake.wait_for_sent(1, timeout=15)] == ["echo: first / second"]
        assert host.bus.unacknowledged() == 0
        assert [o.payload["content"] for o in host.log.list_outbox() if o.kind == "respond"] == ["echo: first / second"]


async def test_the_node_example_acks_older_messages_in_one_batch(fake: FakeTelegram, airlock_home: Path,
                                                                 install_channel: InstallFn) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: examples/agent.mjs cannot run (install Node 18+ to run this test)")
    await _two_in_a_row(fake, airlock_home, install_channel, "echo-js", node, str(REPO / "examples" / "agent.mjs"))


async def test_the_typescript_example_acks_older_messages_in_one_batch(
        typescript_compiler: None, fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn,
        tmp_path: Path) -> None:
    compiled = await asyncio.to_thread(_tsc, tmp_path, (EXAMPLES / "agent.ts").read_text())
    assert compiled.returncode == 0, compiled.stdout
    await _two_in_a_row(fake, airlock_home, install_channel, "echo-ts", "node", str(tmp_path / "out" / "agent.js"))


@asynccontextmanager
async def receiver(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


async def test_push_mode_signed_posts_carry_the_conversation(fake: FakeTelegram, airlock_home: Path,
                                                             install_channel: InstallFn) -> None:
    seen: list[dict[str, Any]] = []
    creds: dict[str, str] = {}
    refused_once: set[str] = set()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        stamp, signature = request.headers["X-Airlock-Timestamp"], request.headers["X-Airlock-Signature"]
        if not verify(creds["secret"], stamp, body, signature) or abs(time.time() - int(stamp)) > 300:
            return web.Response(status=401)
        m = json.loads(body)
        seen.append(m)
        if m["content"].startswith("hello from") and m["id"] not in refused_once:
            refused_once.add(m["id"])  # the first push of the agent's message fails: it must come again
            return web.Response(status=503)
        if m["content"].startswith("hello from"):
            async with aiohttp.ClientSession() as s:  # reply through the API, then acknowledge with the 2xx
                r = await s.post(f"{creds['api']}/v1/messages/{m['id']}/reply",
                                 json={"text": f"echo: {m['content']}", "lease_token": m["lease_token"]},
                                 headers=auth(creds["token"]))
                assert r.status == 202
        return web.Response(status=204)

    async with receiver(hook) as url, telegram_host(airlock_home, fake, install_channel, "pushed") as host:
        creds["token"], secret = host.agents.add("pushed", host.secrets, url)
        creds["secret"], creds["api"] = secret or "", api(host)
        texts = await conversation(fake, host)
        assert texts[1] == "echo: hello from Telegram, through the sandbox"
        pushes = [m for m in seen if m["content"].startswith("hello from")]
        assert [m["attempts"] for m in pushes] == [1, 2] and pushes[0]["id"] == pushes[1]["id"]
        for _ in range(40):
            if host.bus.unacknowledged() == 0:
                break
            await asyncio.sleep(0.05)
        assert host.bus.unacknowledged() == 0
        # a forged signature is what the receiver refuses (the check above is not vacuous)
        assert not verify(creds["secret"], "1", b"{}", "v1=" + "0" * 64)


async def test_a_dead_letter_retried_from_the_cli_is_sent_by_the_running_gateway(
        fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn) -> None:
    async with telegram_host(airlock_home, fake, install_channel, "ops", dm_policy="open") as host, \
            aiohttp.ClientSession() as s:
        token = host.agents.add("ops", None)[0]
        r = await s.post(f"{api(host)}/v1/broadcast", json={"channel": "telegram", "user_id": "@carol",
                                                              "content": "promo"}, headers=auth(token))
        assert r.status == 202
        outbox_id = (await r.json())["outbox_id"]
        for _ in range(100):  # Telegram does not know @carol yet: 400, permanent, a dead letter
            doc = await (await s.get(f"{api(host)}/v1/outbox/{outbox_id}", headers=auth(token))).json()
            if doc["state"] == "failed":
                break
            await asyncio.sleep(0.05)
        assert doc["state"] == "failed" and "chat not found" in doc["last_error"]
        fake.push_message("hi, it's carol", chat_id=555, user_id=555, username="carol")  # now she is known
        env = {**os.environ, "AIRLOCK_HOME": str(airlock_home),
               "PYTHONPATH": os.pathsep.join([str(REPO / "host"), os.environ.get("PYTHONPATH", "")])}
        cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "airlock.cli", "messages", "retry",
                                                   outbox_id, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(cli.communicate(), 30)
        assert cli.returncode == 0, err.decode()
        assert b"queued" in out
        retried_at = time.monotonic()
        sent = await fake.wait_for_sent(1, timeout=5)
        assert sent[0]["text"] == "promo" and sent[0]["chat_id"] == 555
        assert time.monotonic() - retried_at < 2.5  # the sender looks at the log every second


async def test_a_streamed_reply_over_http_is_one_send_then_paced_edits(
        fake: FakeTelegram, airlock_home: Path, install_channel: InstallFn) -> None:
    """POST reply with "stream": true, then POST /v1/outbox/{id}/edit with each newer text and "final": true last:
    one sendMessage, editMessageText at most once per second, the final text last; the reply's outbox entry shows the
    Telegram message id; a finished stream refuses more text (409), another agent's reply does not exist (404)."""
    async with telegram_host(airlock_home, fake, install_channel, "writer", dm_policy="open") as host:
        token = host.agents.add("writer", None)[0]
        other = host.agents.add("other", None)[0]
        fake.push_message("write me a poem", chat_id=USER, user_id=USER)
        async with aiohttp.ClientSession() as s:
            [m] = await poll(s, host, token, wait=10)
            texts = ["Roses", "Roses are red,", "Roses are red, violets", "Roses are red, violets are blue,"]
            final = "Roses are red, violets are blue, this reply was streamed to you."
            r = await s.post(f"{api(host)}/v1/messages/{m['id']}/reply",
                             json={"text": texts[0], "lease_token": m["lease_token"], "stream": True},
                             headers=auth(token))
            assert r.status == 202, await r.text()
            reply_id = (await r.json())["outbox_id"]
            started = time.monotonic()
            edit = f"{api(host)}/v1/outbox/{reply_id}/edit"
            for text in texts[1:]:
                await asyncio.sleep(0.2)
                assert (await s.post(edit, json={"text": text}, headers=auth(token))).status == 202
            assert (await s.post(edit, json={"text": "not yours"}, headers=auth(other))).status == 404
            assert (await s.post(edit, json={"text": final, "final": True}, headers=auth(token))).status == 202
            again = await s.post(edit, json={"text": "more?"}, headers=auth(token))
            assert again.status == 409 and "finished" in (await again.json())["error"]
            sent = (await fake.wait_for_sent(1))[0]["message"]
            deadline = time.monotonic() + 10
            while fake._messages[(USER, sent["message_id"])].get("text") != final:
                assert time.monotonic() < deadline, "the final text never arrived"
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            doc = await (await s.get(f"{api(host)}/v1/outbox/{reply_id}", headers=auth(token))).json()
            assert doc["platform_message_id"] == str(sent["message_id"]) and doc["state"] == "sent"
    kinds = [(method, text) for method, _at, _id, text in fake.timeline]
    assert kinds[0] == ("sendMessage", texts[0]) and kinds[-1] == ("editMessageText", final)
    assert all(method == "editMessageText" for method, _ in kinds[1:])
    stamps = [at for _m, at, _id, _t in fake.timeline[1:]]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(stamps)), stamps
    assert len(stamps) <= int(elapsed) + 2
