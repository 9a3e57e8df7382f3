"""Start-up time of a host with many installed channels, from a warm compile cache, in a fresh process.

Measured from constructing ``AirlockHost`` to every channel active (loaded from the cache, on-start run,
webhooks registered); Python's own start and imports are reported apart. Prints one JSON line:
{"channels": int, "active": int, "seconds": float, "imports_s": float}.

Usage: python bench/startup.py HOME   (HOME prepared by bench/run.py: channels/ and cache/)
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from airlock.host import AirlockHost  # noqa: E402
from airlock.host_config import HostConfig  # noqa: E402

IMPORTS_S = time.perf_counter() - _T0


async def measure(home: Path) -> dict[str, float | int]:
    start = time.perf_counter()
    host = AirlockHost(HostConfig.build(home=home, listen_port=0))
    await host.start(serve_http=False)
    elapsed = time.perf_counter() - start
    slots = host.manager.slots
    active = sum(1 for s in slots.values() if s.active)
    from_cache = sum(1 for s in slots.values() if s.channel.loaded.from_cache)
    await host.stop()
    return {"channels": len(slots), "active": active, "from_cache": from_cache, "seconds": round(elapsed, 4),
            "imports_s": round(IMPORTS_S, 3)}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(measure(Path(sys.argv[1])))))


if __name__ == "__main__":
    main()
