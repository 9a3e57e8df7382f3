"""BENCHMARKS.md's section on the message path (issue 8; the figures come from bench/roundtrip.py)."""

from __future__ import annotations

from typing import Any

ROUND_TRIP_LABELS = {
    "memory": "in-memory comparison (`MemoryMessageLog`: nothing on disk)",
    "log": "the message log as shipped (`state.db`, `synchronous=FULL`)",
    "log_normal": "the message log with `log_synchronous = \"NORMAL\"`",
}
TARGET_RATIO = 0.8


def round_trip_ratio(r: dict[str, Any]) -> float | None:
    """Round trips/s with the log as shipped / with the in-memory comparison (issue 8's target: >= 0.8)."""
    rt = (r.get("messages") or {}).get("round_trip") or {}
    log, memory = (rt.get(k, {}).get("rps") for k in ("log", "memory"))
    return log / memory if log is not None and memory else None


def section(r: dict[str, Any]) -> list[str]:
    msg = r.get("messages")
    if not isinstance(msg, dict):
        return []
    if "skipped" in msg:
        return ["## The message path (issue 8)", "", f"Not measured: {msg['skipped']}.", ""]
    rows = ["| conversations | variant | round trips/s | vs in-memory | p50 (ms) | p99 (ms) | webhook answered p50 / "
            "p99 (ms) | host CPU per round trip (ms) | durable writes per transaction | failed |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, rt in (msg.get("round_trip_at") or {}).items():
        memory = (rt.get("memory") or {}).get("rps")
        for key, label in ROUND_TRIP_LABELS.items():
            s = rt.get(key)
            if not isinstance(s, dict):
                continue
            ratio = f"{s['rps'] / memory:.2f}x" if memory else "n/a"
            rows.append(f"| {n} | {label} | {s['rps']:,.1f} | {ratio} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                        f"{s['ack_p50_ms']:.2f} / {s['ack_p99_ms']:.2f} | {s.get('host_cpu_ms_per_trip', '-')} | "
                        f"{s.get('writes_per_transaction', '-')} | {s['non2xx'] + s['errors']} |")
    out = [
        "## The message path (issue 8)", "",
        "**Webhook → durable log → agent ack → reply delivered.** A real host with its own webhook listener runs "
        "the template-rust component (JSON webhook with a header secret; every webhook also writes the guest's "
        "durable `state/seen` record, committed with the message). The in-process agent leases each message and "
        "answers it (`host.respond`: acknowledgement and reply in one transaction); the reply goes through the "
        "outbox and the channel's on-respond, whose HTTP call reaches the load generator's fake endpoint, which "
        "ends the round trip. Each conversation sends its next message once the reply to its last one arrived "
        f"(bench/msgload.py, its own process); {msg.get('rounds')} rounds of {msg.get('round_s')} s per variant "
        "after a warm-up, alternating between the variants' hosts. The target is read at the larger number of "
        f"conversations ({msg.get('conversations')}), where throughput is what limits; with few conversations the "
        "figure is mostly one round trip's latency, two fsyncs of which are the log's (the webhook's commit and the "
        "reply's), so it is shown too. "
        "**The in-memory comparison** is the same host and code path with the `MessageLog` protocol kept in "
        "Python dicts (`bench/memlog.py`: no file, no SQL, no fsync; what the path costs when messages live only "
        "in memory, as on the bus before the log). Latencies are per round trip (webhook sent → reply received); "
        "the webhook column is the time to its 200, which waits for the durable commit. Host CPU per round trip (the "
        "hosts' process, all threads, warm-up included) depends less on the shared machine's load than the rates "
        "do.", "",
        *rows, "",
    ]
    for n, rt in (msg.get("round_trip_at") or {}).items():
        for key in ROUND_TRIP_LABELS:
            s = rt.get(key)
            if isinstance(s, dict) and s.get("rounds_rps"):
                out.append(f"- {n} conversations, {key}, rounds: {', '.join(f'{x:,.1f}' for x in s['rounds_rps'])} "
                           "round trips/s")
    out += ["", *_api_lines(msg.get("agent_api") or {})]
    return out


def _api_lines(api: dict[str, Any]) -> list[str]:
    rows = ["| agent connections | messages/s | lease + ack p50 (ms) | p99 (ms) | failed |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    for n in ("1", "8"):
        s = api.get(n)
        if isinstance(s, dict):
            rows.append(f"| {n} | {s['per_s']:,.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                        f"{s['non2xx'] + s['errors']} |")
    return ["**Messages/s through the agent HTTP API** (`airlock.agentapi`, its own listener): the log as shipped, "
            f"{api.get('prefilled', '?'):,} messages waiting for one HTTP agent; each connection takes one message "
            "(`GET /v1/messages?limit=1`) and acknowledges it (`POST /v1/messages/{id}/ack` with its lease token), "
            "then the next (bench/msgload.py, its own process).", "", *rows, ""]
