"""The channel lifecycle on a running gateway: a real ``airlock serve`` subprocess, the real ``airlock`` CLI
reaching it through ``HOME/control.sock``, real webhooks over HTTP, the real message log (``state.db``).

- a hot upgrade under webhook load loses no request and no message: every webhook is answered 200, or 503 with
  ``Retry-After`` and then 200 when retried as a platform would; every accepted message is in the log once;
- a new version that does not start is rolled back at once and the old one keeps serving;
- disable / enable / remove act at once; a secret stored or removed starts or stops the channel that needs it;
- SIGHUP applies the host settings that can change live and names the others.
Guest: the WAT test component (two builds of it, so the upgrade really changes the code).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from clirun import cli_env, one_line_error, run_cli
from test_cli_status import free_port
from watguest import build_component

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore
from airlock.control import gateway_for
from airlock.host import AirlockHost
from airlock.host_config import HostConfig

LOAD_WORKERS = 6
"""Concurrent webhook senders during the upgrade."""
BUS_CAPACITY = 100_000
"""Unacknowledged messages before webhooks answer 503 (no agent acknowledges here): far above what the tests send."""
MAX_RETRIES = 100
"""503 + Retry-After answers one webhook may get before the test fails (instead of retrying forever)."""


def caps_doc(name: str, version: str = "0.1.0", secrets: tuple[str, ...] = ()) -> bytes:
    doc: dict[str, Any] = {"name": name, "version": version, "wit_version": "0.1.0",
                           "capabilities": {"channel": {
                               "allowed_paths": [f"/webhook/{name}"],
                               "emit_rate_limit": {"messages_per_minute": 10**6, "messages_per_hour": 10**7}}},
                           "config": {"dm_policy": "open"}}
    if secrets:
        doc["setup"] = {"required_secrets": [{"name": s} for s in secrets]}
    return json.dumps(doc).encode()


@dataclass
class Gateway:
    home: Path
    port: int
    proc: subprocess.Popen[str]
    log: Path
    wasm_v1: Path
    wasm_v2: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def health(self, name: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url(f"/health/{name}"), timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def post(self, name: str, body: bytes = b"ping") -> int:
        req = urllib.request.Request(self.url(f"/webhook/{name}"), data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, compile_cache: Path) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("live")
    home = root / "home"
    (home / "channels").mkdir(parents=True)
    (home / "cache").symlink_to(compile_cache, target_is_directory=True)
    wat = root / "wat"
    v1 = build_component(wat, "minimal")
    v2 = build_component(wat, "minimal", methods=("POST", "PUT"))  # other bytes: a real new build
    store = ChannelStore(home / "channels")
    for name in ("minimal", "other"):
        stage(store, build_component(wat, name).read_bytes(), caps_doc(name), source=name)
    stage(store, build_component(wat, "gated").read_bytes(), caps_doc("gated", secrets=("gated_token",)),
          source="gated")
    (home / "airlock.toml").write_text(f"bus_capacity = {BUS_CAPACITY}\n")  # --agent none: nothing acks them
    log = root / "serve.log"
    port = free_port()
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "airlock.cli", "serve", "--port", str(port), "--no-admin",
                                 "--workers", "1", "--agent", "none"], env=cli_env(home), cwd=root,
                                stdout=subprocess.DEVNULL,
                                stderr=err, text=True)
    gw = Gateway(home, port, proc, log, v1, v2)
    try:
        deadline = time.monotonic() + 60
        while not ((home / "control.sock").exists() and gw.health("minimal")[0] == 200):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        yield gw
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def logged(home: Path, instance: str) -> list[str]:
    with sqlite3.connect(home / "state.db") as db:
        return [row[0] for row in db.execute("SELECT content FROM inbound WHERE instance = ?", (instance,))]


async def _load(gw: Gateway, stop: asyncio.Event, sent: list[str], statuses: list[int]) -> None:
    """Post unique webhooks until ``stop``; a 503 must carry Retry-After and is retried (as a platform would)."""
    counter = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            body = f"load-{next(counter)}"
            for _ in range(MAX_RETRIES):
                async with session.post(gw.url("/webhook/minimal"), data=body.encode()) as resp:
                    statuses.append(resp.status)
                    if resp.status == 503 and "Retry-After" in resp.headers:
                        await asyncio.sleep(0.05)
                        continue
                    assert resp.status == 200, (resp.status, await resp.text())
                    sent.append(body)
                    break
            else:
                raise AssertionError(f"{body}: still 503 after {MAX_RETRIES} tries")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(LOAD_WORKERS)))


def test_the_control_socket_is_private(gateway: Gateway) -> None:
    mode = stat.S_IMODE(os.stat(gateway.home / "control.sock").st_mode)
    assert stat.S_ISSOCK(os.stat(gateway.home / "control.sock").st_mode) and mode == 0o600


def test_hot_upgrade_under_load_loses_no_request_and_no_message(gateway: Gateway, tmp_path: Path) -> None:
    caps = tmp_path / "minimal.capabilities.json"
    caps.write_bytes(caps_doc("minimal", "0.2.0"))
    sent: list[str] = []
    statuses: list[int] = []

    async def scenario() -> subprocess.CompletedProcess[str]:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(gateway, stop, sent, statuses))
        await asyncio.sleep(0.5)
        proc = await asyncio.to_thread(run_cli, gateway.home, "channels", "upgrade", "minimal",
                                       str(gateway.wasm_v2), str(caps))
        await asyncio.sleep(0.5)
        stop.set()
        await load
        return proc

    upgraded = asyncio.run(scenario())
    assert upgraded.returncode == 0, upgraded.stderr
    assert "(running gateway)" in upgraded.stdout and "0.2.0+" in upgraded.stdout
    code, health = gateway.health("minimal")
    assert code == 200 and health["version"].startswith("0.2.0+"), health
    assert set(statuses) <= {200, 503} and len(sent) > 20, (set(statuses), len(sent))
    log = [m for m in logged(gateway.home, "minimal") if m.startswith("load-")]
    assert len(log) == len(set(log)), "a message was logged twice"
    assert set(sent) <= set(log), f"{len(set(sent) - set(log))} accepted messages are not in the log"
    assert ChannelStore(gateway.home / "channels").get("minimal").active == health["version"]
    print(f"{len(sent)} webhooks during the upgrade, {statuses.count(503)} answered 503 + Retry-After first")


def test_a_new_version_that_does_not_start_is_rolled_back_at_once(gateway: Gateway, tmp_path: Path) -> None:
    running = gateway.health("minimal")[1]["version"]
    caps = tmp_path / "minimal.capabilities.json"
    caps.write_bytes(caps_doc("minimal", "0.3.0", secrets=("minimal_token",)))  # a secret nobody stored
    err = one_line_error(run_cli(gateway.home, "channels", "upgrade", "minimal", str(gateway.wasm_v1), str(caps)),
                         "version 0.3.0+", "did not start", "missing secrets minimal_token", f"{running} runs again")
    assert "Traceback" not in err
    code, health = gateway.health("minimal")
    assert (code, health["version"]) == (200, running)
    assert gateway.post("minimal") == 200
    inst = ChannelStore(gateway.home / "channels").get("minimal")
    assert inst.active == running and any(v.startswith("0.3.0+") for v in inst.versions)  # kept, not active


def test_disable_enable_rollback_and_remove_act_at_once(gateway: Gateway) -> None:
    assert "(running gateway)" in run_cli(gateway.home, "channels", "disable", "other").stdout
    assert gateway.post("other") == 404 and gateway.post("minimal") == 200
    assert ChannelStore(gateway.home / "channels").get("other").disabled
    run_cli(gateway.home, "channels", "enable", "other")
    assert gateway.post("other") == 200

    before = gateway.health("minimal")[1]["version"]
    rolled = run_cli(gateway.home, "channels", "rollback", "minimal")
    assert rolled.returncode == 0 and "(running gateway)" in rolled.stdout, rolled.stderr
    assert gateway.health("minimal")[1]["version"].startswith("0.1.0+") != before.startswith("0.1.0+")

    assert run_cli(gateway.home, "channels", "remove", "other").returncode == 0
    assert gateway.post("other") == 404 and gateway.health("other")[0] == 404
    assert not (gateway.home / "channels" / "other").exists()


def test_storing_or_removing_a_secret_starts_or_stops_the_channel_at_once(gateway: Gateway) -> None:
    assert gateway.health("gated")[0] == 503 and gateway.post("gated") == 404
    stored = run_cli(gateway.home, "secrets", "set", "gated_token", input="t0k\n")
    assert stored.returncode == 0 and "running gateway: gated: active" in stored.stdout, stored
    assert gateway.health("gated")[0] == 200 and gateway.post("gated") == 200
    removed = run_cli(gateway.home, "secrets", "rm", "gated_token")
    assert removed.returncode == 0 and "gated: inactive: missing secrets gated_token" in removed.stdout
    assert gateway.health("gated")[0] == 503 and gateway.post("gated") == 404


def test_sighup_reloads_the_live_host_settings(gateway: Gateway) -> None:
    (gateway.home / "airlock.toml").write_text(f"bus_capacity = {2 * BUS_CAPACITY}\nwebhook_max_connections = 99\n")
    gateway.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while "host config reloaded" not in gateway.log.read_text():
        assert time.monotonic() < deadline, gateway.log.read_text()[-2000:]
        time.sleep(0.1)
    text = gateway.log.read_text()
    assert "host config reloaded: bus_capacity applied" in text
    assert "webhook_max_connections changed; it takes effect at the next restart" in text
    assert gateway.post("minimal") == 200


async def test_a_home_deeper_than_a_socket_path_allows_still_gets_its_control_socket(
        tmp_path: Path, compile_cache: Path) -> None:
    home = tmp_path.joinpath(*["deep-directory-name"] * 6, "home")  # well past the kernel's 108-byte socket path
    (home / "channels").mkdir(parents=True)
    assert len(str(home / "control.sock")) > 108
    config = HostConfig.build(home=home, listen_port=0, agent_api_enabled=False)
    async with AirlockHost(config, control=True):
        client = gateway_for(home)
        assert client is not None
        doc = await asyncio.to_thread(client.call, "GET", "/v1/channels")
        assert doc == {"pid": os.getpid(), "channels": []}
        refused = await asyncio.to_thread(run_cli, home, "channels", "disable", "nobody")
        assert refused.returncode == 1 and "no channel named 'nobody'" in refused.stderr
    assert gateway_for(home) is None and not (home / "control.sock").exists()
