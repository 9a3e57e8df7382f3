"""Callback benchmark: prints figures (see the closing note of the core issue for measured values).

Measures, on this machine, single-threaded:
- fresh-store callbacks (new Store + instantiate + call + commit, through ``Channel``) for the minimal WAT
  guest and the CPython Telegram guest: p50, p99, callbacks/s;
- the same export called on one reused instance, for the fresh/reused ratio (target: minimal <= 1.5x);
- a 1 MB ``list<u8>`` body crossing the boundary (target < 10 ms; wasmtime-py's C API lowers one 32-byte
  value per byte, see the note in the output);
- RSS after 1k, 10k and 50k fresh callbacks (target: no growth trend from 10k to 50k);
- webhook requests/s end to end (aiohttp server -> guest -> bus -> echo agent -> on-respond) at
  concurrency 8, with the client in this process.

Run: ``make bench`` (or ``python bench/callbacks.py [--quick]``). Results also go to bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "guests"))

import aiohttp  # noqa: E402
import wasmtime  # noqa: E402
import watguest  # noqa: E402

from airlock.channels.channel import Channel, HostServices  # noqa: E402
from airlock.config import HostConfig, parse_capabilities  # noqa: E402
from airlock.host import AirlockHost  # noqa: E402
from airlock.runtime import linker as host_linker  # noqa: E402
from airlock.runtime.engine import Runtime  # noqa: E402
from airlock.runtime.instance import Sandbox  # noqa: E402
from airlock.runtime.values import IncomingHttpRequest  # noqa: E402
from airlock.stores import PairingStore  # noqa: E402

UPDATE = {"update_id": 1, "message": {"message_id": 5, "date": 1700000000, "text": "hello bot",
                                      "from": {"id": 42, "is_bot": False, "first_name": "A", "username": "a"},
                                      "chat": {"id": 42, "type": "private", "first_name": "A"}}}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def summarize(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_us": s[len(s) // 2] * 1e6, "p99_us": s[int(len(s) * 0.99)] * 1e6,
            "per_s": len(s) / sum(s)}


def make_channel(runtime: Runtime, wasm: Path, caps: dict[str, Any], tmp: Path) -> Channel:
    services = HostServices(sandbox=Sandbox(runtime), secret_lookup=lambda _n: None,
                            pairing=PairingStore(tmp / f"{caps['name']}-pairing.db"), durable=None, egress=None,
                            memory_limit_bytes=50 * 2**20, fuel_per_callback=5_000_000_000)
    return Channel(parse_capabilities(json.dumps(caps), caps["name"]), runtime.load(wasm), services)


def fresh(channel: Channel, req: IncomingHttpRequest, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        result = channel.http_request(req)
        out.append(time.perf_counter() - t)
        assert result.ok, result.error
    return out


def reused(runtime: Runtime, channel: Channel, req: IncomingHttpRequest, n: int) -> list[float]:
    from airlock.runtime import convert

    loaded = channel.loaded
    linker = Sandbox(runtime).linker_for(loaded)
    store = wasmtime.Store(runtime.engine)
    store.set_fuel(2**62)
    store.set_epoch_deadline(10**9)
    if loaded.imports_wasi:
        store.set_wasi(wasmtime.WasiConfig())
    from airlock.capabilities.workspace import WorkspaceTxn
    from airlock.channels.callstate import CallState

    state = CallState(channel=channel, deadline=time.monotonic() + 3600,
                      workspace=WorkspaceTxn.begin(channel.workspace))
    host_linker.bind(state)
    instance = linker.instantiate(store, loaded.component)
    func = instance.get_func(store, loaded.exports["on-http-request"])
    assert func is not None
    out = []
    for _ in range(n):
        arg = convert.incoming_request_to_wit(req)
        t = time.perf_counter()
        func(store, arg)
        func.post_return(store)
        out.append(time.perf_counter() - t)
    host_linker.bind(None)
    return out


async def end_to_end(tmp: Path, requests: int, concurrency: int = 8) -> dict[str, Any]:
    home = tmp / "e2e-home"
    (home / "channels").mkdir(parents=True)
    shutil.copy(watguest.build_component(tmp / "wat"), home / "channels" / "minimal.wasm")
    caps = {"name": "minimal", "version": "0.1.0", "wit_version": "0.1.0", "config": {"dm_policy": "open"},
            "capabilities": {"channel": {"allowed_paths": ["/webhook/minimal"],
                                         "emit_rate_limit": {"messages_per_minute": 10**6,
                                                             "messages_per_hour": 10**7}}}}
    (home / "channels" / "minimal.capabilities.json").write_text(json.dumps(caps))
    from airlock.agents.echo import echo_agent

    # A large bus: this measures throughput, not backpressure (which answers 503 + Retry-After).
    async with AirlockHost(HostConfig.build(home=home, listen_port=0, bus_capacity=10**6)) as host:
        agent = asyncio.create_task(echo_agent(host))
        url = f"{host.base_url}/webhook/minimal"
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        remaining = requests

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                async with session.post(url, data=b"hello") as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        accepted = time.perf_counter() - start
        while host.bus.delivered < statuses.get(200, 0) or host.bus.qsize():
            await asyncio.sleep(0.01)
        while host.manager.slots["minimal"].main_lane.locked():
            await asyncio.sleep(0.01)
        drained = time.perf_counter() - start
        agent.cancel()
        await asyncio.sleep(0.05)
    s = sorted(latencies)
    return {"webhooks_accepted_per_s": requests / accepted, "webhook_p50_ms": s[len(s) // 2] * 1e3,
            "webhook_p99_ms": s[int(len(s) * 0.99)] * 1e3, "round_trips_per_s": requests / drained,
            "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    n = 300 if args.quick else 3000
    rss_points = (1000, 2000) if args.quick else (1000, 10_000, 50_000)
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    runtime = Runtime(REPO / "build" / "compile-cache")
    try:
        minimal_caps = {"name": "minimal", "version": "0.1.0", "wit_version": "0.1.0",
                        "capabilities": {"channel": {"emit_rate_limit": {"messages_per_minute": 10**9,
                                                                         "messages_per_hour": 10**9}}}}
        minimal = make_channel(runtime, watguest.build_component(tmp / "wat"), minimal_caps, tmp)
        req = IncomingHttpRequest("POST", "/webhook/minimal", "{}", "{}", json.dumps(UPDATE).encode(), True)
        fresh(minimal, req, 50)
        results["minimal_fresh"] = summarize(fresh(minimal, req, n))
        results["minimal_reused"] = summarize(reused(runtime, minimal, req, n))
        results["minimal_fresh_over_reused_p50"] = (results["minimal_fresh"]["p50_us"]
                                                    / results["minimal_reused"]["p50_us"])
        # The guest emits the body as message content; over 64 KB that message is dropped (and logged).
        big = IncomingHttpRequest("POST", "/webhook/minimal", "{}", "{}", b"a" * 1_000_000, True)
        base_ms = results["minimal_fresh"]["p50_us"] / 1e3
        results["body_1mb_ms"] = statistics.median(fresh(minimal, big, 5)) * 1e3 - base_ms

        tg_wasm = REPO / "build" / "channels" / "telegram.wasm"
        if tg_wasm.exists():
            tg_caps = json.loads((REPO / "build" / "channels" / "telegram.capabilities.json").read_text())
            tg_caps["config"]["dm_policy"] = "open"
            telegram = make_channel(runtime, tg_wasm, tg_caps, tmp)
            assert telegram.start(json.dumps(tg_caps["config"])).ok
            tg_req = IncomingHttpRequest("POST", "/webhook/telegram", "{}", "{}", json.dumps(UPDATE).encode(), True)
            fresh(telegram, tg_req, 10)
            results["telegram_fresh"] = summarize(fresh(telegram, tg_req, max(100, n // 10)))
            results["telegram_reused"] = summarize(reused(runtime, telegram, tg_req, max(100, n // 10)))

        rss: dict[str, float] = {}
        done = 0
        for point in rss_points:
            fresh(minimal, req, point - done)
            done = point
            rss[str(point)] = round(rss_mb(), 1)
        results["rss_mb_after_callbacks"] = rss
        results["webhook_e2e"] = asyncio.run(end_to_end(tmp, 500 if args.quick else 3000))
    finally:
        runtime.close()
        shutil.rmtree(tmp, ignore_errors=True)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "callbacks.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
