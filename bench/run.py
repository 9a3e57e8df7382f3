"""``make bench``: the whole benchmark suite in one invocation on one machine.

Pieces (each its own module): callback level for (a)-(d) plus the minimal and Slack guests (callbacks.py), end
to end over HTTP with an external load generator (e2e.py, loadgen.py), the message path (issue 8: webhook -> log
-> agent -> reply delivered with the log vs in memory, and the agent HTTP API; roundtrip.py, msgload.py,
memlog.py), webhook req/s with metrics on vs off (metrics_cost.py), RSS after 1k/10k/100k fresh callbacks in its
own process (rss.py), extra RSS of one 9 MiB http-request response (http_memory.py), the callback cost of the http
adapter (adapter_cost.py), start-up of 50 installed channels from the compile cache in a fresh process
(startup.py), component sizes; then BENCHMARKS.md and the chart (report.py). Raw results go to
``<out-dir>/results.json``.

Usage: python bench/run.py [--quick] [--out-dir DIR] [--report FILE] [--chart FILE] [--cache DIR]
``--quick`` runs every piece with tiny counts (the smoke test uses it): it proves the scripts work; its
figures are not to be quoted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import callbacks
import e2e
import metrics_cost
import report
import roundtrip
import workers
from common import BENCH, BENCH_GUEST, BUILT_CHANNELS, REPO, bench_guest_caps, install, machine, minimal_caps, wat_guest


@dataclass(frozen=True)
class Settings:
    plan: callbacks.Plan
    rss_counts: tuple[int, ...]
    response_mib: float
    concurrency: int
    duration_s: float
    warmup_s: float
    startup_channels: int
    startup_runs: int
    metrics_rounds: int
    conversations: tuple[int, ...]
    message_rounds: int
    message_round_s: float
    api_s: float
    api_prefill: int


FULL = Settings(plan=callbacks.Plan(), rss_counts=(1000, 10_000, 100_000), response_mib=9, concurrency=8,
                duration_s=8, warmup_s=2, startup_channels=50, startup_runs=3, metrics_rounds=4, conversations=(8, 32),
                message_rounds=3, message_round_s=3, api_s=6, api_prefill=40_000)
QUICK = Settings(plan=callbacks.Plan(rounds=2, fast=60, inproc=200, cpython=6), rss_counts=(20, 50, 100),
                 response_mib=1, concurrency=4, duration_s=1, warmup_s=0, startup_channels=5, startup_runs=1,
                 metrics_rounds=1, conversations=(2, 4), message_rounds=1, message_round_s=1, api_s=1, api_prefill=500)


def log(msg: str) -> None:
    print(msg, flush=True)


def _python(script: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed: {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def startup(cache: Path, channels: int, runs: int) -> dict[str, Any]:
    """Median start-up time of a host with ``channels`` copies of a small guest, cache warm."""
    home = Path(tempfile.mkdtemp(prefix="airlock-bench-startup-"))
    (home / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    rust = BENCH_GUEST.exists()
    wasm = BENCH_GUEST if rust else wat_guest(home / "wat")
    for i in range(channels):
        name = f"bench-{i:02d}"
        caps = bench_guest_caps(f"/webhook/{name}") if rust else minimal_caps(name)
        caps.setdefault("config", {})["path"] = f"/webhook/{name}"
        install(home / "channels", name, wasm, caps)
    _python("startup.py", str(home))  # the first run fills the cache if it was cold; not counted
    samples = [_python("startup.py", str(home)) for _ in range(runs)]
    best = sorted(samples, key=lambda s: float(s["seconds"]))[len(samples) // 2]
    best["runs"] = runs
    best["all_seconds"] = [s["seconds"] for s in samples]
    best["guest"] = "the Rust bench guest" if rust else "the minimal WAT guest"
    return best


def component_sizes(tmp: Path) -> dict[str, int]:
    sizes = {f"build/channels/{p.name}": p.stat().st_size for p in sorted(BUILT_CHANNELS.glob("*.wasm"))}
    if BENCH_GUEST.exists():
        sizes["build/bench/telegram-min.wasm (bench guest)"] = BENCH_GUEST.stat().st_size
    sizes["minimal WAT guest (tests/guests/watguest.py)"] = wat_guest(tmp / "wat").stat().st_size
    return sizes


def run(settings: Settings, cache: Path, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {**machine(), "quick": quick}, "notes": []}
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
    started = time.perf_counter()
    results["component_sizes"] = component_sizes(tmp)
    results["callbacks"] = callbacks.run(settings.plan, cache, tmp, log)
    log("rss: " + ", ".join(str(n) for n in settings.rss_counts) + " fresh callbacks in a process of its own")
    results["rss"] = _python("rss.py", "--cache", str(cache), *map(str, settings.rss_counts))
    log(f"  {results['rss']}")
    results["rss_raised"] = _python("rss.py", "--cache", str(cache), "--raised-emit-limit",
                                    *map(str, settings.rss_counts))
    log(f"  {results['rss_raised']}")
    log("http adapter: fresh callbacks of the guests it is composed with, with and without it")
    results["adapter_cost"] = _python("adapter_cost.py", "--cache", str(cache), "--calls", str(settings.plan.fast),
                                      "--rounds", str(settings.plan.rounds), "--cpython")
    log(f"  {results['adapter_cost']}")
    log(f"http response memory: one {settings.response_mib} MiB response to a guest, in a process of its own")
    size = ["--size-mib", str(settings.response_mib)]
    # The host's path (the http adapter) for both worlds, and the component as built for comparison.
    runs = {"host": ("host", "airlock"), "near": ("host", "near-0.3.1"), "unadapted": ("unadapted", "airlock")}
    results["http_memory"] = {key: _python("http_memory.py", "--cache", str(cache), "--path", path, "--world", world,
                                           *size) for key, (path, world) in runs.items()}
    log(f"  {results['http_memory']}")
    if not e2e.ensure_wrk():
        results["notes"].append("wrk not installed: HTTP load generated by bench/loadgen.py (aiohttp client)")
    results["e2e"] = asyncio.run(e2e.run(cache, settings.concurrency, settings.duration_s, settings.warmup_s, log))
    peer = results["e2e"].get("c", {}).get("rps")
    results["workers"] = asyncio.run(workers.run(cache, settings.concurrency, settings.duration_s, settings.warmup_s,
                                                 log, peer_rps=float(peer) if peer else None))
    results["messages"] = asyncio.run(roundtrip.run(
        cache, settings.conversations, settings.message_rounds, settings.message_round_s,
        min(1.0, settings.warmup_s), settings.api_s, settings.api_prefill, log))
    results["metrics_cost"] = asyncio.run(metrics_cost.run(cache, settings.concurrency, settings.duration_s / 2,
                                                           settings.metrics_rounds, log))
    log(f"startup: {settings.startup_channels} channels, {settings.startup_runs} fresh processes")
    results["startup"] = startup(cache, settings.startup_channels, settings.startup_runs)
    log(f"  {results['startup']}")
    load1, load5, _ = os.getloadavg()
    results["machine"]["load_average_at_end"] = [round(load1, 2), round(load5, 2)]
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: prove the scripts work")
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    parser.add_argument("--report", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--chart", type=Path, default=BENCH / "results" / "chart.png")
    parser.add_argument("--cache", type=Path, default=REPO / "build" / "compile-cache")
    args = parser.parse_args()
    os.environ.setdefault("AIRLOCK_MASTER_KEY", os.urandom(32).hex())
    args.cache.mkdir(parents=True, exist_ok=True)
    results = run(QUICK if args.quick else FULL, args.cache, args.quick)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=2))
    chart = report.chart(results, args.chart)
    args.report.write_text(report.markdown(results, chart, args.report))
    for t in report.targets(results):
        log(f"target: {t.what}: {t.value} (goal {t.goal}): {t.verdict}")
    log(f"wrote {args.report}, {chart} and {args.out_dir / 'results.json'} in {results['elapsed_s']} s")


if __name__ == "__main__":
    main()
