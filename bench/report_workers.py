"""BENCHMARKS.md's section for ``airlock serve --workers 1`` vs ``--workers 2`` (bench/workers.py, issue 12)."""

from __future__ import annotations

from typing import Any


def section(r: dict[str, Any]) -> list[str]:
    w = r.get("workers")
    if not isinstance(w, dict) or "w1" not in w or "w2" not in w:
        return []
    rows = []
    for key, label in (("w1", "`--workers 1` (one process)"), ("w2", "`--workers 2` (supervisor + 2 workers)")):
        s = w[key]
        rows.append(f"| {label} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['non2xx']} | "
                    f"{s['gateway_cpu_s']:.2f} ({', '.join(f'{c:.2f}' for c in s['worker_cpu_s']) or '-'}) | "
                    f"{s['loadgen_cpu_share']:.1%} |")
    return [
        "## Worker processes: webhook -> agent with `--workers 1` and `--workers 2` (issue 12)", "",
        f"The real `airlock serve` process tree on a fresh home (SQLite state, the Rust guest (a)), its in-process "
        f"agent (worker 0) acknowledging every message; wrk (one thread, {w['concurrency']} connections, "
        f"{w['duration_s']:g} s after a warm-up). Gateway CPU is the seconds its processes used during the run "
        "(per worker in brackets); the load generator's share is its CPU time over the run's wall time x cores.", "",
        "| gateway | requests/s | p50 (ms) | p99 (ms) | non-2xx | gateway CPU s (workers) | load generator CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows, "",
        f"2 workers / 1: **{w['ratio_2_over_1']:.2f}x** (target 1.6x); 2 workers / JSON-RPC peer (c) of the same "
        f"run ({w['peer_rps']:,.0f} req/s): **{w['ratio_2_over_peer']:.2f}x** (target 1.5x); 1 worker / peer "
        f"{w['ratio_1_over_peer']:.2f}x.", "",
    ]
