"""What metrics cost on the webhook path (issue 10: webhook req/s with metrics on >= 0.97x metrics off).

Two hosts with the same channel, the benchmark's Rust guest (a) (the minimal WAT guest when it is not built),
differ only in ``HostConfig.metrics``: on, every callback is counted (``observability``: callbacks, duration and
fuel histograms, host calls, emitted messages, the recent-call ring), off, the host has no observer at all.
Each is served by its real listener (``AirlockHost``) on 127.0.0.1 and loaded in turn, in rounds (off then on,
then on then off, ...) so the shared machine's noise spreads over both; an agent task drains each bus.
Reported: each variant's mean req/s over the rounds, every round's figure, and on / off.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import e2e
from common import BENCH_GUEST, UNLIMITED_EMITS, bench_guest_caps, install, minimal_caps, wat_guest

from airlock.host import AirlockHost
from airlock.host_config import HostConfig

PATH = "/webhook/bench"
VARIANTS = ("off", "on")


async def _drain(host: AirlockHost) -> None:
    """The agent: acknowledges every message (the message log keeps one leased until then)."""
    while True:
        await host.ack(await host.next_message())


@asynccontextmanager
async def _host(cache: Path, metrics: bool) -> AsyncIterator[e2e.Server]:
    home = Path(tempfile.mkdtemp(prefix=f"airlock-bench-metrics-{'on' if metrics else 'off'}-"))
    (home / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    if BENCH_GUEST.exists():
        caps, wasm = bench_guest_caps(PATH), BENCH_GUEST
        caps.setdefault("config", {})["path"] = PATH
    else:
        caps, wasm = minimal_caps("bench"), wat_guest(home / "wat", "bench")
    caps["capabilities"]["channel"]["emit_rate_limit"] = dict(UNLIMITED_EMITS)
    install(home / "channels", "bench", wasm, caps)
    host = AirlockHost(HostConfig.build(home=home, listen_port=0, bus_capacity=10**6, metrics=metrics))
    drain: asyncio.Task[None] | None = None
    try:
        await host.start()
        assert host.port is not None and host.manager.slots["bench"].active, host.manager.slots["bench"].reason
        drain = asyncio.create_task(_drain(host))
        target = e2e.Target("metrics-" + ("on" if metrics else "off"), PATH, {"Content-Type": "application/json"})
        yield e2e.Server(host=host, port=host.port, targets=[target], notes=[], bus=e2e.MemoryBus())
    finally:
        if drain is not None:
            drain.cancel()
        await host.stop()
        shutil.rmtree(home, ignore_errors=True)


async def run(cache: Path, concurrency: int, duration_s: float, rounds: int, log: Any = print) -> dict[str, Any]:
    """Load both hosts ``rounds`` times each, alternating; returns req/s per variant and their ratio."""
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-metrics-load-"))
    per_round: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        async with AsyncExitStack() as stack:
            servers = {v: await stack.enter_async_context(_host(cache, v == "on")) for v in VARIANTS}
            for server in servers.values():  # warm-up: compile cache, inline guard, connections
                await e2e.load(server, server.targets[0], concurrency, min(1.0, duration_s), tmp)
            for r in range(rounds):
                order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]  # neither goes first every round
                for variant in order:
                    server = servers[variant]
                    summary = await e2e.load(server, server.targets[0], concurrency, duration_s, tmp)
                    if summary["non2xx"] or summary.get("errors"):
                        raise RuntimeError(f"metrics {variant}: {summary['non2xx']} non-2xx answers")
                    per_round[variant].append(float(summary["rps"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mean = {v: sum(rps) / len(rps) for v, rps in per_round.items()}
    result = {"guest": "(a) Rust guest" if BENCH_GUEST.exists() else "minimal WAT guest",
              "rounds": rounds, "duration_s": duration_s, "concurrency": concurrency,
              "rps_off": round(mean["off"], 1), "rps_on": round(mean["on"], 1),
              "rounds_off": [round(x, 1) for x in per_round["off"]],
              "rounds_on": [round(x, 1) for x in per_round["on"]],
              "ratio": round(mean["on"] / mean["off"], 3) if mean["off"] else None}
    log(f"metrics cost: {result['rps_on']:.0f} req/s with metrics, {result['rps_off']:.0f} without "
        f"(on/off {result['ratio']}; rounds on {result['rounds_on']}, off {result['rounds_off']})")
    return result
