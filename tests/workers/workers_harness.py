"""Test harness: ``airlock serve --workers N`` as a real process tree (supervisor + workers), its status file, and
an agent speaking the agent HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from servers import free_port

from airlock.workers.supervisor import status_path

START_TIMEOUT_S = 90.0


@dataclass
class Gateway:
    proc: asyncio.subprocess.Process
    home: Path
    port: int
    api_port: int
    logfile: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/v1"

    def status(self) -> dict[str, Any]:
        return dict(json.loads(status_path(self.home).read_text()))

    def workers(self) -> list[dict[str, Any]]:
        return list(self.status()["workers"])

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    async def wait_workers(self, pred: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        """Wait until ``pred(workers)`` holds (the status file), else fail with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                workers = self.workers()
                if pred(workers):
                    return workers
            except (OSError, ValueError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"{what} not within {timeout} s: {self.log()[-4000:]}")

    async def stop(self, timeout: float = 40.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "AIRLOCK_HOME": str(home)}


async def cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "airlock.cli", *args, env=env,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def start(home: Path, logfile: Path, *extra: str, workers: int = 2, ready: bool = True) -> Gateway:
    """Start the supervisor; with ``ready``, wait until every worker is ready."""
    port, api_port = free_port(), free_port()
    env = {**env_for(home), "AIRLOCK_AGENT_API_PORT": str(api_port)}
    with logfile.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airlock.cli", "serve", "--workers", str(workers), "--port", str(port),
            "--agent", "none", "--no-admin", *extra, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log)
    gw = Gateway(proc, home, port, api_port, logfile)
    if ready:
        await gw.wait_workers(lambda ws: len(ws) == workers and all(w["state"] == "ready" for w in ws),
                              START_TIMEOUT_S, "every worker ready")
    return gw


class Agent:
    """An agent over the agent API: leases, records, acks."""

    def __init__(self, gw: Gateway, token: str) -> None:
        self.gw = gw
        self.auth = {"Authorization": f"Bearer {token}"}
        self.received: list[dict[str, Any]] = []

    async def drain(self, s: aiohttp.ClientSession, until: Any, timeout: float) -> None:
        """Lease and ack until ``until(received)`` holds."""
        deadline = time.monotonic() + timeout
        while not until(self.received):
            assert time.monotonic() < deadline, f"agent got {len(self.received)} messages: {self.gw.log()[-3000:]}"
            try:
                async with s.get(f"{self.gw.api}/messages?wait=1&limit=50", headers=self.auth) as r:
                    if r.status != 200:
                        await asyncio.sleep(0.2)
                        continue
                    batch = (await r.json())["messages"]
                for m in batch:
                    self.received.append(m)
                    async with s.post(f"{self.gw.api}/messages/{m['id']}/ack", headers=self.auth,
                                      json={"lease_token": m["lease_token"]}) as r:
                        assert r.status in (200, 204, 409), await r.text()
            except aiohttp.ClientError:  # worker 0 (the agent API) restarting
                await asyncio.sleep(0.2)
