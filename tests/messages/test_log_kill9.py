"""kill -9 of the gateway under webhook load, 10 times (issue 8): every webhook answered 200 reaches the agent exactly
once after deduplication by the platform id, no conversation is reordered, and ``PRAGMA integrity_check`` is ok.

The gateway is a real process (``python -m airlock.cli serve``) running the real template-rust component (a JSON
webhook with a header secret; it emits ``message_id`` = the body's ``id``, the host's default dedupe pointer).
Writers post numbered messages per conversation (one user each, in order, a few resending a message as a platform
would after a lost answer). Between kills the test is the agent: it leases and acknowledges everything from the
log file (``SqliteMessageLog`` on ``state.db``), as an agent on another process would (the gateway runs
``--agent none``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from conftest import BUILT_CHANNELS, InstallFn
from servers import free_port

from airlock.messages.sqlite import SqliteMessageLog
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("KILL9_KILLS", "10"))
WRITERS = 4
KILL_AFTER_S = (0.2, 1.2)
START_TIMEOUT_S = 60.0
CHANNEL = "template-rust"


@dataclass
class Ledger:
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # message id -> (user, number)
    delivered: list[tuple[str, str, int]] = field(default_factory=list)  # (dedupe key, user, number), in order
    next_n: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def start_gateway(home: Path, env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    with (cwd / f"serve-{port}.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airlock.cli", "serve", "--port", str(port), "--agent", "none", env=env, cwd=cwd,
            stdout=asyncio.subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.returncode is None, (cwd / f"serve-{port}.log").read_text()[-2000:]
            try:
                async with s.get(f"{base}/health/{CHANNEL}") as r:
                    if r.status == 200:
                        return proc, base
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("the gateway did not come up")


async def writer(base: str, secret: str, ledger: Ledger, w: int, rng: random.Random) -> None:
    user = f"user{w}"
    async with aiohttp.ClientSession() as s:
        while True:
            n = ledger.next_n[user]
            mid = f"{user}-{n}"
            for _ in range(2 if rng.random() < 0.1 else 1):  # sometimes the platform resends
                try:
                    async with s.post(f"{base}/webhook/{CHANNEL}", json={"user": user, "text": str(n), "id": mid},
                                      headers={"X-Airlock-Webhook-Secret": secret}) as r:
                        status = r.status
                except (aiohttp.ClientError, OSError):
                    return  # killed
                if status == 200:
                    ledger.acked[mid] = (user, n)
            if mid in ledger.acked:
                ledger.next_n[user] = n + 1  # the next message only once this one was acknowledged


def drain(home: Path, ledger: Ledger) -> None:
    """Be the agent: lease and acknowledge everything in the log, in the order the log hands it out."""
    log = SqliteMessageLog(home / "state.db")
    try:
        assert log.integrity_check() == "ok"
        while batch := log.lease("main", 100, 30.0, time.time()):
            for entry in batch:
                ledger.delivered.append((entry.dedupe_key or "", entry.user_id, int(entry.content)))
                assert log.ack(entry.id, entry.lease_token, time.time())
    finally:
        log.close()


async def test_kill9_every_acknowledged_message_once_in_order(
    airlock_home: Path, install_channel: InstallFn, tmp_path: Path, master_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = int(os.environ.get("KILL9_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    caps = json.loads((BUILT_CHANNELS / f"{CHANNEL}.capabilities.json").read_text())
    caps["capabilities"]["channel"]["emit_rate_limit"] = {"messages_per_minute": 100_000, "messages_per_hour": 10**6}
    install_channel(BUILT_CHANNELS / f"{CHANNEL}.wasm", caps, dm_policy="open")
    store = SecretStore.open(airlock_home)
    store.set("template_rust_webhook_secret", "kill9-secret-value")
    env = {**os.environ, "AIRLOCK_HOME": str(airlock_home), "AIRLOCK_MASTER_KEY": master_key}
    ledger = Ledger()
    for _ in range(KILLS):
        proc, base = await start_gateway(airlock_home, env, tmp_path)
        load = [asyncio.create_task(writer(base, "kill9-secret-value", ledger, w, rng)) for w in range(WRITERS)]
        await asyncio.sleep(rng.uniform(*KILL_AFTER_S))
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(asyncio.gather(*load), 60)
        drain(airlock_home, ledger)

    keys = [k for k, _u, _n in ledger.delivered]
    assert len(keys) == len(set(keys)), "a message was delivered twice"
    delivered = {(u, n) for _k, u, n in ledger.delivered}
    lost = [mid for mid, un in ledger.acked.items() if un not in delivered]
    assert not lost, f"{len(lost)} acknowledged message(s) never reached the agent, e.g. {lost[:3]}"
    for user in {u for _k, u, _n in ledger.delivered}:
        numbers = [n for _k, u, n in ledger.delivered if u == user]
        assert numbers == sorted(numbers), f"{user}'s conversation was reordered: {numbers}"
    with capsys.disabled():
        sys.stdout.write(f"\n[kill9 log] seed {seed}: {KILLS} kills, {len(ledger.acked)} acknowledged webhooks, "
                         f"{len(ledger.delivered)} delivered once each, in order\n")
    assert len(ledger.acked) > KILLS, "the load did too little to mean anything"
