"""Webhook -> agent end to end with the message log on SQLite vs on PostgreSQL + Redis (issue 12, item 3).

Each backend runs the real gateway (``airlock serve`` in its own process, the template-rust component, the
webhook secret checked by the host) and, in this process, a load generator (``CONCURRENCY`` clients POSTing
webhooks for ``DURATION_S``) and an HTTP agent (``AGENTS`` long-polling clients leasing up to 50 messages and
acknowledging them over the agent API, in both ways an agent can: each with its own request, and each lease's
messages in one ``POST /v1/messages/ack``; ``--ack each|batch`` runs one way only). Reported per backend and way:
webhooks answered 200 per second, the webhook's p50/p99 answer time, the p50/p99 delivery time (webhook sent ->
agent received it, one clock), and the CPU seconds the gateway, PostgreSQL and Redis spent per message (/proc,
summed over each server's processes), which is what the capacity model in BENCHMARKS.md is built from.

Run: ``make bench-bus`` (or ``PYTHONPATH=host:bench .venv/bin/python bench/bus.py [--duration S] [--ack MODE]``;
needs scripts/install-servers.sh). Writes ``bench/results/bus.md`` (``bus_report``, with ``bench/results/bus.json``),
which ``bench/report.py`` puts into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from bus_report import markdown
from common import BUILT_CHANNELS, REPO, UNLIMITED_EMITS, install, percentile

sys.path.insert(0, str(REPO / "tests"))
from servers import PostgresServer, RedisServer, free_port

CHANNEL = "template-rust"
SECRET = "bench-bus-webhook-secret"
CONCURRENCY = 16
"""Webhook clients sending at once."""
AGENTS = 2
"""Agent clients long-polling at once."""
DURATION_S = 10.0
WARMUP = 50
"""Webhooks sent and delivered before the measured run (compiles, pools, connections)."""
ACK_MODES = ("each", "batch")
"""How the HTTP agent acknowledges: ``each`` posts one ``/v1/messages/{id}/ack`` per message, concurrently (the way
of earlier runs, kept for comparison); ``batch`` one ``/v1/messages/ack`` per lease (the capacity model's)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    """utime + stime of ``pids`` and all their descendants, seconds (/proc/PID/stat fields 14-17)."""
    total = 0.0
    for pid in _with_children(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / CLK_TCK
    return total


def _with_children(pids: list[int]) -> set[int]:
    out, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # the task ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _pid_on_port(port: int) -> int | None:
    """The pid listening on 127.0.0.1:``port`` (the server's main process), from /proc/net/tcp and fd links."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(f":{port:04X}") and parts[3] == "0A":
            inode = parts[9]
    if inode is None:
        return None
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == f"socket:[{inode}]":
                return int(fd.parts[2])
        except OSError:
            continue
    return None


@dataclass
class Run:
    sent_at: dict[str, float] = field(default_factory=dict)
    answer_s: list[float] = field(default_factory=list)
    delivered_s: dict[str, float] = field(default_factory=dict)
    refused: int = 0


async def _cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> bytes:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "airlock.cli", *args, env=env,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"airlock {' '.join(args)}: {err.decode()[-2000:]}")
    return out


async def _wait_up(port: int, proc: asyncio.subprocess.Process, logfile: Path) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            if proc.returncode is not None:
                raise RuntimeError(logfile.read_text()[-3000:])
            try:
                async with s.get(f"http://127.0.0.1:{port}/health/{CHANNEL}") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("gateway did not start: " + logfile.read_text()[-3000:])


async def _agent(s: aiohttp.ClientSession, api: str, token: str, run: Run, stop: asyncio.Event, ack: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        try:
            async with s.get(f"{api}/messages?wait=1&limit=50", headers=auth) as r:
                if r.status != 200:
                    await asyncio.sleep(0.05)
                    continue
                batch = (await r.json())["messages"]
        except aiohttp.ClientConnectionError:  # the agent API binds just after the webhooks' listener
            await asyncio.sleep(0.1)
            continue
        now = time.perf_counter()
        for m in batch:
            run.delivered_s.setdefault(m["content"].removeprefix("text "), now)
        if ack == "each":
            await asyncio.gather(*(_ack(s, api, auth, m) for m in batch))
        elif batch:
            await _ack_batch(s, api, auth, batch)


async def _ack(s: aiohttp.ClientSession, api: str, auth: dict[str, str], m: dict[str, Any]) -> None:
    async with s.post(f"{api}/messages/{m['id']}/ack", headers=auth, json={"lease_token": m["lease_token"]}) as r:
        await r.read()


async def _ack_batch(s: aiohttp.ClientSession, api: str, auth: dict[str, str], batch: list[dict[str, Any]]) -> None:
    items = [{"id": m["id"], "lease_token": m["lease_token"]} for m in batch]
    async with s.post(f"{api}/messages/ack", headers=auth, json={"messages": items}) as r:
        await r.read()


async def _sender(s: aiohttp.ClientSession, base: str, run: Run, prefix: str, deadline: float, count: int) -> None:
    i = 0
    while time.perf_counter() < deadline and i < count:
        text = f"{prefix}-{i}"
        i += 1
        t0 = time.perf_counter()
        async with s.post(f"{base}/webhook/{CHANNEL}", json={"user": f"u{i % 50}", "text": text, "id": text},
                          headers={"X-Airlock-Webhook-Secret": SECRET}) as r:
            await r.read()
            status = r.status
        if status == 200:
            run.sent_at[text] = t0
            run.answer_s.append(time.perf_counter() - t0)
        else:
            run.refused += 1


Servers = dict[str, list[int]]
"""Server name ("postgres", "redis") -> its processes' root pids, whose CPU is measured."""


async def measure(label: str, toml: str, duration: float, servers: Servers, ack: str = "each") -> dict[str, Any]:
    """One backend: start a gateway with ``toml`` as its config, warm up, load for ``duration`` seconds."""
    home = Path(tempfile.mkdtemp(prefix=f"airlock-bench-bus-{label}-"))
    try:
        caps = json.loads((BUILT_CHANNELS / f"{CHANNEL}.capabilities.json").read_text())
        caps.setdefault("config", {})["dm_policy"] = "open"
        caps["capabilities"]["channel"]["emit_rate_limit"] = dict(UNLIMITED_EMITS)
        install(home / "channels", CHANNEL, BUILT_CHANNELS / f"{CHANNEL}.wasm", caps)
        (home / "airlock.toml").write_text(toml + 'default_agent = "bot"\nbus_capacity = 100000\n')
        api_port, port = free_port(), free_port()
        env = {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_MASTER_KEY": secrets.token_urlsafe(32),
               "AIRLOCK_AGENT_API_PORT": str(api_port), "PYTHONPATH": str(REPO / "host")}
        await _cli(env, "secrets", "set", "template_rust_webhook_secret", stdin=SECRET.encode())
        token = str(json.loads(await _cli(env, "agents", "add", "bot", "--json"))["token"])
        logfile = home / "serve.log"
        with logfile.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "airlock.cli", "serve", "--port", str(port), "--agent", "none", "--no-admin",
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log)
        try:
            await _wait_up(port, proc, logfile)
            return await _load(label, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}/v1", token,
                               duration, [proc.pid], servers, ack)
        finally:
            proc.terminate()
            await proc.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _load(label: str, base: str, api: str, token: str, duration: float, gateway: list[int],
                servers: Servers, ack: str) -> dict[str, Any]:
    conn = aiohttp.TCPConnector(limit=CONCURRENCY + AGENTS * 60)
    async with aiohttp.ClientSession(connector=conn) as s:
        for phase, secs, count in (("warm", 3600.0, WARMUP // CONCURRENCY + 1), ("run", duration, 10**9)):
            run, stop = Run(), asyncio.Event()
            agents = [asyncio.create_task(_agent(s, api, token, run, stop, ack)) for _ in range(AGENTS)]
            cpu0 = {"gateway": cpu_s(gateway), **{k: cpu_s(v) for k, v in servers.items()}}
            t0 = time.perf_counter()
            deadline = t0 + secs
            await asyncio.gather(*(_sender(s, base, run, f"{phase}{c}", deadline, count) for c in range(CONCURRENCY)))
            sent_for = time.perf_counter() - t0
            drain_until = time.perf_counter() + 30
            while not set(run.sent_at) <= set(run.delivered_s) and time.perf_counter() < drain_until:
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.gather(*agents)
            cpu1 = {"gateway": cpu_s(gateway), **{k: cpu_s(v) for k, v in servers.items()}}
    n = len(run.sent_at)
    lost = len(set(run.sent_at) - set(run.delivered_s))
    delivery = sorted(run.delivered_s[k] - run.sent_at[k] for k in run.sent_at if k in run.delivered_s)
    answers = sorted(run.answer_s)
    return {
        "backend": label, "ack": ack, "webhooks": n, "refused": run.refused, "undelivered": lost,
        "req_per_s": round(n / sent_for, 1),
        "answer_p50_ms": round(percentile(answers, 0.5) * 1e3, 2),
        "answer_p99_ms": round(percentile(answers, 0.99) * 1e3, 2),
        "delivery_p50_ms": round(percentile(delivery, 0.5) * 1e3, 2),
        "delivery_p99_ms": round(percentile(delivery, 0.99) * 1e3, 2),
        **{f"{k}_cpu_ms_per_msg": round((cpu1[k] - cpu0[k]) / n * 1e3, 3) for k in cpu0},
    }


LOG_MESSAGES = 2000
"""Messages of the log-only measurement (``log_cost``)."""


def log_cost(label: str, log: Any, servers: Servers, batch: int = 1) -> dict[str, Any]:
    """The message log alone, one thread: commit ``batch`` entries, lease them, ack each, LOG_MESSAGES in all.
    Wall time and the servers' CPU per message: the per-message PostgreSQL/Redis cost of the capacity model."""
    from airlock.messages.model import NewEntry, Route

    cpu0, t0 = {k: cpu_s(v) for k, v in servers.items()}, time.perf_counter()
    for i in range(0, LOG_MESSAGES, batch):
        now = time.time()
        log.commit("tg", {}, [NewEntry(instance="tg", user_id="u", user_name=None, thread_id=None, content=f"m{i + j}",
                                       metadata_json="{}", route=Route(agent="bot", session_key="s",
                                                                       conversation=f"c{(i + j) % 50}"))
                              for j in range(batch)], now)
        leased = log.lease("bot", batch, 60.0, now)
        for e in leased:
            log.ack(e.id, e.lease_token, now)
    wall = time.perf_counter() - t0
    return {"backend": label, "batch": batch, "wall_ms_per_msg": round(wall / LOG_MESSAGES * 1e3, 3),
            **{f"{k}_cpu_ms_per_msg": round((cpu_s(v) - cpu0[k]) / LOG_MESSAGES * 1e3, 3) for k, v in servers.items()}}


def log_costs(pg: PostgresServer, rd: RedisServer, pg_pids: list[int], rd_pids: list[int]) -> list[dict[str, Any]]:
    from airlock.messages.postgres import PostgresMessageLog
    from airlock.messages.redisbus import RedisBusLog
    from airlock.messages.sqlite import SqliteMessageLog

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 20):
            logs: list[tuple[str, Any, Servers]] = [
                ("sqlite", SqliteMessageLog(Path(tmp) / f"state{batch}.db"), {}),
                ("postgresql", PostgresMessageLog.open(pg.create_database("cost")), {"postgres": pg_pids}),
                ("postgresql+redis", RedisBusLog.open_bus(pg.create_database("cost"), rd.url,
                                                          namespace=f"cost{batch}:"),
                 {"postgres": pg_pids, "redis": rd_pids})]
            for label, log, servers in logs:
                out.append(log_cost(label, log, servers, batch))
                log.close()
    return out


async def main_async(duration: float, acks: tuple[str, ...] = ACK_MODES) -> list[dict[str, Any]]:
    pg, rd = PostgresServer(), RedisServer()
    try:
        pg.start()
        rd.start()
        pg_pid, rd_pid = _pid_on_port(pg.port), _pid_on_port(rd.port)
        pg_pids = [p for p in (pg_pid,) if p is not None]
        rd_pids = [p for p in (rd_pid,) if p is not None]
        results = log_costs(pg, rd, pg_pids, rd_pids)
        backends: list[tuple[str, Callable[[], str], Servers]] = [
            ("sqlite", lambda: "", {}),
            ("postgresql", lambda: f'state = "{pg.create_database("bench")}"\n', {"postgres": pg_pids}),
            ("postgresql+redis", lambda: f'state = "{pg.create_database("bench")}"\nbus = "{rd.url}"\n',
             {"postgres": pg_pids, "redis": rd_pids})]
        for label, toml, servers in backends:
            for ack in acks:  # one backend's ways back to back: this machine's speed drifts over minutes
                results.append(await measure(label, toml(), duration, servers, ack))
        return results
    finally:
        rd.destroy()
        pg.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=DURATION_S)
    parser.add_argument("--ack", choices=ACK_MODES, default=None,
                        help="only this way of acknowledging (default: both, one after the other)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bus.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "bench" / "results" / "bus.md")
    parser.add_argument("--from-json", type=Path, help="only write the markdown, from an earlier run's --out")
    args = parser.parse_args()
    if args.from_json is not None:
        args.markdown.write_text(markdown(json.loads(args.from_json.read_text())))
        return
    load = os.getloadavg()
    acks = ACK_MODES if args.ack is None else (args.ack,)
    results = asyncio.run(main_async(args.duration, acks))
    doc = {"nproc": os.cpu_count(), "concurrency": CONCURRENCY, "agents": AGENTS, "duration_s": args.duration,
           "acks": list(acks),
           "load": " / ".join(f"{x:.1f}" for x in load), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    args.markdown.write_text(markdown(doc))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
