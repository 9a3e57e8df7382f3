"""Peak extra RSS of handing one big ``http-request`` response to a guest, in a process of its own.

``--path host`` (default): the real path. A hand-written WAT guest (tests/guests/fetchguest.py) calls
``http-request`` in on-poll; ``HttpCapability`` and ``Egress`` fetch ``--size-mib`` MiB from a 127.0.0.1
server; the guest drops the body. Measured: ``ru_maxrss`` after that callback minus before it (a first
callback with a 1 KB body has already compiled and allocated everything else).

``--path adapter``: a proof of concept, not used by the host (issue 13, defect 4). wasmtime-py 50 hands a
``list<u8>`` to a guest as one 32-byte C value plus one 48-byte Rust value per byte (``Val::from`` in
wasmtime's ``crates/c-api/src/component/linker.rs`` keeps both alive), about 80x the body, whatever
Airlock does in Python. Here the guest's import is served instead by a small adapter component composed in
front of it (``wasm-tools compose``): the adapter pulls the body from the host in 64 KiB ``list<u8>`` chunks
into its own memory and returns it, and wasmtime copies it into the guest with a plain memory copy.

Prints one JSON line: {"path", "fastpath", "response_mib", "rss_delta_mib", "ratio", "seconds"}.
Usage: python bench/http_memory.py --cache build/compile-cache [--size-mib 9] [--path host|adapter] [--stock]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import MIB, REPO

sys.path.insert(0, str(REPO / "tests" / "guests"))

import fetchguest
from aiohttp import web
from watguest import _wasm_tools

from airlock.capabilities.egress import Egress
from airlock.channels.channel import Channel, HostServices
from airlock.manifest import parse_capabilities
from airlock.runtime.engine import LoadedComponent, Runtime, World
from airlock.runtime.instance import Limits, Sandbox
from airlock.stores.pairing import PairingStore

CHUNK = 64 * 1024


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(call: Callable[[], None]) -> tuple[float, float]:
    """(extra peak RSS in MiB, seconds) of ``call``."""
    gc.collect()
    before = _peak_kib()
    start = time.perf_counter()
    call()
    return (_peak_kib() - before) / 1024, time.perf_counter() - start


def _serve(bodies: list[bytes]) -> str:
    """A 127.0.0.1 server answering GET /body with the last of ``bodies``, on a thread of its own."""
    loop = asyncio.new_event_loop()

    async def body(request: web.Request) -> web.Response:
        return web.Response(body=bodies[-1])

    app = web.Application()
    app.router.add_get("/body", body)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}"


def host_path(cache: Path, size: int, fast: bool) -> tuple[float, float]:
    bodies = [b"x" * 1000]
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-httpmem-"))
    runtime = Runtime(cache)
    egress = Egress(upstream_overrides={fetchguest.HOST_NAME: _serve(bodies)})
    caps = fetchguest.capabilities("fetch", max_response_bytes=size + MIB)
    services = HostServices(sandbox=Sandbox(runtime, fastpath=fast), secret_lookup=lambda _n: None,
                            pairing=PairingStore(tmp / "pairing.db"), durable=None, egress=egress,
                            memory_limit_bytes=size + 50 * MIB, fuel_per_callback=5_000_000_000)
    channel = Channel(parse_capabilities(json.dumps(caps), "fetch"),
                      runtime.load(fetchguest.build_component(tmp)), services)
    if not (channel.start("{}").ok and channel.poll().ok):
        raise RuntimeError("the fetch guest failed its warm-up")
    bodies.append(b"x" * size)

    def poll() -> None:
        outcome = channel.poll()
        if not outcome.ok:
            raise RuntimeError(f"poll failed: {outcome.error}")

    try:
        return _measure(poll)
    finally:
        egress.close()


# ---- the proof of concept: a chunking adapter composed in front of the guest ----------------------------------

_POC_WIT = """package bench:bulk@0.1.0;
interface host { get: func(n: u32) -> list<u8>; }
interface bulk { get-start: func(n: u32) -> u32; get-read: func(max: u32) -> list<u8>; }
interface guest { run: func(n: u32) -> u32; }
world guest-world { import host; export guest; }
world adapter-world { import bulk; export host; }
"""
# The guest: run(n) calls host.get(n) and returns the length it received.
_POC_GUEST = """(module
  (import "bench:bulk/host@0.1.0" "get" (func $get (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "bench:bulk/guest@0.1.0#run") (param $n i32) (result i32)
    (call $get (local.get $n) (i32.const 16))
    (i32.load offset=4 (i32.const 16)))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))))
    (local.get $ptr)))
"""
# The adapter: get(n) asks the host for the length, takes that much of its memory, and has each get-read
# chunk lowered straight to its place ($steer makes cabi_realloc return the next chunk's address).
_POC_ADAPTER = """(module
  (import "bench:bulk/bulk@0.1.0" "get-start" (func $start (param i32) (result i32)))
  (import "bench:bulk/bulk@0.1.0" "get-read" (func $read (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $steer (mut i32) (i32.const 0))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (if (global.get $steer) (then (return (global.get $steer))))
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))))
    (local.get $ptr))
  (func (export "bench:bulk/host@0.1.0#get") (param $n i32) (result i32)
    (local $len i32) (local $buf i32) (local $got i32)
    (local.set $len (call $start (local.get $n)))
    (local.set $buf (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $len)))
    (block $done (loop $more
      (br_if $done (i32.ge_u (local.get $got) (local.get $len)))
      (global.set $steer (i32.add (local.get $buf) (local.get $got)))
      (call $read (i32.const CHUNK) (i32.const 16))
      (global.set $steer (i32.const 0))
      (local.set $got (i32.add (local.get $got) (i32.load offset=4 (i32.const 16))))
      (br $more)))
    (i32.store (i32.const 8) (local.get $buf))
    (i32.store (i32.const 12) (local.get $len))
    (i32.const 8)))
""".replace("CHUNK", str(CHUNK))


def _build_poc(tmp: Path) -> Path:
    tool = _wasm_tools()
    (tmp / "wit").mkdir(parents=True, exist_ok=True)
    (tmp / "wit" / "bulk.wit").write_text(_POC_WIT)
    for name, wat, world in (("guest", _POC_GUEST, "guest-world"), ("adapter", _POC_ADAPTER, "adapter-world")):
        (tmp / f"{name}.wat").write_text(wat)
        core = tmp / f"{name}.core.wasm"
        subprocess.run([tool, "component", "embed", str(tmp / "wit"), "--world", f"bench:bulk/{world}",
                        str(tmp / f"{name}.wat"), "-o", str(core)], check=True, capture_output=True)
        subprocess.run([tool, "component", "new", str(core), "-o", str(tmp / f"{name}.wasm")], check=True,
                       capture_output=True)
    out = tmp / "composed.wasm"
    subprocess.run([tool, "compose", str(tmp / "guest.wasm"), "-d", str(tmp / "adapter.wasm"), "-o", str(out)],
                   check=True, capture_output=True)
    return out


class _Bulk:
    """The host side of the adapter's interface: the body, handed out in chunks."""

    host_bug: str | None = None

    def __init__(self, body: bytes) -> None:
        self.body = memoryview(body)
        self.pos = 0

    def log(self, level: str, message: str) -> None:
        return None

    def start(self) -> int:
        self.pos = 0
        return len(self.body)

    def read(self, limit: int) -> bytes:
        chunk = bytes(self.body[self.pos : self.pos + min(limit, CHUNK)])
        self.pos += len(chunk)
        return chunk


def adapter_path(cache: Path, size: int, fast: bool) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-adapter-"))
    runtime = Runtime(cache)
    wasm_path = _build_poc(tmp)
    wasm = wasm_path.read_bytes()
    from wasmtime.component import Component

    component = Component(runtime.engine, wasm)
    iface = component.get_export_index("bench:bulk/guest@0.1.0")
    run_index = component.get_export_index("run", iface)
    loaded = LoadedComponent(
        path=wasm_path, component=component, world=World("bench:bulk/bulk@0.1.0", "bench:bulk/guest@0.1.0"),
        exports={"run": run_index}, imports=("bench:bulk/bulk@0.1.0",), imports_wasi=False, size_bytes=len(wasm),
        sha256=hashlib.sha256(wasm).hexdigest(), load_ms=0.0, from_cache=False)
    functions: dict[str, Any] = {"get-start": (lambda api, n: api.start(), None),
                                 "get-read": (lambda api, limit: api.read(limit), None)}
    sandbox = Sandbox(runtime, fastpath=fast, host_functions=functions)
    limits = Limits(memory_bytes=size + 50 * MIB)
    sandbox.call(loaded, "run", (1000,), _Bulk(b"x" * 1000), limits)
    body = b"x" * size
    got: list[int] = []
    extra, seconds = _measure(lambda: got.append(sandbox.call(loaded, "run", (size,), _Bulk(body), limits)[0]))
    if got != [size]:
        raise RuntimeError(f"the guest received {got} bytes, not {size}")
    return extra, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--size-mib", type=float, default=9.0)
    parser.add_argument("--path", choices=("host", "adapter"), default="host")
    parser.add_argument("--stock", action="store_true", help="stock wasmtime-py conversion (fast path off)")
    args = parser.parse_args()
    size = int(args.size_mib * MIB)
    measure = host_path if args.path == "host" else adapter_path
    extra, seconds = measure(args.cache, size, not args.stock)
    print(json.dumps({"path": args.path, "fastpath": not args.stock, "response_mib": args.size_mib,
                      "rss_delta_mib": round(extra, 1), "ratio": round(extra * MIB / size, 2),
                      "seconds": round(seconds, 2)}))


if __name__ == "__main__":
    main()
