"""Where one fresh-store callback of the (a) guest spends its time (a diagnostic, not part of ``make bench``).

Usage: python bench/profile_callback.py [--calls N] [--cprofile] [--stages]

- default: p50/mean wall and CPU time of ``Channel.http_request`` and ``Sandbox.call`` (fresh store each),
  and of ``Sandbox.reused_instance`` calls, pooling on, N calls each in alternating rounds;
- ``--stages``: the fresh ``Sandbox.call`` split into its steps (store + limits, instantiate, export
  call, close), timed one by one with the runtime's own objects;
- ``--cprofile``: cProfile of N ``Channel.http_request`` calls, top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import work
from callbacks import FUEL, MEMORY_LIMIT, make_channel, request, runtime_for
from common import BENCH_GUEST, bench_guest_caps

from airlock.capabilities.emit import EmitBuffer
from airlock.capabilities.workspace import WorkspaceTxn
from airlock.channels.callstate import CallState
from airlock.runtime import convert
from airlock.runtime.instance import Limits


def timed(fn: Callable[[], object], n: int) -> tuple[float, float, float]:
    """(p50 wall µs, mean wall µs, mean CPU µs) of ``n`` calls."""
    walls: list[float] = []
    c0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    cpu = (time.process_time() - c0) / n
    walls.sort()
    return walls[n // 2] * 1e6, sum(walls) / n * 1e6, cpu * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="airlock-prof-"))
    runtime = runtime_for(tmp / "cache", True)
    channel = make_channel(runtime, BENCH_GUEST, bench_guest_caps(), tmp)
    sandbox = channel.services.sandbox
    req = request("/webhook/telegram-min", work.BODIES[1])
    wit_req = (convert.incoming_request_to_wit(req),)
    limits = Limits(memory_bytes=MEMORY_LIMIT, fuel=FUEL, timeout_s=30.0)
    assert channel.http_request(req).messages

    def state() -> CallState:
        return CallState(channel=channel, deadline=time.monotonic() + 30,
                         workspace=WorkspaceTxn.begin(channel.workspace), emits=EmitBuffer(65536))

    def sandbox_call() -> None:
        sandbox.call(channel.loaded, "on-http-request", wit_req, state(), limits)

    if args.cprofile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.calls):
            channel.http_request(req)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    api = state()
    results: dict[str, list[tuple[float, float, float]]] = {"channel.http_request": [], "sandbox.call": [],
                                                             "reused_instance": []}
    reused_limits = Limits(memory_bytes=MEMORY_LIMIT, fuel=2**62, timeout_s=3600.0)
    per = max(1, args.calls // args.rounds)
    for _ in range(args.rounds):
        results["channel.http_request"].append(timed(lambda: channel.http_request(req), per))
        results["sandbox.call"].append(timed(sandbox_call, per))
        with sandbox.reused_instance(channel.loaded, api, reused_limits) as reused:
            def reused_call() -> None:
                api.emits.messages.clear()
                reused("on-http-request", wit_req)

            results["reused_instance"].append(timed(reused_call, per))
    out = {}
    for name, rows in results.items():
        rows.sort()
        med = rows[len(rows) // 2]
        out[name] = {"p50_us": round(med[0], 1), "mean_us": round(med[1], 1), "cpu_us": round(med[2], 1)}
    out["fresh/reused p50"] = round(out["channel.http_request"]["p50_us"] / out["reused_instance"]["p50_us"], 2)
    out["pooling"] = runtime.pooling is not None
    out["imports_wasi"] = channel.loaded.imports_wasi
    print(json.dumps(out, indent=1))
    runtime.close()


if __name__ == "__main__":
    main()
