"""One wasmtime engine per process: fuel, epoch interruption, a ticker thread, and a compile cache.

Compiled components are cached on disk under ``<cache_dir>/<key>.cwasm`` where the key hashes the
component bytes, the wasmtime-py version and the engine settings (an artifact compiled under one Config
does not load into an engine with another: wasmtime-py-notes.md). A cache hit is a memory-mapped
``deserialize_file`` (a few ms); a miss compiles (seconds for a CPython guest) and writes atomically.

Instances come from wasmtime's pooling allocator when the runtime is given :class:`PoolingSettings`
(``runtime.pooling``; falls back to on-demand allocation, logged, when it cannot be used). The allocator
does not change compiled code, so it is not part of the cache key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component, ExportIndex

from ..errors import ComponentError
from ..stores.files import private_dir
from . import pooling as pool
from . import wasmtime_fixes
from .pooling import PoolingSettings, PoolingUnavailable

log = logging.getLogger("airlock.runtime")

EPOCH_TICK_S = 0.01
"""The ticker increments the engine epoch every 10 ms; deadlines are counted in these ticks."""

SUPPORTED_WORLDS: dict[str, str] = {
    "airlock:channel/channel-host@0.1.0": "airlock:channel/channel@0.1.0",
    "near:agent/channel-host@0.3.1": "near:agent/channel@0.3.1",
    "near:agent/channel-host@0.3.0": "near:agent/channel@0.3.0",
}
"""Host interface a component imports -> channel interface it must export."""

CALLBACKS: tuple[str, ...] = (
    "on-start", "on-http-request", "on-poll", "on-respond", "on-status", "on-broadcast", "on-shutdown",
)


@dataclass(frozen=True)
class World:
    """Which channel world a component was built against."""

    host_interface: str
    channel_interface: str

    @property
    def name(self) -> str:
        pkg, rest = self.channel_interface.split("/", 1)
        return f"{pkg}/sandboxed-channel@{rest.split('@', 1)[1]}"


@dataclass(frozen=True)
class LoadedComponent:
    """A compiled component plus what the host learned about it at load time."""

    path: Path
    component: Component
    world: World
    exports: dict[str, ExportIndex]  # callback name -> export index, computed once per component
    imports: tuple[str, ...]
    imports_wasi: bool
    size_bytes: int
    sha256: str
    load_ms: float
    from_cache: bool


class Runtime:
    """The process-wide engine. Thread-safe; create one and ``close()`` it at shutdown.

    Args:
        cache_dir: where compiled artifacts are kept (created if missing).
        pooling: size of the pooling instance allocator, or ``None`` for on-demand allocation. When the
            pool cannot be used (``runtime.pooling_unavailable`` says why, also logged as a warning) the
            runtime still works, with on-demand allocation; ``runtime.pooling`` is then ``None``.
    """

    created = 0
    """Runtimes made in this process (tests collect garbage after a test that made one: a stopped host's engine
    sits in reference cycles until the collector runs, and its pool's address-space reservation with it)."""

    def __init__(self, cache_dir: Path, pooling: PoolingSettings | None = None) -> None:
        Runtime.created += 1
        wasmtime_fixes.apply()
        # Compiled code depends on fuel and epochs; not on the allocator (pooling.py, tested).
        self.settings_tag = "fuel=1;epoch=1"
        self.pooling: PoolingSettings | None = None
        self.pooling_unavailable: str | None = None
        self.engine = self._make_engine(pooling)
        self.cache_dir = cache_dir
        self._loaded: weakref.WeakValueDictionary[str, LoadedComponent] = weakref.WeakValueDictionary()
        """Components in use, by cache key: a second channel instance of one component (``install --as``) or a
        version swap back to the same bytes shares the compiled component (one ``Component`` in memory; the
        sandbox's fast-path converters are per component digest anyway)."""
        self._loaded_lock = threading.Lock()
        private_dir(cache_dir)  # 0700; entries are written 0600 (mkstemp)
        self._stop = threading.Event()
        # The ticker holds the runtime only weakly: a runtime nobody closed (a host never stopped) can still be
        # collected, and its engine's pool reservation freed (engines that cannot reserve a pool abort the process).
        self._ticker = threading.Thread(target=_tick, args=(weakref.ref(self), self._stop), name="airlock-epoch",
                                        daemon=True)
        self._ticker.start()

    @staticmethod
    def _config() -> wasmtime.Config:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        return config

    def _make_engine(self, pooling: PoolingSettings | None) -> wasmtime.Engine:
        config = self._config()
        if pooling is not None:
            try:
                pool.configure(config, pooling)
            except PoolingUnavailable as exc:
                self.pooling_unavailable = str(exc)
                log.warning("pooling allocator unavailable (%s); instances are allocated on demand", exc)
                return wasmtime.Engine(self._config())
            self.pooling = pooling
            log.info("pooling allocator: %d instance slots, %d MiB per linear memory",
                     pooling.slots, pooling.max_memory_bytes // 2**20)
        return wasmtime.Engine(config)

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=1)

    def deadline_ticks(self, timeout_s: float) -> int:
        """Epoch ticks for a callback timeout in seconds (at least 1)."""
        return max(1, int(timeout_s / EPOCH_TICK_S) + 1)

    def _cache_key(self, wasm: bytes) -> str:
        h = hashlib.sha256()
        h.update(wasm)
        h.update(f"|wasmtime-py={wasmtime_fixes.EXPECTED_VERSION}|{self.settings_tag}".encode())
        return h.hexdigest()

    def load(self, path: Path) -> LoadedComponent:
        """Compile (or load from cache) the component at ``path`` and check its world.

        Raises:
            ComponentError: unreadable file, not a component, a world Airlock does not run, or (pooling on)
                a component over the pool's per-component limits (``runtime.pooling`` module docstring).
        """
        start = time.perf_counter()
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise ComponentError(f"{path.name}: cannot read: {exc.strerror}") from None
        key = self._cache_key(wasm)
        with self._loaded_lock:
            shared = self._loaded.get(key)
        if shared is not None:  # the same compiled code; this path, and no compile (from_cache)
            return dataclasses.replace(shared, path=path, from_cache=True,
                                       load_ms=(time.perf_counter() - start) * 1000)
        cached = self.cache_dir / f"{key}.cwasm"
        from_cache = cached.exists()
        try:
            component = self._deserialize(cached) if from_cache else None
        except ComponentError as exc:
            raise ComponentError(f"{path.name}: {exc}") from None
        if component is None:
            from_cache = False
            component = self._compile(path.name, wasm, cached)
        world, imports, exports = self._inspect(path.name, component)
        loaded = LoadedComponent(
            path=path, component=component, world=world, exports=exports, imports=imports,
            imports_wasi=any(i.startswith("wasi:") for i in imports), size_bytes=len(wasm),
            sha256=hashlib.sha256(wasm).hexdigest(), load_ms=(time.perf_counter() - start) * 1000,
            from_cache=from_cache,
        )
        with self._loaded_lock:
            return self._loaded.setdefault(key, loaded)

    def _deserialize(self, cached: Path) -> Component | None:
        try:
            return Component.deserialize_file(self.engine, str(cached))
        except wasmtime.WasmtimeError as exc:
            refusal = pool.refusal(str(exc))
            if refusal is not None:  # recompiling cannot help: the same code would not fit either
                raise ComponentError(refusal) from None
            log.warning("compile cache entry %s is unusable; recompiling", cached.name)
            return None

    def _compile(self, name: str, wasm: bytes, cached: Path) -> Component:
        try:
            component = Component(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            refusal = pool.refusal(str(exc))
            if refusal is not None:
                raise ComponentError(f"{name}: {refusal}") from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
            raise ComponentError(f"{name}: not a loadable WebAssembly component: {first}") from None
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(component.serialize())
            os.replace(tmp, cached)
        except OSError:
            log.warning("could not write compile cache for %s", name)
            Path(tmp).unlink(missing_ok=True)
        return component

    def _inspect(self, name: str, component: Component) -> tuple[World, tuple[str, ...], dict[str, ExportIndex]]:
        ctype = component.type
        imports = tuple(sorted(ctype.imports(self.engine).keys()))
        hosts = [i for i in imports if i in SUPPORTED_WORLDS]
        if len(hosts) != 1:
            raise ComponentError(
                f"{name}: imports no supported channel-host interface "
                f"(expected one of {', '.join(SUPPORTED_WORLDS)})"
            )
        others = [i for i in imports if i not in SUPPORTED_WORLDS and not i.startswith("wasi:")]
        if others:
            raise ComponentError(f"{name}: imports interfaces Airlock does not provide: {', '.join(others)}")
        world = World(host_interface=hosts[0], channel_interface=SUPPORTED_WORLDS[hosts[0]])
        iface = component.get_export_index(world.channel_interface)
        if iface is None:
            raise ComponentError(f"{name}: does not export {world.channel_interface}")
        exports: dict[str, ExportIndex] = {}
        for cb in CALLBACKS:
            idx = component.get_export_index(cb, iface)
            if idx is None:
                raise ComponentError(f"{name}: {world.channel_interface} lacks the export {cb}")
            exports[cb] = idx
        return world, imports, exports


def _tick(runtime: weakref.ref[Runtime], stop: threading.Event) -> None:
    """Advance the engine's epoch every tick until stopped or the runtime is gone. Epoch interruption needs someone
    to advance the epoch; it fires even while another thread is inside wasm (wasmtime-py-notes.md, "Traps and
    limits")."""
    while not stop.wait(EPOCH_TICK_S):
        rt = runtime()
        if rt is None:
            return
        rt.engine.increment_epoch()
        del rt
