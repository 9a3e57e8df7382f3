"""A channel's hot upgrade under webhook load (issue 10: no request fails; the other channels' p99 unchanged
within noise).

One host (``AirlockHost``, its real listener on 127.0.0.1) with two channels of the benchmark's Rust guest (a)
(the minimal WAT guest when it is not built): ``bench``, which is upgraded, and ``other``, which only serves. Two
builds of ``bench`` are installed as versions (the second is the same component with a custom section appended:
other bytes, so a real second compiled component; its compile cache is warmed first, as ``airlock channels
upgrade`` does when it validates the file). Each round loads both channels at once for ``duration_s``, each with
its own load generator process; in an *upgrade* round, a third of the way in, ``bench`` is switched to its other
version through ``Operations.upgrade`` (the same call as the CLI's control socket and the admin API). Rounds
alternate steady / upgrade so the shared machine's noise spreads over both.

Reported: each upgrade's wall time (load + drain + on-shutdown + on-start), non-2xx answers of ``bench`` during
upgrade rounds (a 503 would be the documented retry; a platform retries it), and ``other``'s p99 in steady and in
upgrade rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import e2e
from common import BENCH_GUEST, UNLIMITED_EMITS, bench_guest_caps, install, minimal_caps, wat_guest

from airlock.channels.install import stage
from airlock.host import AirlockHost
from airlock.host_config import HostConfig

NOISE_MARGIN = 1.2
"""The other channel's p99 during upgrades is "unchanged within noise" when its mean is at most the slowest steady
round's p99 times this."""


def _caps(name: str, version: str) -> dict[str, Any]:
    if BENCH_GUEST.exists():
        caps = bench_guest_caps(f"/webhook/{name}")
        caps.setdefault("config", {})["path"] = f"/webhook/{name}"
    else:
        caps = minimal_caps(name)
    caps["name"], caps["version"] = name, version
    caps["capabilities"]["channel"]["emit_rate_limit"] = dict(UNLIMITED_EMITS)
    return caps


def _with_custom_section(wasm: bytes, label: bytes) -> bytes:
    """``wasm`` plus a custom section (id 0) named ``label``: the same component, other bytes."""
    name = bytes([len(label)]) + label
    return wasm + b"\x00" + bytes([len(name)]) + name


async def _drain(host: AirlockHost) -> None:
    while True:
        await host.ack(await host.next_message())


async def _round(server: e2e.Server, concurrency: int, duration_s: float, tmp: Path,
                 upgrade_to: str | None) -> dict[str, Any]:
    bench, other = server.targets
    loads = asyncio.gather(e2e.load(server, bench, concurrency, duration_s, tmp),
                           e2e.load(server, other, concurrency, duration_s, tmp))
    took = None
    if upgrade_to is not None:
        await asyncio.sleep(duration_s / 3)
        start = time.perf_counter()
        await server.host.operations.upgrade("bench", upgrade_to)
        took = time.perf_counter() - start
    bench_sum, other_sum = await loads
    return {"bench": bench_sum, "other": other_sum, "upgrade_s": took}


async def run(cache: Path, concurrency: int, duration_s: float, rounds: int, log: Any = print) -> dict[str, Any]:
    """``rounds`` steady and ``rounds`` upgrade rounds, alternating; returns the figures (module docstring)."""
    load_at_start = round(os.getloadavg()[0], 2)
    home = Path(tempfile.mkdtemp(prefix="airlock-bench-upgrade-"))
    tmp = home / "load"
    tmp.mkdir()
    (home / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    wasm = BENCH_GUEST if BENCH_GUEST.exists() else wat_guest(home / "wat", "bench")
    install(home / "channels", "bench", wasm, _caps("bench", "1.0.0"))
    install(home / "channels", "other", wasm if BENCH_GUEST.exists() else wat_guest(home / "wat", "other"),
            _caps("other", "1.0.0"))
    host = AirlockHost(HostConfig.build(home=home, listen_port=0, bus_capacity=10**6))
    drain: asyncio.Task[None] | None = None
    steady: list[dict[str, Any]] = []
    upgraded: list[dict[str, Any]] = []
    try:
        await host.start()
        assert host.port is not None and all(s.active for s in host.manager.slots.values())
        first = host.store.get("bench").active
        v2 = stage(host.store, _with_custom_section(wasm.read_bytes(), b"airlock-bench-v2"),
                   json.dumps(_caps("bench", "2.0.0")).encode(), source="bench v2", upgrade=True).version
        await asyncio.to_thread(host.runtime.load, host.store.component("bench", v2))  # the CLI's validation load
        drain = asyncio.create_task(_drain(host))
        headers = {"Content-Type": "application/json"}
        targets = [e2e.Target("upgrade-bench", "/webhook/bench", headers),
                   e2e.Target("upgrade-other", "/webhook/other", headers)]
        server = e2e.Server(host=host, port=host.port, targets=targets, notes=[], bus=e2e.MemoryBus())
        await _round(server, concurrency, min(1.0, duration_s), tmp, None)  # warm-up
        for r in range(rounds):
            for kind in (("steady", "upgrade") if r % 2 == 0 else ("upgrade", "steady")):
                to = (v2 if len(upgraded) % 2 == 0 else first) if kind == "upgrade" else None
                result = await _round(server, concurrency, duration_s, tmp, to)
                (upgraded if kind == "upgrade" else steady).append(result)
    finally:
        if drain is not None:
            drain.cancel()
        await host.stop()
        shutil.rmtree(home, ignore_errors=True)
    result = _summary(steady, upgraded, concurrency, duration_s, rounds, log)
    result["load_average"] = [load_at_start, round(os.getloadavg()[0], 2)]
    result["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    return result


def _summary(steady: list[dict[str, Any]], upgraded: list[dict[str, Any]], concurrency: int, duration_s: float,
             rounds: int, log: Any) -> dict[str, Any]:
    up_ms = [round(u["upgrade_s"] * 1000, 1) for u in upgraded]
    p99_steady = [float(s["other"]["p99_ms"]) for s in steady]
    p99_up = [float(u["other"]["p99_ms"]) for u in upgraded]
    failed = sum(int(u["bench"]["non2xx"]) + int(u["bench"].get("errors", 0)) for u in upgraded)
    result = {
        "guest": "(a) Rust guest" if BENCH_GUEST.exists() else "minimal WAT guest",
        "rounds": rounds, "duration_s": duration_s, "concurrency": concurrency,
        "upgrade_ms": up_ms, "upgrade_ms_median": statistics.median(up_ms),
        "bench_requests_during_upgrade_rounds": sum(int(u["bench"]["requests"]) for u in upgraded),
        "bench_failed_during_upgrade_rounds": failed,
        "other_p99_ms_steady": p99_steady, "other_p99_ms_upgrade": p99_up,
        "other_rps_steady": [round(float(s["other"]["rps"]), 1) for s in steady],
        "other_rps_upgrade": [round(float(u["other"]["rps"]), 1) for u in upgraded],
        "noise_margin": NOISE_MARGIN,
    }
    result["other_p99_within_noise"] = statistics.mean(p99_up) <= max(p99_steady) * NOISE_MARGIN
    log(f"hot upgrade: {result['upgrade_ms_median']} ms median ({up_ms}); bench failed {failed} of "
        f"{result['bench_requests_during_upgrade_rounds']}; other p99 steady {p99_steady} ms, during upgrades "
        f"{p99_up} ms")
    return result
