"""``airlock serve --workers 2``, all real: the channel lifecycle (install, disable, enable, upgrade, rollback,
remove, and a stored secret) acts at once in every worker (issue 12, the live path of issue 9): the supervisor's
``HOME/control.sock`` forwards each operation to worker 0 and then to the others (``workers.fanout``), and SIGHUP
reaches every worker.

Each check sends webhooks on fresh connections until both workers answered (``X-Airlock-Worker``), so a worker
that missed a change shows as a wrong status from that worker. Guest: the WAT test component, two builds (v2 also
accepts PUT, so the upgrade is visible per worker).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from watguest import build_component
from workers_harness import Gateway, cli, env_for, start

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore
from airlock.control.server import worker_socket

pytestmark = pytest.mark.e2e

NAME = "minimal"
MAX_SENDS = 200
"""Webhooks one check may send before both workers must have answered (SO_REUSEPORT spreads new connections by
a hash of the client's port, so both get some within a few)."""
LOAD_SENDERS = 4
"""Concurrent webhook senders during the upgrade."""
MAX_RETRIES = 100
"""503 + Retry-After answers one webhook may get before the test fails."""


def caps_doc(version: str, name: str = NAME, secret: str | None = None) -> bytes:
    doc: dict[str, Any] = {"name": name, "version": version, "wit_version": "0.1.0",
                           "capabilities": {"channel": {
                               "allowed_paths": [f"/webhook/{name}"],
                               "emit_rate_limit": {"messages_per_minute": 10**6, "messages_per_hour": 10**7}}},
                           "config": {"dm_policy": "open"}}
    if secret is not None:
        doc["setup"] = {"required_secrets": [{"name": secret}]}
    return json.dumps(doc).encode()


async def by_worker(gw: Gateway, method: str = "POST", name: str = NAME) -> dict[str, set[int]]:
    """Statuses by worker index, from webhooks on fresh connections until both workers answered."""
    seen: dict[str, set[int]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for n in range(MAX_SENDS):
            async with s.request(method, f"{gw.base}/webhook/{name}", data=f"m-{n}".encode()) as r:
                seen.setdefault(r.headers["X-Airlock-Worker"], set()).add(r.status)
            if len(seen) == 2 and n >= 8:
                return seen
    raise AssertionError(f"only workers {sorted(seen)} answered {MAX_SENDS} webhooks")


async def send_load(gw: Gateway, stop: asyncio.Event, sent: list[str], statuses: list[tuple[str, int]]) -> None:
    """:data:`LOAD_SENDERS` post unique webhooks on fresh connections until ``stop``; a 503 must carry Retry-After
    and is retried, as a platform would."""
    counter = itertools.count()

    async def sender(s: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            body = f"load-{next(counter)}"
            for _ in range(MAX_RETRIES):
                async with s.post(f"{gw.base}/webhook/{NAME}", data=body.encode()) as r:
                    statuses.append((r.headers["X-Airlock-Worker"], r.status))
                    if r.status == 503 and "Retry-After" in r.headers:
                        await asyncio.sleep(0.05)
                        continue
                    assert r.status == 200, (r.status, await r.text())
                    sent.append(body)
                    break
            else:
                raise AssertionError(f"{body}: still 503 after {MAX_RETRIES} tries")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        await asyncio.gather(*(sender(s) for _ in range(LOAD_SENDERS)))


@pytest.fixture
def home(airlock_home: Path, wat_dir: Path) -> Path:
    store = ChannelStore(airlock_home / "channels")
    stage(store, build_component(wat_dir, NAME).read_bytes(), caps_doc("0.1.0"), source=NAME)
    stage(store, build_component(wat_dir, "gated").read_bytes(), caps_doc("0.1.0", "gated", "gated_token"),
          source="gated")
    (airlock_home / "airlock.toml").write_text("bus_capacity = 100000\n")  # --agent none: nothing acks them
    return airlock_home


async def test_disable_enable_and_upgrade_act_at_once_in_both_workers(home: Path, wat_dir: Path,
                                                                       tmp_path: Path) -> None:
    env = env_for(home)
    gw = await start(home, tmp_path / "serve.log")
    try:
        for sock in (home / "control.sock", worker_socket(home, 0), worker_socket(home, 1)):
            assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600, sock
        assert await by_worker(gw) == {"0": {200}, "1": {200}}

        out = await cli(env, "channels", "disable", NAME)
        assert "(running gateway)" in out, out
        assert await by_worker(gw) == {"0": {404}, "1": {404}}
        assert ChannelStore(home / "channels").get(NAME).disabled

        await cli(env, "channels", "enable", NAME)
        assert await by_worker(gw) == {"0": {200}, "1": {200}}

        # a worker that is down when the home changes reads the change at its start
        os.kill(gw.workers()[1]["pid"], signal.SIGKILL)
        await gw.wait_workers(lambda ws: ws[1]["state"] != "ready", 10, "worker 1 seen dead")
        out = await cli(env, "channels", "disable", NAME)
        assert "(running gateway)" in out, out
        await gw.wait_workers(lambda ws: ws[1]["state"] == "ready", 60, "worker 1 restarted")
        assert await by_worker(gw) == {"0": {404}, "1": {404}}
        await cli(env, "channels", "enable", NAME)
        assert await by_worker(gw) == {"0": {200}, "1": {200}}

        assert await by_worker(gw, "PUT") == {"0": {405}, "1": {405}}  # v1 serves POST only
        caps = tmp_path / "caps.json"
        caps.write_bytes(caps_doc("0.2.0"))
        v2 = build_component(wat_dir, NAME, methods=("POST", "PUT"))
        stop, sent, statuses = asyncio.Event(), [], []
        load = asyncio.create_task(send_load(gw, stop, sent, statuses))
        await asyncio.sleep(0.5)
        out = await cli(env, "channels", "upgrade", NAME, str(v2), str(caps))
        await asyncio.sleep(0.5)
        stop.set()
        await load
        assert "(running gateway)" in out and "0.2.0+" in out, out
        assert await by_worker(gw, "PUT") == {"0": {200}, "1": {200}}
        # under load, no request and no message lost: every webhook answered 200 (after 503 + Retry-After while a
        # worker swapped), every accepted message in the log once
        assert {w for w, _ in statuses} == {"0", "1"} and {c for _, c in statuses} <= {200, 503}, statuses
        with sqlite3.connect(home / "state.db") as db:
            logged = [r[0] for r in db.execute("SELECT content FROM inbound WHERE content LIKE 'load-%'")]
        assert len(logged) == len(set(logged)) and set(sent) <= set(logged) and len(sent) > 20, len(sent)
        print(f"{len(sent)} webhooks during the upgrade, {sum(c == 503 for _, c in statuses)} answered 503 first")

        assert await by_worker(gw, name="gated") == {"0": {404}, "1": {404}}  # waits for its secret
        out = await cli(env, "secrets", "set", "gated_token", stdin=b"t0k\n")
        assert "running gateway: gated: active" in out, out
        assert await by_worker(gw, name="gated") == {"0": {200}, "1": {200}}

        other = tmp_path / "other.json"
        other.write_bytes(caps_doc("0.1.0", "other"))
        out = await cli(env, "channels", "install", str(build_component(wat_dir, "other")), str(other))
        assert await by_worker(gw, name="other") == {"0": {200}, "1": {200}}, out
        await cli(env, "channels", "remove", "other")
        assert await by_worker(gw, name="other") == {"0": {404}, "1": {404}}

        await cli(env, "channels", "rollback", NAME)
        assert await by_worker(gw, "PUT") == {"0": {405}, "1": {405}}
        answer = json.loads(await cli(env, "channels", "versions", NAME, "--json"))
        assert answer["active"].startswith("0.1.0+")
    finally:
        assert await gw.stop() == 0, gw.log()[-3000:]
    assert not (home / "control.sock").exists()


async def test_sighup_reaches_every_worker_and_a_worker_that_does_not_answer_is_named(home: Path,
                                                                                    tmp_path: Path) -> None:
    gw = await start(home, tmp_path / "serve.log")
    try:
        (home / "airlock.toml").write_text("bus_capacity = 200000\n")
        gw.proc.send_signal(signal.SIGHUP)
        for _ in range(150):
            if gw.log().count("host config reloaded: bus_capacity applied") == 2:
                break
            await asyncio.sleep(0.1)
        assert gw.log().count("host config reloaded: bus_capacity applied") == 2, gw.log()[-3000:]

        worker_socket(home, 1).unlink()  # worker 1 runs but cannot be reached: the change is made, worker 1 named
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "airlock.cli", "channels", "disable", NAME,
                                                    env=env_for(home), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0 and "(running gateway)" in out.decode(), err
        assert err.decode().strip() == ("warning: worker 1: did not answer (it gets the change from the home at its "
                                        "start)")
        assert (await by_worker(gw))["0"] == {404}
    finally:
        assert await gw.stop() == 0, gw.log()[-3000:]
