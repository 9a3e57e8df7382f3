"""The BENCHMARKS.md section of ``bench/bus.py`` (``bench/results/bus.md``): its tables and the capacity model built
from the measured per-message CPU costs. Apart from the measurement so that the section can be written again from an
earlier run's JSON (``bus.py --from-json``) and each file keeps one job."""

from __future__ import annotations

import math
from typing import Any

RATES = (1_000, 10_000, 100_000)
"""Message rates (per second) the capacity model sizes a deployment for."""
HEADROOM = 0.6
"""Share of a core the model lets each process use (the rest: bursts, retries, compaction)."""
_ACK_TEXT = {"each": "one request per message", "batch": "one `POST /v1/messages/ack` per lease"}
MODEL_ACK = "batch"
"""The agent the capacity model sizes for: one that acknowledges a lease in one request (the API's cheap way)."""


def markdown(doc: dict[str, Any]) -> str:
    """The BENCHMARKS.md section (``bench/results/bus.md``, included by ``bench/report.py``)."""
    rows = doc["results"]
    runs = [r for r in rows if "webhooks" in r]
    modes = [m for m in _ACK_TEXT if any(r.get("ack", "each") == m for r in runs)]
    model = MODEL_ACK if MODEL_ACK in modes else modes[0]
    e2e = {r["backend"]: r for r in runs if r.get("ack", "each") == model}
    cost = {(r["backend"], r["batch"]): r for r in rows if "batch" in r}
    lines = [
        "## Message log on PostgreSQL + Redis (issue 12, item 3: `bench/bus.py`)", "",
        f"`airlock serve` (template-rust, webhook secret checked) with the message log on each backend; in the "
        f"bench process {doc['concurrency']} webhook clients for {doc['duration_s']:g} s and an HTTP agent "
        f"({doc['agents']} long-polling clients, leases of up to 50), which acknowledges "
        + " or ".join(f"with {_ACK_TEXT[m]} (`{m}`)" for m in modes) + ". "
        "Delivery = webhook sent -> the agent holds it (one clock). CPU per message from /proc (the gateway "
        f"process; PostgreSQL's and Redis's processes). Machine: {doc['nproc']} cores shared with other work (load "
        f"average {doc.get('load', '?')} at the start): absolute figures are noisy, the same run's ratios less so.", "",
        "| backend | acks | req/s | answer p50 / p99 ms | delivery p50 / p99 ms | gateway CPU ms/msg | "
        "PostgreSQL CPU ms/msg | Redis CPU ms/msg |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        pg = r.get("postgres_cpu_ms_per_msg", 0.0)
        lines.append(f"| {r['backend']} | {r.get('ack', 'each')} | {r['req_per_s']:,.0f} | "
                     f"{r['answer_p50_ms']:.0f} / {r['answer_p99_ms']:.0f} | "
                     f"{r['delivery_p50_ms']:.0f} / {r['delivery_p99_ms']:.0f} | {r['gateway_cpu_ms_per_msg']:.2f} | "
                     f"{pg:.2f} | {r.get('redis_cpu_ms_per_msg', 0.0):.2f} |")
    lines += ["", "The log alone (one thread: commit, lease, ack; batches of 1 and 20 entries per commit/lease):", "",
              "| backend | batch | wall ms/msg | PostgreSQL CPU ms/msg | Redis CPU ms/msg |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for (name, batch), r in cost.items():
        lines.append(f"| {name} | {batch} | {r['wall_ms_per_msg']:.2f} | {r.get('postgres_cpu_ms_per_msg', 0.0):.2f} | "
                     f"{r.get('redis_cpu_ms_per_msg', 0.0):.2f} |")
    bus, pg = e2e["postgresql+redis"], e2e["postgresql"]
    lines += ["", f"With `{model}` acks: through Redis, {bus['req_per_s'] / pg['req_per_s']:.2f}x the req/s of "
              "PostgreSQL alone and "
              f"{bus['req_per_s'] / e2e['sqlite']['req_per_s']:.2f}x SQLite's; the webhook's answer does not wait "
              "for Redis (the publisher is a thread woken by the commit), delivery does: one more hop (publisher "
              "thread, XADD, XREADGROUP) than a lease straight from PostgreSQL.", "",
              *_ack_ratio(runs, modes), *capacity(bus, cost.get(("postgresql+redis", 20)), model), ""]
    return "\n".join(lines)


def _ack_ratio(runs: list[dict[str, Any]], modes: list[str]) -> list[str]:
    """One sentence: what acknowledging a lease in one request saves, per backend (when both ways ran)."""
    if modes != ["each", "batch"]:
        return []
    by = {(r["backend"], r.get("ack", "each")): r for r in runs}
    cpu = "gateway_cpu_ms_per_msg"
    parts = [f"{name} {by[name, 'each'][cpu]:.2f} -> {by[name, 'batch'][cpu]:.2f}"
             for name in ("sqlite", "postgresql", "postgresql+redis") if (name, "each") in by and (name, "batch") in by]
    return ["Acknowledging each lease in one request instead of one per message, gateway CPU ms/msg: "
            + ", ".join(parts) + " (per message it saves a request, an ownership read and a transaction).", ""]


def capacity(bus: dict[str, Any], batched: dict[str, Any] | None, ack: str = MODEL_ACK) -> list[str]:
    """The capacity model paragraph and table, from the measured per-message CPU costs (the run whose agent
    acknowledged ``ack``-wise)."""
    g, p, r = bus["gateway_cpu_ms_per_msg"], bus["postgres_cpu_ms_per_msg"], bus["redis_cpu_ms_per_msg"]
    per_core = {k: 1000.0 / v * HEADROOM if v > 0 else float("inf") for k, v in (("g", g), ("p", p), ("r", r))}
    out = [
        f"**Capacity model.** Per message, measured above on PostgreSQL + Redis with `{ack}` acks: the gateway spends "
        f"{g:.2f} ms of CPU (webhook, guest callback, commit, publish, the agent API's lease and ack), PostgreSQL "
        f"{p:.2f} ms and Redis {r:.2f} ms. At {HEADROOM:.0%} of a core per process, one gateway core carries "
        f"~{per_core['g']:,.0f} msg/s, one PostgreSQL core ~{per_core['p']:,.0f} msg/s, and Redis (one thread) "
        f"~{per_core['r']:,.0f} msg/s. Gateways scale out (more workers and nodes: their cost is per message and "
        "they share nothing but the two servers); PostgreSQL and Redis do not, so:", "",
        "| msg/s | gateway cores | PostgreSQL cores | Redis |", "| ---: | ---: | ---: | --- |",
    ]
    for rate in RATES:
        redis_need = rate / per_core["r"]
        redis_txt = "one instance" if redis_need <= 1 else f"{redis_need:.1f} cores: shard streams by agent"
        out.append(f"| {rate:,} | {math.ceil(rate / per_core['g']):,} | {math.ceil(rate / per_core['p']):,} | "
                   f"{redis_txt} |")
    first = "the gateway's CPU" if g >= max(p, r) else ("PostgreSQL's CPU" if p >= r else "Redis")
    out += ["", f"The first bottleneck on one machine is {first} ({g:.2f} ms/msg against PostgreSQL's {p:.2f} and "
            f"Redis's {r:.2f}): the gateway is where more cores go first. In a cluster the first shared bottleneck is "
            "PostgreSQL: it costs more per message than Redis by "
            f"{p / r if r else float('inf'):.0f}x and is one primary. Batching is the lever the measurement shows"]
    if batched is not None:
        out[-1] += (f": with 20 entries per commit and lease its CPU falls to {batched['postgres_cpu_ms_per_msg']:.2f} "
                    "ms/msg in the log-alone rows")
    out[-1] += (". 10k msg/s is within one large PostgreSQL primary only with such batching; 100k msg/s needs the "
                "log partitioned over several databases (by channel instance: a conversation never spans two), with "
                "a Redis per partition. The publisher holds one advisory lock per publish (stream order = commit "
                "order), which serialises publishing cluster-wide; per-partition locks lift it with the partitions.")
    return out
