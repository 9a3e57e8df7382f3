"""``airlock serve --workers 2`` on SQLite, all real (issue 12, item 1): the supervisor and its worker processes,
the template-rust component, state.db shared by the workers, an agent over the agent HTTP API.

1. Webhooks under load are answered by both workers (``X-Airlock-Worker``).
2. kill -9 of a worker under load: the supervisor restarts it; every message whose webhook was answered 200
   reaches the agent, exactly once after dedupe by id, in order per conversation (clients retry what failed,
   with the same id, as platforms do).
3. SIGTERM stops the supervisor and every worker cleanly (exit 0, status file removed).
4. A worker that dies at every start is a crash loop: the supervisor stops restarting it (and, since it is worker
   0, the agent side, stops the gateway with exit code 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import BUILT_CHANNELS, InstallFn
from workers_harness import Agent, cli, env_for, start

from airlock.workers.supervisor import status_path

pytestmark = pytest.mark.e2e

CHANNEL = "template-rust"
SECRET = "workers-e2e-secret"
USERS = 4
PER_USER = 30
KILL_AFTER = 40
"""Webhooks answered 200 before worker 1 is killed."""
DEATHS, BACKOFF_S = 3, 0.2
"""The crash-loop test's rule (HostConfig.worker_crash_loop_deaths, worker_restart_backoff_s; 5 and 0.5 s by
default): three deaths, 0.2 s then 0.4 s apart."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def send_all(s: aiohttp.ClientSession, base: str, user: int, answered: list[tuple[str, str]]) -> None:
    """User ``user`` sends its messages one after another; each is retried (same id) until answered 200."""
    for n in range(PER_USER):
        mid = f"u{user}-{n:03d}"
        for _ in range(200):
            try:
                async with s.post(f"{base}/webhook/{CHANNEL}", json={"user": f"u{user}", "text": mid, "id": mid},
                                  headers={"X-Airlock-Webhook-Secret": SECRET}) as r:
                    if r.status == 200:
                        answered.append((mid, r.headers["X-Airlock-Worker"]))
                        break
                    assert r.status in (502, 503), await r.text()
            except aiohttp.ClientError:  # the worker holding the connection was killed: send it again
                pass
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{mid} never answered 200")


async def test_two_workers_answer_webhooks_survive_kill_9_and_stop_on_sigterm(
        airlock_home: Path, install_channel: InstallFn, tmp_path: Path) -> None:
    caps = json.loads((BUILT_CHANNELS / f"{CHANNEL}.capabilities.json").read_text())
    # the load is 120 messages in seconds: above the template's 100 a minute (shared by the workers)
    caps["capabilities"]["channel"]["emit_rate_limit"] = {"messages_per_minute": 10_000, "messages_per_hour": 100_000}
    install_channel(BUILT_CHANNELS / f"{CHANNEL}.wasm", caps, dm_policy="open")
    (airlock_home / "airlock.toml").write_text('default_agent = "bot"\n')
    env = env_for(airlock_home)
    await cli(env, "secrets", "set", "template_rust_webhook_secret", stdin=SECRET.encode())
    token = json.loads(await cli(env, "agents", "add", "bot", "--json"))["token"]
    gw = await start(airlock_home, tmp_path / "serve.log")
    agent = Agent(gw, token)
    answered: list[tuple[str, str]] = []
    try:
        # a new connection per request: the kernel hands each to whichever worker accepts first
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            senders = [asyncio.create_task(send_all(s, gw.base, u, answered)) for u in range(USERS)]
            while len(answered) < KILL_AFTER:
                await asyncio.sleep(0.01)
            victim = gw.workers()[1]["pid"]
            os.kill(victim, signal.SIGKILL)
            await asyncio.gather(*senders)
            workers = await gw.wait_workers(
                lambda ws: ws[1]["pid"] != victim and ws[1]["state"] == "ready", 60, "worker 1 restarted")
            assert workers[1]["restarts"] == 1 and workers[1]["last_exit"] == -signal.SIGKILL
            assert workers[0]["restarts"] == 0
            doc = json.loads(await cli(env, "status", "--json"))  # status reports every worker
            assert [(w["index"], w["state"], w["restarts"]) for w in doc["workers"]] == [(0, "ready", 0),
                                                                                        (1, "ready", 1)]
            async with s.get(f"{gw.base}/health") as r:
                health = await r.json()
            assert health["worker"] in (0, 1) and len(health["workers"]["workers"]) == 2
            # the supervisor holds the home's lock: a second gateway on this home is refused at once
            second = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "airlock.cli", "serve", "--workers", "2", "--port", "0", "--no-admin",
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(second.communicate(), 30)
            assert second.returncode != 0 and f"pid {gw.proc.pid}" in err.decode(), err.decode()
            ids = {mid for mid, _ in answered}
            assert len(ids) == USERS * PER_USER
            assert {w for _, w in answered} == {"0", "1"}, "both workers answer webhooks"
            await agent.drain(s, lambda got: {m["content"] for m in got} >= ids, 60)
        contents = [m["content"] for m in agent.received]
        assert set(contents) == ids
        firsts: dict[str, list[int]] = {}
        for c in dict.fromkeys(contents):  # dedupe by id, keeping the first delivery's position
            user, n = c.split("-")
            firsts.setdefault(user, []).append(int(n))
        assert all(ns == sorted(ns) for ns in firsts.values()), "per-conversation order kept"
        pids = [w["pid"] for w in gw.workers()]
    finally:
        code = await gw.stop()
    assert code == 0, gw.log()[-3000:]
    assert not any(pid_alive(p) for p in pids)
    assert not status_path(airlock_home).exists()
    assert "all workers stopped" in gw.log()


async def test_a_worker_that_dies_at_every_start_is_a_crash_loop(airlock_home: Path, tmp_path: Path) -> None:
    # state.db is a directory: the supervisor (which never opens the state) starts, every worker dies at start
    (airlock_home / "broken.db").mkdir()
    (airlock_home / "airlock.toml").write_text(
        f'state = "sqlite:///broken.db"\nworker_crash_loop_deaths = {DEATHS}\nworker_restart_backoff_s = {BACKOFF_S}\n')
    started = time.monotonic()
    gw = await start(airlock_home, tmp_path / "serve.log", ready=False)
    code = await asyncio.wait_for(gw.proc.wait(), 60)
    log = gw.log()
    assert code == 1, log[-3000:]
    assert "crash loop, not restarted" in log
    assert log.count("worker 0 started") == DEATHS
    assert "worker 1 started" not in log  # the others wait for worker 0's first start
    assert "exited with 1; restarting in 0.2 s" in log and "restarting in 0.4 s" in log  # the backoff doubles
    assert time.monotonic() - started >= BACKOFF_S * (2 ** (DEATHS - 1) - 1)
