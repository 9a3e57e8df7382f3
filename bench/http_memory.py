"""Peak extra RSS of handing one big ``http-request`` response to a guest, in a process of its own.

The real path: a hand-written WAT guest (tests/guests/fetchguest.py, world ``--world``) calls ``http-request`` in
on-poll through a ``Channel``; ``HttpCapability`` and ``Egress`` fetch ``--size-mib`` MiB from a 127.0.0.1 server
running in another process (bench/body_server.py: its memory is not the host's); the guest drops the body.
Measured: ``ru_maxrss`` after that callback minus before it (a first callback with a 1 KB body has already
compiled and allocated everything else).

``--path host`` (default): as the host runs it, the component composed with the http adapter
(``airlock.runtime.adapter``): the body reaches the guest in 64 KiB chunks through the adapter's memory.
``--path unadapted``: the component as built (``Runtime(adapt=False)``): wasmtime-py 50 hands the whole
``list<u8>`` over as one 32-byte C value plus one 48-byte Rust value per byte (``Val::from`` in wasmtime's
``crates/c-api/src/component/linker.rs``), about 80x the body, for comparison.

Prints one JSON line: {"path", "world", "fastpath", "response_mib", "rss_delta_mib", "ratio", "seconds"}.
Usage: python bench/http_memory.py --cache build/compile-cache [--size-mib 9] [--path host|unadapted]
[--world airlock|near-0.3.1] [--stock]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from common import MIB, REPO

sys.path.insert(0, str(REPO / "tests" / "guests"))

import fetchguest

from airlock.capabilities.egress import Egress
from airlock.channels.channel import Channel, HostServices
from airlock.manifest import parse_capabilities
from airlock.runtime.engine import Runtime
from airlock.runtime.instance import Sandbox
from airlock.stores.pairing import PairingStore


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(call: Callable[[], None]) -> tuple[float, float]:
    """(extra peak RSS in MiB, seconds) of ``call``."""
    gc.collect()
    before = _peak_kib()
    start = time.perf_counter()
    call()
    return (_peak_kib() - before) / 1024, time.perf_counter() - start


def _server() -> tuple[subprocess.Popen[str], str]:
    """bench/body_server.py in a process of its own, and its base URL."""
    # Its stderr is not ours: a caller reading our output to its end must not wait for the server.
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "body_server.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        raise RuntimeError("the body server did not start")
    return proc, f"http://127.0.0.1:{port}"


def measure(cache: Path, size: int, *, fast: bool, adapt: bool, world: str) -> tuple[float, float, bool]:
    """(extra peak MiB, seconds, whether the component ran composed with the adapter) of one ``size`` response."""
    proc, base = _server()
    try:
        return _measure_with(cache, size, base, fast=fast, adapt=adapt, world=world)
    finally:
        proc.kill()
        proc.wait()


def _measure_with(
    cache: Path, size: int, base: str, *, fast: bool, adapt: bool, world: str
) -> tuple[float, float, bool]:
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-httpmem-"))
    runtime = Runtime(cache, adapt=adapt)
    egress = Egress(upstream_overrides={fetchguest.HOST_NAME: base})
    try:
        caps = fetchguest.capabilities("fetch", max_response_bytes=size + MIB)
        services = HostServices(sandbox=Sandbox(runtime, fastpath=fast), secret_lookup=lambda _n: None,
                                pairing=PairingStore(tmp / "pairing.db"), durable=None, egress=egress,
                                memory_limit_bytes=size + 50 * MIB, fuel_per_callback=5_000_000_000)
        loaded = runtime.load(fetchguest.build_component(tmp, world=world))
        channel = Channel(parse_capabilities(json.dumps(caps), "fetch"), loaded, services)
        if not (channel.start("{}").ok and channel.poll().ok):
            raise RuntimeError("the fetch guest failed its warm-up")
        urllib.request.urlopen(urllib.request.Request(f"{base}/size?n={size}", method="POST"), timeout=30).read()

        def poll() -> None:
            outcome = channel.poll()
            if not outcome.ok:
                raise RuntimeError(f"poll failed: {outcome.error}")

        extra, seconds = _measure(poll)
        return extra, seconds, loaded.adapted
    finally:
        egress.close()
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--size-mib", type=float, default=9.0)
    parser.add_argument("--path", choices=("host", "unadapted"), default="host")
    parser.add_argument("--world", choices=("airlock", "near-0.3.1"), default="airlock")
    parser.add_argument("--stock", action="store_true", help="stock wasmtime-py conversion (fast path off)")
    args = parser.parse_args()
    size = int(args.size_mib * MIB)
    extra, seconds, adapted = measure(args.cache, size, fast=not args.stock, adapt=args.path == "host",
                                      world=args.world)
    if adapted != (args.path == "host"):
        raise RuntimeError(f"the component ran {'with' if adapted else 'without'} the adapter")
    print(json.dumps({"path": args.path, "world": args.world, "fastpath": not args.stock,
                      "response_mib": args.size_mib, "rss_delta_mib": round(extra, 1),
                      "ratio": round(extra * MIB / size, 2), "seconds": round(seconds, 2)}))


if __name__ == "__main__":
    main()
