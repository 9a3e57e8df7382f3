"""Callback throughput with and without the http adapter (issue 13, defect 4), in one process, alternating rounds.

The adapter (``airlock.runtime.adapter``) is composed in front of every component that imports ``http-request``:
each fresh callback then also instantiates the adapter's module (three more core instances and one more memory),
and every host call the guest makes goes through one more component boundary. Measured as ``make bench``'s
callback level measures (bench/callbacks.py): fresh callbacks of the same guest on a pooled runtime, here one that
composes and one that loads the component as built (``Runtime(adapt=False)``), in alternating rounds.

Variants: the bundled Slack guest (Rust), and (with ``--cpython``) the CPython Telegram guest. The Rust benchmark
guest of ``make bench`` (``a``: build/bench/telegram-min.wasm) imports only ``log`` and ``emit-message``: it is
not composed, so its figures do not move (listed as ``not composed``). Prints one JSON object:
{variant: {adapted, unadapted: Summary, p50_slower_pct, per_s_slower_pct}}.
Usage: python bench/adapter_cost.py --cache DIR [--calls 5000] [--rounds 5] [--cpython]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import callbacks
import work
from callbacks import Variant, fresh_messages, make_channel, request, run_rounds
from common import BENCH_GUEST, BUILT_CHANNELS, bench_guest_caps, summarize, telegram_caps

from airlock.runtime.engine import Runtime
from airlock.runtime.pooling import PoolingSettings, slots_for


def _guests() -> list[tuple[str, Path, dict[str, Any] | None, str, bytes]]:
    slack = callbacks.slack_caps()
    return [
        ("a_rust", BENCH_GUEST, bench_guest_caps(), "/webhook/telegram-min", work.BODIES[1]),
        ("slack", BUILT_CHANNELS / "slack.wasm", slack, "", callbacks.slack_request_body()),
        ("b_cpython", BUILT_CHANNELS / "telegram.wasm", telegram_caps(), "/webhook/telegram",
         work.BODIES[1]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpython", action="store_true", help="also the CPython guest (calls / 10)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-adapter-"))
    pool = PoolingSettings(slots=slots_for(0), max_memory_bytes=callbacks.MEMORY_LIMIT)
    runtimes = {"adapted": Runtime(args.cache, pooling=pool), "unadapted": Runtime(args.cache, pooling=pool,
                                                                                   adapt=False)}
    variants: list[Variant] = []
    skipped: list[str] = []
    try:
        for name, wasm, caps, path, body in _guests():
            if caps is None or not wasm.exists() or (name == "b_cpython" and not args.cpython):
                continue
            calls = args.calls // 10 if name == "b_cpython" else args.calls
            for label, runtime in runtimes.items():
                channel = make_channel(runtime, wasm, caps, tmp)
                if label == "adapted" and not channel.loaded.adapted:
                    skipped.append(name)
                    break
                endpoint = path or (channel.config.http_endpoints[0].path if channel.config else "/")
                req = request(endpoint, body)
                variants.append(Variant(f"{name}/{label}", calls, lambda c=channel, r=req: fresh_messages(c, r)))
        run_rounds(variants, args.rounds)
    finally:
        for runtime in runtimes.values():
            runtime.close()
    out: dict[str, Any] = {name: "not composed" for name in skipped}
    for v in variants:
        guest, label = v.name.split("/")
        out.setdefault(guest, {})[label] = summarize(v.samples).as_dict()
    for pair in out.values():
        if isinstance(pair, dict):
            # p50: the machine is shared, and calls/s (total time) moves with a few preempted calls.
            pair["p50_slower_pct"] = round((pair["adapted"]["p50_us"] / pair["unadapted"]["p50_us"] - 1) * 100, 1)
            pair["per_s_slower_pct"] = round((pair["unadapted"]["per_s"] / pair["adapted"]["per_s"] - 1) * 100, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
