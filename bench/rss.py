"""RSS after N fresh-store callbacks of (a), in a process of its own (so nothing else the suite did is counted).

Prints one JSON line: {"guest": str, "rss_mib": {"<N>": MiB, ...}, "seconds": float, "emit_limit": str}. The
Rust bench guest is used when built, else the hand-written WAT guest (named in the output).

The channel keeps the capabilities file's default emit rate limit (100/minute, 5000/hour; messages past it
are dropped and counted): the limiter remembers one timestamp per admitted message for an hour, by design, so
with the limit raised as in the throughput runs it would hold every one of the N messages (~40 bytes each)
and this would measure the limiter's window, not the callback path. ``--raised-emit-limit`` measures that.

Usage: python bench/rss.py --cache build/compile-cache 1000 10000 100000
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import work
from callbacks import fresh_messages, make_channel, request, runtime_for
from common import BENCH_GUEST, bench_guest_caps, minimal_caps, rss_mb, wat_guest

DEFAULT_EMIT_LIMIT = {"messages_per_minute": 100, "messages_per_hour": 5000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--raised-emit-limit", action="store_true", help="keep the throughput runs' emit limit")
    parser.add_argument("counts", type=int, nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the limiter's drop warnings are expected here
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-rss-"))
    runtime = runtime_for(args.cache, pooled=True)
    rust = BENCH_GUEST.exists()
    caps = bench_guest_caps() if rust else minimal_caps()
    if not args.raised_emit_limit:
        caps["capabilities"]["channel"]["emit_rate_limit"] = dict(DEFAULT_EMIT_LIMIT)
    guest, path = ("telegram-min (Rust)", "/webhook/telegram-min") if rust else ("minimal (WAT)", "/webhook/minimal")
    channel = make_channel(runtime, BENCH_GUEST if rust else wat_guest(tmp / "wat"), caps, tmp)
    reqs = [request(path, body) for body in work.BODIES]
    rss: dict[str, float] = {}
    done = 0
    start = time.perf_counter()
    for count in sorted(args.counts):
        for i in range(done, count):
            fresh_messages(channel, reqs[i & 1])
        done = count
        rss[str(count)] = round(rss_mb(), 2)
    limit = "raised (throughput runs)" if args.raised_emit_limit else "default (100/minute, 5000/hour)"
    print(json.dumps({"guest": guest, "rss_mib": rss, "seconds": round(time.perf_counter() - start, 1),
                      "emit_limit": limit}))
    runtime.close()


if __name__ == "__main__":
    main()
