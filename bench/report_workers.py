"""BENCHMARKS.md's section for ``airlock serve --workers 1`` vs ``--workers 2`` (bench/workers.py, issue 12)."""

from __future__ import annotations

from typing import Any

_ROWS = (("w1", "`--workers 1` (one process)"), ("w2", "`--workers 2` (supervisor + 2 workers)"),
         ("w2_normal", '`--workers 2`, `log_synchronous = "NORMAL"` (no fsync; not the headline)'))


def _row(label: str, s: dict[str, Any]) -> str:
    workers = ", ".join(f"{c:.2f}" for c in s["worker_cpu_s"]) or "-"
    drained = "" if s.get("drained", True) else " (not drained)"
    return (f"| {label} | {s['rps']:,.0f} | {s['delivered_per_s']:,.0f}{drained} | {s['drain_s']:.2f} | "
            f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['non2xx']} | {s['gateway_cpu_s']:.2f} ({workers}) | "
            f"{s['cpu_ms_per_msg']:.3f} | {s['loadgen_cpu_share']:.1%} |")


def _cores(w: dict[str, Any]) -> list[str]:
    """What the 2-core machine allows: the cores one worker already used, and the per-message CPU of each."""
    one, two = w["w1"], w["w2"]
    if "cpu_ms_per_msg" not in one or "cpu_ms_per_msg" not in two:
        return []
    span = one["duration_s"] + one.get("drain_s", 0.0)
    used = one["gateway_cpu_s"] / span if span > 0 else 0.0
    cores = w.get("cores") or 2
    return [
        f"**What limits the ratio here.** One worker already used {used:.2f} of the machine's {cores} cores "
        f"({one['gateway_cpu_s']:.2f} CPU-s over {span:.2f} s): the guest's wasm and SQLite run in C outside the GIL, "
        f"in the callback and log threads. So even with no cost of its own, a second worker could add at most "
        f"{max(cores - used, 0):.2f} core here, {cores / used if used else 0:.2f}x in all. And a message costs more "
        f"CPU with two workers than with one ({one['cpu_ms_per_msg']:.3f} -> {two['cpu_ms_per_msg']:.3f} ms): "
        "both processes write one `state.db`, so each groups only its own commits (half-size groups, twice the "
        "transactions and fsyncs), they queue at the writer gate, and each process's SQLite page cache is "
        "invalidated by the other's commits (SQLite drops a connection's cache when another process "
        "wrote). On this machine `--workers 2` does not pay on SQLite state; it is for "
        "machines with more cores than one worker uses, and PostgreSQL state is for more than one machine.", "",
    ]


def section(r: dict[str, Any]) -> list[str]:
    w = r.get("workers")
    if not isinstance(w, dict) or "w1" not in w or "w2" not in w or "delivered_per_s" not in w["w1"]:
        return []
    rows = [_row(label, w[key]) for key, label in _ROWS if key in w]
    normal = (f" With `NORMAL`: {w['ratio_2_normal_over_peer']:.2f}x the peer."
              if "ratio_2_normal_over_peer" in w else "")
    return [
        "## Worker processes: webhook -> agent with `--workers 1` and `--workers 2` (issue 12)", "",
        f"The real `airlock serve` process tree on a fresh home (SQLite state, the Rust guest (a)), its in-process "
        f"agent (worker 0) acknowledging every message; wrk (one thread, {w['concurrency']} connections, "
        f"{w['duration_s']:g} s after a warm-up). **End to end = delivered**: a webhook is answered once its message "
        "is durable, and the agent may lag behind, so after the load the run waits until the agent acknowledged "
        "every message and counts that drain: delivered/s is the messages acknowledged over load + drain seconds, "
        "CPU is the gateway processes' over the same span (per worker in brackets) and per message. Answered req/s "
        "alone overstates the end-to-end rate whenever the agent lags (before its leases and acks stopped going "
        "through worker threads, the agent needed up to 3.5 s after an 8 s load to catch up). "
        "The load generator's share is its CPU time over the run's wall time x cores.", "",
        "| gateway | answered req/s | delivered/s | drain s | p50 (ms) | p99 (ms) | non-2xx | gateway CPU s "
        "(workers) | CPU ms/msg | load generator CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows, "",
        f"Delivered/s, 2 workers / 1: **{w['ratio_2_over_1']:.2f}x** (target 1.6x); 2 workers / JSON-RPC peer (c) "
        f"of the same run ({w['peer_rps']:,.0f} req/s): **{w['ratio_2_over_peer']:.2f}x** (target 1.5x); 1 worker "
        f"/ peer {w['ratio_1_over_peer']:.2f}x.{normal}", "",
        *_cores(w),
        "**Is the peer comparison like for like? No.** Per request the JSON-RPC peer (bench/e2e.py route "
        "`/bench/jsonrpc`, bench/plugin_peer.py) reads the body, sends one JSON line to a long-lived plugin process "
        "over a pipe, parses its JSON answer and puts the emitted message on an in-memory `asyncio.Queue` that a "
        "task drains; it writes nothing durable, runs no sandbox (the plugin is trusted Python with the whole "
        "process's rights), checks no emit rate limit, no dedupe, no routing. Airlock per request: a fresh wasm "
        "sandbox for the guest (fuel, memory and deadline limits), the host-side admission and routing, an append "
        "to the SQLite message log in a group commit made durable by an fdatasync of the WAL before the webhook is "
        "answered, and the agent's lease + ack (two more SQLite transactions). The `NORMAL` line drops the fsync "
        "(a kill -9 still loses nothing; a power loss may lose the last commits) and is the closest to the peer's "
        "durability, but still does every other step.", "",
    ]
