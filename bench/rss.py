"""RSS after N fresh-store callbacks of (a), in a process of its own (so nothing else the suite did is counted).

Prints one JSON line: {"guest": str, "rss_mib": {"<N>": MiB, ...}, "seconds": float}. The Rust bench guest is
used when built, else the hand-written WAT guest (named in the output).

Usage: python bench/rss.py --cache build/compile-cache 1000 10000 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import work
from callbacks import fresh_messages, make_channel, request, runtime_for
from common import BENCH_GUEST, bench_guest_caps, minimal_caps, rss_mb, wat_guest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("counts", type=int, nargs="+")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-rss-"))
    runtime = runtime_for(args.cache, pooled=True)
    if BENCH_GUEST.exists():
        guest, channel, path = "telegram-min (Rust)", make_channel(runtime, BENCH_GUEST, bench_guest_caps(), tmp), \
            "/webhook/telegram-min"
    else:
        guest, path = "minimal (WAT)", "/webhook/minimal"
        channel = make_channel(runtime, wat_guest(tmp / "wat"), minimal_caps(), tmp)
    reqs = [request(path, body) for body in work.BODIES]
    rss: dict[str, float] = {}
    done = 0
    start = time.perf_counter()
    for count in sorted(args.counts):
        for i in range(done, count):
            fresh_messages(channel, reqs[i & 1])
        done = count
        rss[str(count)] = round(rss_mb(), 2)
    print(json.dumps({"guest": guest, "rss_mib": rss, "seconds": round(time.perf_counter() - start, 1)}))
    runtime.close()


if __name__ == "__main__":
    main()
