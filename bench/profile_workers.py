"""Where the CPU of ``airlock serve --workers N`` goes under bench/workers.py's load: py-spy on every worker.

Starts the same gateway as bench/workers.py (fresh home, SQLite state, the Rust guest (a), the acknowledging
in-process agent), warms it up, then records each worker with ``py-spy record --nonblocking`` while wrk loads it
(``--mode cpu``: samples of running threads; ``idle``: every thread, also those waiting, to see what a worker waits
on; ``gil``: only the thread holding the GIL). Writes one collapsed-stack file per worker (``w<N>-<i>.txt``, for
flame graph tools) and prints, per worker, its CPU seconds and the functions with the most samples (inclusive),
and the inline guard's counters (``/health/<channel>``: an inline switch that tripped makes every webhook pay a
thread hand-off).

Run: ``PYTHONPATH=host:bench python bench/profile_workers.py --workers 2 --out /tmp/prof`` (py-spy is a dev
dependency; it needs ptrace rights over the workers, as root or with kernel.yama.ptrace_scope = 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import loadgen
import work
import workers as w
from common import BENCH

SAMPLE_RATE = 200
"""py-spy samples per second per worker."""
_FRAME_PATH = re.compile(r" \(/.*?/(host|lib/python3[^/]*|site-packages)/")
_PLUMBING = re.compile(r"\((typer|<frozen runpy>|airlock/cli/|threading\.py|asyncio/runners\.py)|run_forever|"
                       r"run_until_complete|BaseEventLoop\._run_once|Handle\._run|<module>")
"""Frames every stack of a thread has (entry points, the event loop's own): left out of the summary."""


def top_frames(collapsed: Path, count: int = 25) -> list[tuple[float, str]]:
    """The ``count`` frames present in the most samples of a collapsed-stack file: (share of samples, frame)."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for frame in {_FRAME_PATH.sub(" (", f) for f in stack.split(";")[1:]}:
            if not _PLUMBING.search(frame):
                inclusive[frame] += int(n)
    return [(n / max(total, 1), frame) for frame, n in inclusive.most_common(count)]


async def profile(n: int, mode: str, duration_s: float, warmup_s: float, concurrency: int, out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="airlock-profile-"))
    home = tmp / "home"
    proc, port = await w._gateway(home, BENCH.parent / "build" / "compile-cache", n, tmp / "serve.log")
    try:
        script = tmp / "a.lua"
        script.write_text(loadgen.wrk_script(list(work.BODIES), {"Content-Type": "application/json"}))
        url = f"http://127.0.0.1:{port}/webhook/telegram-min"
        await w._wrk(url, script, concurrency, warmup_s)
        pids = w._pids(home, proc.pid)
        pids = pids[1:] if n > 1 else pids  # the supervisor only waits
        extra = {"cpu": [], "idle": ["--idle"], "gil": ["--gil"]}[mode]
        spies = [subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(round(duration_s)), "-r",
                                   str(SAMPLE_RATE), "-f", "raw", "-t", "--nonblocking", *extra,
                                   "-o", str(out / f"w{n}-{i}.txt")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i, pid in enumerate(pids)]
        before = {pid: w._cpu_s(pid) for pid in pids}
        result = await w._wrk(url, script, concurrency, duration_s)
        cpu = [round(w._cpu_s(pid) - before[pid], 2) for pid in pids]
        for spy in spies:
            spy.wait()
        print(f"--workers {n}: {result['rps']:.0f} req/s answered, worker CPU s {cpu}")
        for i, _ in enumerate(pids):
            print(f"== worker {i} ({mode})")
            for share, frame in top_frames(out / f"w{n}-{i}.txt"):
                print(f"  {share:6.1%} {frame}")
        seen = {}
        for _ in range(10 * n):  # /health answers from whichever worker accepted the connection
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/telegram-min", timeout=10) as answer:
                seen[answer.headers.get("X-Airlock-Worker", "0")] = json.loads(answer.read())["inline"]
        print("inline guard by worker:", json.dumps(seen, sort_keys=True))
    finally:
        proc.terminate()
        await proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("cpu", "idle", "gil"), default="cpu")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "profile")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is needed (pip install py-spy: a dev dependency)")
    os.environ.setdefault("AIRLOCK_MASTER_KEY", os.urandom(32).hex())
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(profile(args.workers, args.mode, args.duration, args.warmup, args.concurrency, args.out))


if __name__ == "__main__":
    main()
