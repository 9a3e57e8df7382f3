"""One wasmtime engine per process: fuel, epoch interruption, a ticker thread, and a compile cache.

Compiled components are cached on disk under ``<cache_dir>/<key>.cwasm`` where the key hashes the
component bytes, the wasmtime-py version and the engine settings (an artifact compiled under one Config
does not load into an engine with another: wasmtime-py-notes.md). A cache hit is a memory-mapped
``deserialize_file`` (a few ms); a miss compiles (seconds for a CPython guest) and writes atomically.

A component that imports ``http-request`` is first composed with the http adapter (``runtime.adapter``: a big
response then reaches the guest through the adapter's memory instead of as one host value per byte); the composed
bytes are cached under ``<cache_dir>/adapted/`` by the original's sha256 and compiled like any component. What the
runtime reports (path, size, sha256, world, imports) is the original's; ``LoadedComponent.adapted`` says which
ran.

Instances come from wasmtime's pooling allocator when the runtime is given :class:`PoolingSettings`
(``runtime.pooling``; falls back to on-demand allocation, logged, when it cannot be used). The allocator
does not change compiled code, so it is not part of the cache key.
"""

from __future__ import annotations

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
from . import adapter, wasmtime_fixes
from . import pooling as pool
from .pooling import PoolingSettings, PoolingUnavailable

log = logging.getLogger("airlock.runtime")

EPOCH_TICK_S = 0.01
"""The ticker increments the engine epoch every 10 ms; deadlines are counted in these ticks."""

SUPPORTED_WORLDS: dict[str, str] = {
    "airlock:channel/channel-host@0.2.0": "airlock:channel/channel@0.2.0",
    "airlock:channel/channel-host@0.1.0": "airlock:channel/channel@0.1.0",
    "near:agent/channel-host@0.3.1": "near:agent/channel@0.3.1",
    "near:agent/channel-host@0.3.0": "near:agent/channel@0.3.0",
}
"""Host interface a component imports -> channel interface it must export."""

OPTIONAL_EXPORTS: dict[str, dict[str, tuple[str, ...]]] = {
    "airlock:channel/channel@0.2.0": {
        "delivery": ("on-respond", "on-broadcast"),
        "edits": ("on-edit",),
        "reactions": ("on-react",),
    },
}
"""Channel interface -> the optional interfaces of its package (``wit/channel.wit``, 0.2.0) and their functions. A
component exports each interface whole or not at all; its functions are called by the keys ``"<interface>.<function>"``
(``"delivery.on-respond"``, ``"edits.on-edit"``) in ``LoadedComponent.exports``."""

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
    optional_exports: tuple[str, ...] = ()
    """The optional interfaces (``OPTIONAL_EXPORTS``) the component exports, e.g. ``("delivery", "edits")``."""
    adapted: bool = False
    """True when ``component`` is the original composed with the http adapter (``runtime.adapter``); everything
    else here (path, world, imports, size, sha256) describes the original."""

    def exports_optional(self, interface: str) -> bool:
        """Whether the component exports the optional interface ``interface`` ("delivery", "edits", "reactions")."""
        return interface in self.optional_exports


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

    def __init__(self, cache_dir: Path, pooling: PoolingSettings | None = None, *, adapt: bool = True) -> None:
        Runtime.created += 1
        wasmtime_fixes.apply()
        # Compiled code depends on fuel and epochs; not on the allocator (pooling.py, tested).
        self.settings_tag = "fuel=1;epoch=1"
        self.pooling: PoolingSettings | None = None
        self.pooling_unavailable: str | None = None
        self.adapt = adapt
        self.engine = self._make_engine(pooling)
        self.cache_dir = cache_dir
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
        sha256 = hashlib.sha256(wasm).hexdigest()
        composed, unavailable = self._composed(path, sha256)
        try:
            component, from_cache = self._component(path.name, composed[1] if composed else wasm)
            world, imports, exports = self._inspect(path.name, component, composed[0] if composed else None)
        except ComponentError as exc:
            if composed is None:
                raise
            # E.g. a pool without room for the adapter's memory: the original's own verdict is the one to report.
            log.warning("%s: the composed component does not load (%s); loading the original", path.name,
                        str(exc).removeprefix(f"{path.name}: "))
            composed = None
            component, from_cache = self._component(path.name, wasm)
            world, imports, exports = self._inspect(path.name, component, None)
        if unavailable is not None:
            log.warning("%s: loaded without the http adapter (%s): a large http response costs ~80x its size",
                        path.name, unavailable)
        optional = self._optional(path.name, component, world, exports)
        return LoadedComponent(
            path=path, component=component, world=world, exports=exports, imports=imports,
            imports_wasi=any(i.startswith("wasi:") for i in imports), size_bytes=len(wasm),
            sha256=sha256, load_ms=(time.perf_counter() - start) * 1000,
            from_cache=from_cache, optional_exports=optional, adapted=composed is not None,
        )

    def _composed(self, path: Path, sha256: str) -> tuple[tuple[str, bytes] | None, str | None]:
        """((host interface, composed bytes) or None, why the adapter is unavailable or None)."""
        if not self.adapt:
            return None, None
        try:
            found = adapter.compose(path, sha256, self.cache_dir)
            return (None if found is None else (found[0], found[1].read_bytes())), None
        except (adapter.AdapterUnavailable, OSError) as exc:
            return None, str(exc)

    def _component(self, name: str, wasm: bytes) -> tuple[Component, bool]:
        """(compiled ``wasm``, whether it came from the cache)."""
        cached = self.cache_dir / f"{self._cache_key(wasm)}.cwasm"
        from_cache = cached.exists()
        try:
            component = self._deserialize(cached) if from_cache else None
        except ComponentError as exc:
            raise ComponentError(f"{name}: {exc}") from None
        if component is None:
            return self._compile(name, wasm, cached), False
        return component, True

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

    def _inspect(
        self, name: str, component: Component, adapted_host: str | None
    ) -> tuple[World, tuple[str, ...], dict[str, ExportIndex]]:
        """World, imports and callback export indices of ``component``. ``adapted_host``: the host interface the
        original imported when ``component`` is its composed form (whose imports are the adapter's: the
        http-chunks interface, and the host interface only if some other function of it is used); the imports
        reported are then the original's."""
        ctype = component.type
        imports = tuple(sorted(ctype.imports(self.engine).keys()))
        if adapted_host is not None:
            imports = tuple(sorted({i for i in imports if i != adapter.CHUNKS_INTERFACE} | {adapted_host}))
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

    @staticmethod
    def _optional(name: str, component: Component, world: World, exports: dict[str, ExportIndex]) -> tuple[str, ...]:
        """Add the optional interfaces' functions to ``exports``; return the interfaces found. An interface
        exported without one of its functions is refused (the component was not built against the world)."""
        found = []
        package, version = world.channel_interface.split("/", 1)[0], world.channel_interface.rsplit("@", 1)[1]
        for iface_name, functions in OPTIONAL_EXPORTS.get(world.channel_interface, {}).items():
            full = f"{package}/{iface_name}@{version}"
            iface = component.get_export_index(full)
            if iface is None:
                continue
            for fn in functions:
                idx = component.get_export_index(fn, iface)
                if idx is None:
                    raise ComponentError(f"{name}: {full} lacks the export {fn}")
                exports[f"{iface_name}.{fn}"] = idx
            found.append(iface_name)
        return tuple(found)


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
