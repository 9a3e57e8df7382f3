"""Webhook -> agent end to end with ``airlock serve --workers 1`` and ``--workers 2`` (issue 12), on the Rust-guest
load (``a``: bench/guests/telegram-min), against the JSON-RPC peer (``c``, bench/e2e.py) in the same run.

Each gateway is the real ``airlock serve`` process tree (supervisor + workers for N > 1) on a fresh home with
SQLite state; its in-process agent (bench/ack_agent.py, in worker 0) leases and acknowledges every message. wrk
(one thread) loads it after a warm-up. End to end means delivered: the agent may fall behind the webhooks (their
answer only waits for the durable append), so after the load the run waits until the agent acknowledged every
message, and counts that drain in the time and the CPU (``delivered_per_s``: messages acknowledged over load +
drain seconds; ``cpu_ms_per_msg``: the gateway's CPU over the same span, per message). Before that rule the
in-process agent had acknowledged only a third to two thirds of the messages by the end of a run, so req/s counted
work that was not done yet. Reported per run: req/s (webhooks answered), delivered/s, p50/p99, the CPU seconds the
gateway's processes used and the load generator's own (``loadgen_cpu_share``: its CPU time over the run's wall
time x cores, from ``getrusage(RUSAGE_CHILDREN)``), and the ratios 2/1 and 2/peer of delivered/s. ``w2_normal``:
``--workers 2`` with ``log_synchronous = "NORMAL"`` (no fsync per commit), a second line beside the headline: the
JSON-RPC peer writes nothing durable (its messages go to an in-memory queue), so only that line is like for like.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import e2e
import loadgen
import work
from common import BENCH, BENCH_GUEST, bench_guest_caps, install

from airlock.workers.supervisor import read_status

START_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 120.0
"""Longest wait for the agent to acknowledge every message after the load (a run that hits it says so)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (/proc/PID/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _pids(home: Path, main: int) -> list[int]:
    doc = read_status(home)
    return [main] + ([int(w["pid"]) for w in doc["workers"] if w.get("pid")] if doc is not None else [])


async def _gateway(home: Path, cache: Path, workers: int, log_path: Path,
                   synchronous: str = "FULL") -> tuple[asyncio.subprocess.Process, int]:
    (home / "channels").mkdir(parents=True)
    (home / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    install(home / "channels", "telegram-min", BENCH_GUEST, bench_guest_caps())
    (home / "airlock.toml").write_text(f'bus_capacity = 1000000\nlog_synchronous = "{synchronous}"\n')
    port = free_port()
    env = {**os.environ, "AIRLOCK_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(BENCH), *sys.path])}
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airlock.cli", "serve", "--workers", str(workers), "--port", str(port),
            "--agent", "ack_agent:ack_all", "--no-admin", "--agent-api-port", "0", "--log-level", "warning",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = workers == 1 or (
            (doc := read_status(home)) is not None and all(w["state"] == "ready" for w in doc["workers"]))
        if ready and await _up(port):
            return proc, port
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.2)
    proc.kill()
    raise RuntimeError("gateway did not start: " + log_path.read_text()[-2000:])


async def _up(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.write(b"GET /health/telegram-min HTTP/1.0\r\n\r\n")
    line = await reader.readline()
    writer.close()
    return b" 200 " in line


async def _wrk(url: str, script: Path, concurrency: int, duration_s: float) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    assert wrk is not None, "wrk is needed (make wrk)"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = await e2e._run(loadgen.wrk_command(wrk, url, script, concurrency, duration_s))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = loadgen.parse_wrk(out)
    result["loadgen_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    return result


def _log_counts(home: Path) -> tuple[int, int]:
    """(entries in the log, entries acknowledged), read from the gateway's ``state.db`` by another connection."""
    with contextlib.closing(sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True, timeout=30)) as db:
        total, acked = db.execute("SELECT count(*), count(*) FILTER (WHERE state = 'acked') FROM inbound").fetchone()
    return int(total), int(acked)


async def _drained(home: Path) -> tuple[int, bool]:
    """Wait until the agent acknowledged every entry; (entries in the log, whether it finished in time)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        total, acked = await asyncio.to_thread(_log_counts, home)
        if acked >= total or time.monotonic() > deadline:
            return total, acked >= total
        await asyncio.sleep(0.02)


async def measure(workers: int, cache: Path, concurrency: int, duration_s: float, warmup_s: float,
                  tmp: Path, synchronous: str = "FULL") -> dict[str, Any]:
    home = tmp / f"home-{workers}-{synchronous}"
    proc, port = await _gateway(home, cache, workers, tmp / f"serve-{workers}.log", synchronous)
    try:
        script = tmp / "a.lua"
        script.write_text(loadgen.wrk_script(list(work.BODIES), {"Content-Type": "application/json"}))
        url = f"http://127.0.0.1:{port}/webhook/telegram-min"
        if warmup_s > 0:
            await _wrk(url, script, concurrency, warmup_s)
        before, _ = await _drained(home)
        pids = _pids(home, proc.pid)
        cpu_before = {p: _cpu_s(p) for p in pids}
        started = time.monotonic()
        result = await _wrk(url, script, concurrency, duration_s)
        loaded = time.monotonic() - started
        cpu_loaded = sum(_cpu_s(p) - c for p, c in cpu_before.items())
        after, complete = await _drained(home)
        span = time.monotonic() - started
        cpu = sum(_cpu_s(p) - c for p, c in cpu_before.items())
        delivered = after - before
        result.update(
            delivered=delivered, drained=complete, drain_s=round(span - loaded, 2),
            delivered_per_s=round(delivered / span, 1), gateway_cpu_s=round(cpu, 2),
            gateway_cpu_load_s=round(cpu_loaded, 2), cpu_ms_per_msg=round(cpu / max(delivered, 1) * 1000, 3),
            worker_cpu_s=[round(_cpu_s(p) - cpu_before[p], 2) for p in pids[1:]], workers=workers,
            log_synchronous=synchronous)
        cores = os.cpu_count() or 1
        result["loadgen_cpu_share"] = round(result["loadgen_cpu_s"] / (result["duration_s"] * cores), 3)
        return result
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)


async def run(cache: Path, concurrency: int, duration_s: float, warmup_s: float, log: Any = print,
              peer_rps: float | None = None) -> dict[str, Any]:
    """{"w1": summary, "w2": summary, "c": peer summary (measured here unless ``peer_rps``), ratios}."""
    if not BENCH_GUEST.exists():
        return {"notes": ["workers: bench guest not built"]}
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-workers-"))
    results: dict[str, Any] = {"concurrency": concurrency, "duration_s": duration_s, "cores": os.cpu_count() or 1}
    try:
        if peer_rps is None:
            async with e2e.serving(cache) as server:
                (peer,) = [t for t in server.targets if t.key == "c"]
                if warmup_s > 0:
                    await e2e.load(server, peer, concurrency, warmup_s, tmp)
                results["c"] = await e2e.load(server, peer, concurrency, duration_s, tmp)
                peer_rps = float(results["c"]["rps"])
                log(f"workers: JSON-RPC peer (c) {peer_rps:.0f} req/s")
        for key, n, sync in (("w1", 1, "FULL"), ("w2", 2, "FULL"), ("w2_normal", 2, "NORMAL")):
            summary = await measure(n, cache, concurrency, duration_s, warmup_s, tmp, sync)
            results[key] = summary
            log(f"workers: --workers {n} ({sync}): {summary['rps']:.0f} req/s answered, "
                f"{summary['delivered_per_s']:.0f}/s delivered (drain {summary['drain_s']} s), p50 "
                f"{summary['p50_ms']:.2f} ms p99 {summary['p99_ms']:.2f} ms non-2xx {summary['non2xx']}; gateway CPU "
                f"{summary['gateway_cpu_s']} s {summary['worker_cpu_s']} = {summary['cpu_ms_per_msg']} ms/msg, "
                f"load generator {summary['loadgen_cpu_share']:.0%} of the machine")
        results["ratio_2_over_1"] = round(results["w2"]["delivered_per_s"] / results["w1"]["delivered_per_s"], 2)
        results["ratio_2_over_peer"] = round(results["w2"]["delivered_per_s"] / peer_rps, 2)
        results["ratio_1_over_peer"] = round(results["w1"]["delivered_per_s"] / peer_rps, 2)
        results["ratio_2_normal_over_peer"] = round(results["w2_normal"]["delivered_per_s"] / peer_rps, 2)
        results["peer_rps"] = peer_rps
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="--workers 1 vs 2 end to end (issue 12)")
    parser.add_argument("--cache", type=Path, default=BENCH.parent / "build" / "compile-cache")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "workers.json")
    args = parser.parse_args()
    os.environ.setdefault("AIRLOCK_MASTER_KEY", os.urandom(32).hex())
    results = asyncio.run(run(args.cache, args.concurrency, args.duration, args.warmup))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k.startswith("ratio")}))


if __name__ == "__main__":
    main()
