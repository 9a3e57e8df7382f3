"""kill -9 under load: the gateway (``python -m airlock.cli serve``, a real process) is killed ``KILLS`` times at
random moments while webhooks write durable workspace state and pairing requests are approved with the CLI
(``airlock pairing approve``, separate processes, racing the gateway for ``pairing.db``).

After every kill: ``PRAGMA integrity_check`` is ``ok`` on every SQLite file under the home; every write whose
webhook was answered 200 is stored with its value, and a callback's writes are all there or none are; every
approval the CLI reported is stored; the secret store still opens. After the last kill the gateway starts again
and serves what was committed. The seed of the random moments is printed (``KILL9_SEED`` repeats a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import hostile_guest
import pytest
from hostile_env import hostile_caps, install
from hostile_guest import order
from servers import free_port

from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

KILLS = 5
CHANNEL = "durable"
WRITERS = 6
"""Concurrent webhook writers (each callback writes ``BATCH_KEYS`` keys at once, or one key)."""
BATCH_KEYS = 8
KILL_AFTER_S = (0.3, 1.5)
"""A kill comes at a uniformly random moment this many seconds after the load started."""
START_TIMEOUT_S = 60.0


@dataclass
class Ledger:
    """What the gateway and the CLI acknowledged, to be found after every kill."""

    acked: dict[str, str] = field(default_factory=dict)  # workspace key -> value, answered 200 "O"
    batches: dict[str, bool] = field(default_factory=dict)  # key prefix of a BATCH_KEYS write sent -> answered 200
    approved: set[str] = field(default_factory=set)  # sender ids the CLI said it approved
    requests: int = 0


async def start_gateway(home: Path, env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    with (cwd / f"serve-{port}.log").open("wb") as log:  # the child keeps its own descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airlock.cli", "serve", "--port", str(port), env=env, cwd=cwd,
            stdout=asyncio.subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.returncode is None, (cwd / f"serve-{port}.log").read_text()[-2000:]
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(f"{base}/health/{CHANNEL}") as r:
                    if r.status == 200 and (await r.json())["active"]:
                        return proc, base
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("the gateway did not come up")


async def writer(base: str, ledger: Ledger, cycle: int, n: int, rng: random.Random) -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(100_000):
            batch = rng.random() < 0.3
            if batch:
                prefix = f"rec/c{cycle}-w{n}-{i}/"
                body = order("W", BATCH_KEYS, prefix, f"v{cycle}.{n}.{i}")
                ledger.batches[prefix] = False  # sent: all of it or none of it may be stored
            else:
                key, value = f"rec/c{cycle}-w{n}-{i}", f"value {cycle}.{n}.{i} {rng.random()}"
                body = order("w", key, value)
            try:
                async with s.post(f"{base}/webhook/{CHANNEL}", data=body) as r:
                    answer = await r.read()
            except (aiohttp.ClientError, OSError):
                return  # the gateway is gone
            ledger.requests += 1
            if r.status != 200:
                continue
            if batch:
                ledger.batches[prefix] = True
                assert answer[:8] == BATCH_KEYS.to_bytes(4, "little") + bytes(4), answer
            elif answer == b"O":
                ledger.acked[key] = value


async def pairer(base: str, ledger: Ledger, cycle: int, env: dict[str, str], cwd: Path,
                 approvals: list[asyncio.Task[None]]) -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(100_000):
            sender = f"user-c{cycle}-{i}"
            try:
                async with s.post(f"{base}/webhook/{CHANNEL}", data=order("p", CHANNEL, sender, "{}")) as r:
                    answer = await r.read()
            except (aiohttp.ClientError, OSError):
                return
            if r.status == 200 and answer[:1] == b"O":
                approvals.append(asyncio.create_task(approve(sender, answer[1:].decode(), ledger, env, cwd)))
            await asyncio.sleep(0.2)


async def approve(sender: str, code: str, ledger: Ledger, env: dict[str, str], cwd: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airlock.cli", "pairing", "approve", CHANNEL, code, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode == 0 and f"approved {sender} on {CHANNEL}" in out.decode():
        ledger.approved.add(sender)
    else:  # the CLI may fail (e.g. the database busy past its timeout) but must say so in one line
        assert proc.returncode == 1 and err.decode().startswith("error: "), (proc.returncode, out, err)


def check_files(home: Path, ledger: Ledger) -> None:
    """Integrity of every SQLite file, then everything acknowledged is there (the gateway is dead)."""
    databases = sorted(p for p in home.iterdir() if p.suffix == ".db")
    assert {"pairing.db", "state.db"} <= {p.name for p in databases}, databases
    for db in databases:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=rw", uri=True)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], db.name
    with contextlib.closing(sqlite3.connect(home / "state.db")) as conn:
        stored = dict(conn.execute("SELECT path, value FROM workspace WHERE channel = ?", (CHANNEL,)).fetchall())
    lost = {k: v for k, v in ledger.acked.items() if stored.get(k) != v}
    assert not lost, f"{len(lost)} acknowledged write(s) lost, e.g. {next(iter(lost.items()))}"
    for prefix, acked in ledger.batches.items():
        found = sum(1 for k in stored if k.startswith(prefix))
        assert found in ((BATCH_KEYS,) if acked else (0, BATCH_KEYS)), f"{prefix}: {found} of {BATCH_KEYS} keys"
    with contextlib.closing(sqlite3.connect(home / "pairing.db")) as conn:
        paired = {r[0] for r in conn.execute("SELECT external_id FROM paired WHERE channel = ?", (CHANNEL,))}
    assert not ledger.approved - paired, f"approvals lost: {sorted(ledger.approved - paired)}"
    assert SecretStore.open(home).get("hostile_token") == "kept across kills"


async def cycle(home: Path, env: dict[str, str], cwd: Path, ledger: Ledger, n: int, rng: random.Random) -> float:
    proc, base = await start_gateway(home, env, cwd)
    approvals: list[asyncio.Task[None]] = []
    load = [asyncio.create_task(writer(base, ledger, n, w, rng)) for w in range(WRITERS)]
    load.append(asyncio.create_task(pairer(base, ledger, n, env, cwd, approvals)))
    delay = rng.uniform(*KILL_AFTER_S)
    await asyncio.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    await asyncio.wait_for(asyncio.gather(*load), 60)
    await asyncio.wait_for(asyncio.gather(*approvals), 60)
    return delay


async def test_kill9_under_load_loses_nothing_committed(
    airlock_home: Path, wat_dir: Path, tmp_path: Path, master_key: str, capsys: pytest.CaptureFixture[str],
) -> None:
    seed = int(os.environ.get("KILL9_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    caps = hostile_caps(CHANNEL, durable_workspace_paths=["rec/"])
    caps["config"] = {"dm_policy": "pairing"}
    install(airlock_home, hostile_guest.build_component(wat_dir, CHANNEL), caps)
    SecretStore.open(airlock_home).set("hostile_token", "kept across kills")
    env = {**os.environ, "AIRLOCK_HOME": str(airlock_home), "AIRLOCK_MASTER_KEY": master_key}
    ledger, delays, started = Ledger(), [], time.monotonic()
    for n in range(KILLS):
        delays.append(await cycle(airlock_home, env, tmp_path, ledger, n, rng))
        check_files(airlock_home, ledger)
    proc, base = await start_gateway(airlock_home, env, tmp_path)
    try:  # the restarted gateway serves what was committed before the kills
        sample = rng.sample(sorted(ledger.acked), min(20, len(ledger.acked)))
        async with aiohttp.ClientSession() as s:
            for key in sample:
                async with s.post(f"{base}/webhook/{CHANNEL}", data=order("R", key)) as r:
                    assert (r.status, await r.read()) == (200, b"S" + ledger.acked[key].encode()), key
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
    with capsys.disabled():
        sys.stdout.write(
            f"\n[kill9] seed {seed}: {KILLS} kills at {', '.join(f'{d:.2f}' for d in delays)} s into the load; "
            f"{ledger.requests} webhooks, {len(ledger.acked)} single writes and "
            f"{sum(ledger.batches.values())} {BATCH_KEYS}-key writes acknowledged, {len(ledger.approved)} CLI "
            f"approvals; all present after every restart ({time.monotonic() - started:.1f} s)\n")
    assert len(ledger.acked) > KILLS and ledger.approved, "the load did too little to mean anything"
