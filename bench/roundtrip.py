"""Issue 8's benchmark lines: the whole message path, with the durable log and with an in-memory comparison, and
the agent HTTP API's throughput. Load comes from bench/msgload.py in a process of its own.

Round trip (webhook -> durable log -> agent ack -> reply delivered): a real ``AirlockHost`` with its own webhook
listener runs the real template-rust component (a JSON webhook with a header secret; it keeps its recent ids in a
*durable* workspace path, so every webhook commits a workspace write with its message; on-respond POSTs the reply
to ``config.reply_url``). The in-process agent (one task per conversation: ``host.next_message()``, then
``host.respond()``, which acknowledges and appends the reply in one transaction and waits for its first delivery)
answers every message; the reply goes through the outbox, the channel's on-respond and its HTTP call (upstream
override) to msgload's reply endpoint, which ends the round trip. Variants, each a fresh host:
- ``log``: the message log as shipped (``state.db`` on disk, ``synchronous=FULL``: fsync before every answer);
- ``log_normal``: the same with ``HostConfig.log_synchronous = "NORMAL"`` (no fsync per commit; module
  ``airlock.messages.sqlite`` explains what that gives up);
- ``memory``: the in-memory comparison: the same host and code path with ``bench/memlog.py``'s ``MemoryMessageLog``
  (the ``MessageLog`` protocol in Python dicts: nothing on disk, no SQL, no fsync), i.e. what the path costs when
  messages live only in memory, as on the bus before the log.

Agent API: a host with the log as shipped, pre-filled with messages routed to one HTTP agent; 1, then 8 agent
connections take one message at a time and acknowledge it (``GET /v1/messages?limit=1`` + ``POST .../ack``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from common import BENCH, BUILT_CHANNELS, UNLIMITED_EMITS, install
from memlog import MemoryMessageLog

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.messages.model import NewEntry, Route
from airlock.stores import SecretStore

CHANNEL = "template-rust"
WEBHOOK_SECRET = "bench-roundtrip-webhook-secret"
VARIANTS = ("memory", "log", "log_normal")
API_AGENT = "bench-agent"
UNLIMITED_SENDS = {"per_second": 10_000, "burst": 10_000, "per_chat_per_second": 10_000, "chat_burst": 10_000}
"""The benchmark measures the message path, not the platforms' send rates (Telegram's 1 msg/s per chat ...)."""


def available() -> bool:
    return (BUILT_CHANNELS / f"{CHANNEL}.wasm").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _caps() -> dict[str, Any]:
    caps: dict[str, Any] = json.loads((BUILT_CHANNELS / f"{CHANNEL}.capabilities.json").read_text())
    chan = caps["capabilities"]["channel"]
    chan["emit_rate_limit"] = dict(UNLIMITED_EMITS)
    chan["send_rate"] = dict(UNLIMITED_SENDS)
    caps["capabilities"]["http"]["rate_limit"] = {"requests_per_minute": 10**8, "requests_per_hour": 10**9}
    caps["config"].update({"dm_policy": "open", "reply_url": "https://hooks.example.com/airlock/reply"})
    return caps


@asynccontextmanager
async def _host(cache: Path, variant: str, reply_port: int = 0) -> AsyncIterator[AirlockHost]:
    home = Path(tempfile.mkdtemp(prefix=f"airlock-bench-{variant}-"))
    (home / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    install(home / "channels", CHANNEL, BUILT_CHANNELS / f"{CHANNEL}.wasm", _caps())
    store = SecretStore.open(home)
    store.set("template_rust_webhook_secret", WEBHOOK_SECRET)
    config = HostConfig.build(home=home, listen_port=0, bus_capacity=10**6,
                              upstream_overrides={"hooks.example.com": f"http://127.0.0.1:{reply_port}"},
                              log_synchronous="NORMAL" if variant == "log_normal" else "FULL")
    host = AirlockHost(config, secrets=store, log=MemoryMessageLog() if variant == "memory" else None)
    try:
        await host.start()
        yield host
    finally:
        await host.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _agent(host: AirlockHost) -> None:
    while True:
        message = await host.next_message()
        await host.respond(message, f"echo: {message.content}")


async def _msgload(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(BENCH / "msgload.py"), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"msgload.py failed ({proc.returncode}): {err.decode()[-800:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _ms(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return round(s[min(len(s) - 1, max(0, round(q * len(s)) - 1))] * 1000, 2) if s else 0.0


def _merge(variant: str, rounds: list[dict[str, Any]], writes_per_txn: float | None) -> dict[str, Any]:
    """One variant's rounds as one figure: round trips / seconds measured, percentiles over every sample."""
    trips = [t for r in rounds for t in r.pop("trip_samples_s")]
    acks = [t for r in rounds for t in r.pop("ack_samples_s")]
    seconds = sum(float(r["duration_s"]) for r in rounds)
    all_trips = sum(int(r["all_round_trips"]) for r in rounds)
    cpu_s = sum(float(r["host_cpu_s"]) for r in rounds)
    out: dict[str, Any] = {
        "variant": variant, "round_trips": len(trips), "duration_s": seconds,
        "rps": round(len(trips) / seconds, 1) if seconds else 0.0, "p50_ms": _ms(trips, 0.5),
        "p99_ms": _ms(trips, 0.99), "ack_p50_ms": _ms(acks, 0.5), "ack_p99_ms": _ms(acks, 0.99),
        "non2xx": sum(int(r["non2xx"]) for r in rounds), "errors": sum(int(r["errors"]) for r in rounds),
        "rounds_rps": [r["rps"] for r in rounds],
        "host_cpu_ms_per_trip": round(cpu_s / all_trips * 1000, 2) if all_trips else None}
    if writes_per_txn is not None:
        out["writes_per_transaction"] = writes_per_txn
    return out


async def round_trips(cache: Path, conversations: int, rounds: int, round_s: float,
                      warmup_s: float) -> dict[str, Any]:
    """Every variant's host up at once; the load alternates between them round by round (the order rotating), so
    the shared machine's noise spreads over all of them."""
    ports = {v: _free_port() for v in VARIANTS}
    async with contextlib.AsyncExitStack() as stack:
        hosts = {v: await stack.enter_async_context(_host(cache, v, ports[v])) for v in VARIANTS}
        agents = [asyncio.create_task(_agent(h)) for h in hosts.values() for _ in range(conversations)]
        measured: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        try:
            for n in range(rounds):
                for variant in VARIANTS[n % len(VARIANTS):] + VARIANTS[:n % len(VARIANTS)]:
                    cpu = time.process_time()  # this process = the hosts; only the loaded one is busy
                    measured[variant].append(await _msgload(
                        "roundtrip", "--webhook", f"{hosts[variant].base_url}/webhook/{CHANNEL}",
                        "--secret", WEBHOOK_SECRET, "--reply-port", str(ports[variant]),
                        "--conversations", str(conversations), "--duration", str(round_s),
                        "--warmup", str(warmup_s)))
                    measured[variant][-1]["host_cpu_s"] = time.process_time() - cpu
        finally:
            for task in agents:
                task.cancel()
            await asyncio.gather(*agents, return_exceptions=True)
        results = {}
        for variant, host in hosts.items():
            group = getattr(host.log, "group", None)
            per_txn = round(group.requests / group.transactions, 2) if group is not None and group.transactions \
                else None
            results[variant] = _merge(variant, measured[variant], per_txn)
    return results


def _prefill(host: AirlockHost, count: int) -> None:
    """``count`` messages routed to the API agent, in 64 conversations, committed in batches of 1000."""
    now = time.time()
    for start in range(0, count, 1000):
        entries = [NewEntry(instance=CHANNEL, user_id=f"u{i % 64}", user_name=None, thread_id=None,
                            content=f"message {i}", metadata_json="{}",
                            route=Route(agent=API_AGENT, session_key=f"{API_AGENT}:u{i % 64}",
                                        conversation=f"{CHANNEL}:dm:u{i % 64}"))
                   for i in range(start, min(count, start + 1000))]
        host.log.commit(CHANNEL, {}, entries, now)


async def agent_api(cache: Path, connections: tuple[int, ...], duration_s: float, prefill: int) -> dict[str, Any]:
    async with _host(cache, "log") as host:
        token = host.agents.add(API_AGENT, None)[0]
        api = f"http://127.0.0.1:{host.agent_api_port}"
        results = {}
        for n in connections:
            # each connection count gets its own backlog: a fast first run must not leave the next one nothing
            await asyncio.to_thread(_prefill, host, prefill)
            results[str(n)] = await _msgload("agents", "--api", api, "--token", token, "--connections", str(n),
                                             "--duration", str(duration_s))
        results["prefilled"] = prefill
    return results


async def run(cache: Path, conversations: tuple[int, ...], rounds: int, round_s: float, warmup_s: float,
              api_s: float, prefill: int, log: Any = print) -> dict[str, Any]:
    """Every round-trip variant at each number of ``conversations`` (``rounds`` rounds of ``round_s`` seconds each,
    after ``warmup_s``; the last number is the target's: the most conversations, where throughput is what limits),
    then the agent API with 1 and 8 connections (``api_s`` seconds each, ``prefill`` messages waiting)."""
    if not available():
        return {"skipped": f"{CHANNEL} component not built (make guests)"}
    os.environ.setdefault("AIRLOCK_MASTER_KEY", secrets.token_hex(32))
    results: dict[str, Any] = {"conversations": conversations[-1], "rounds": rounds, "round_s": round_s,
                               "round_trip_at": {}}
    for n in conversations:
        log(f"round trip: webhook -> log -> agent -> reply delivered, {n} conversations, "
            f"{rounds} alternating rounds of {round_s:.0f} s per variant")
        at = results["round_trip_at"][str(n)] = await round_trips(cache, n, rounds, round_s, warmup_s)
        for variant, r in at.items():
            log(f"  {variant:10s} {r['rps']:8.1f} round trips/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} "
                f"ms  webhook answer p50 {r['ack_p50_ms']:6.2f} ms  CPU/trip {r['host_cpu_ms_per_trip']} ms  "
                f"non-2xx {r['non2xx']}  errors {r['errors']}  rounds {r['rounds_rps']}")
    results["round_trip"] = results["round_trip_at"][str(conversations[-1])]
    log(f"agent API: 1 and 8 connections, lease + ack, {api_s:.0f} s each, {prefill} messages waiting")
    results["agent_api"] = await agent_api(cache, (1, 8), api_s, prefill)
    for n in ("1", "8"):
        r = results["agent_api"][n]
        log(f"  {n} connection(s) {r['per_s']:8.1f} messages/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms")
    return results


if __name__ == "__main__":  # just these lines, as make bench runs them: python bench/roundtrip.py
    print(json.dumps(asyncio.run(run(BENCH.parent / "build" / "compile-cache", (8, 32), 3, 3.0, 1.0, 6.0, 40_000,
                                     log=lambda m: print(m, file=sys.stderr))), indent=2))
