"""Where one fresh-store callback of the (a) guest spends its time (a diagnostic, not part of ``make bench``).

Usage: python bench/profile_callback.py [--calls N] [--rounds R] [--cprofile] [--stages] [--minimal]

- default: p50/mean wall and CPU time of ``Channel.http_request`` and ``Sandbox.call`` (fresh store each),
  and of ``Sandbox.reused_instance`` calls, pooling on, N calls each in alternating rounds;
- ``--stages``: one fresh ``Channel.http_request`` split into its steps, replayed with the runtime's own
  objects in the order ``Sandbox.call`` (fast route) and ``Channel`` run them; median of each step;
- ``--minimal``: the hand-written WAT guest instead of the Rust one;
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
from common import BENCH_GUEST, bench_guest_caps, minimal_caps, wat_guest

from airlock.capabilities.emit import EmitBuffer
from airlock.capabilities.workspace import WorkspaceTxn
from airlock.channels.callstate import CallState
from airlock.channels.channel import CallOutcome, Channel
from airlock.runtime import convert
from airlock.runtime import fastpath as fp
from airlock.runtime import fastpath_store as fps
from airlock.runtime import linker as host_linker
from airlock.runtime.instance import Limits
from airlock.runtime.values import IncomingHttpRequest


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


STAGES = ("args to WIT", "CallState", "store + limits", "instantiate", "get export", "call (lower, wasm, host "
          "callbacks, lift)", "fuel read", "unbind + store delete", "apply (logs, commit, emit limiter)",
          "result from WIT")


def stages(channel: Channel, req: IncomingHttpRequest, n: int) -> None:
    """Median µs of each step of a fresh callback (module docstring, ``--stages``)."""
    sandbox, loaded, limits = channel.services.sandbox, channel.loaded, channel.limits
    prep = sandbox.prepared(loaded)
    if prep is None:
        raise SystemExit("no fast call plan for this component (fast path off?)")
    export, index = prep.exports["on-http-request"]
    ticks = sandbox.runtime.deadline_ticks(limits.timeout_s)
    samples: list[list[float]] = [[] for _ in STAGES]
    pc = time.perf_counter
    for i in range(n + 300):  # the first 300 warm up
        t = [pc()]
        wit = (convert.incoming_request_to_wit(req),)
        t.append(pc())
        state = CallState(channel=channel, deadline=time.monotonic() + limits.timeout_s,
                          workspace=WorkspaceTxn.begin(channel.workspace), emits=EmitBuffer(65536))
        out = CallOutcome(callback="on-http-request", state=state)
        t.append(pc())
        store = fps.FreshStore(prep.engine_addr, limits.fuel, ticks, limits.memory_bytes, prep.wasi)
        host_linker.bind(state)
        fp.bind_imports(prep.imports)
        t.append(pc())
        instance = store.instantiate(prep.linker_addr, prep.component_addr)
        t.append(pc())
        func = store.func(instance, index)
        t.append(pc())
        out.value = export.call_raw(store.ctx, func, wit)
        t.append(pc())
        store.fuel_left()
        t.append(pc())
        host_linker.bind(None)
        fp.bind_imports(None)
        store.close()
        t.append(pc())
        channel._apply(out, state)
        t.append(pc())
        convert.outgoing_response_from_wit(out.value)
        t.append(pc())
        if i >= 300:
            for k in range(len(STAGES)):
                samples[k].append(t[k + 1] - t[k])
    total = 0.0
    for name, xs in zip(STAGES, samples, strict=True):
        xs.sort()
        med = xs[len(xs) // 2] * 1e6
        total += med
        print(f"{name:45s} {med:7.1f} us")
    print(f"{'sum of medians':45s} {total:7.1f} us  (pooling {sandbox.runtime.pooling is not None}, "
          f"WASI {prep.wasi})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--minimal", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="airlock-prof-"))
    runtime = runtime_for(tmp / "cache", True)
    if args.minimal:
        channel = make_channel(runtime, wat_guest(tmp / "wat"), minimal_caps(), tmp)
        req = request("/webhook/minimal", work.BODIES[1])
    else:
        channel = make_channel(runtime, BENCH_GUEST, bench_guest_caps(), tmp)
        req = request("/webhook/telegram-min", work.BODIES[1])
    sandbox = channel.services.sandbox
    wit_req = (convert.incoming_request_to_wit(req),)
    limits = Limits(memory_bytes=MEMORY_LIMIT, fuel=FUEL, timeout_s=30.0)
    assert channel.http_request(req).messages

    def state() -> CallState:
        return CallState(channel=channel, deadline=time.monotonic() + 30,
                         workspace=WorkspaceTxn.begin(channel.workspace), emits=EmitBuffer(65536))

    def sandbox_call() -> None:
        sandbox.call(channel.loaded, "on-http-request", wit_req, state(), limits)

    if args.stages:
        stages(channel, req, args.calls)
        return
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
