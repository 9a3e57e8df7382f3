"""One callback in a fresh sandbox: Store, limits, instantiate, call, close (failures classified by ``traps``).

Nothing survives in guest memory between callbacks: every call gets a new ``Store`` with a memory limit,
fuel and an epoch deadline, and an empty WASI context only when the component imports WASI (no preopens,
no environment, no inherited stdio). Blocking; run it in a worker thread, never on the event loop.

Values cross through ``fastpath`` (compiled converters, read once per component) unless the sandbox is
built with ``fastpath=False`` or ``AIRLOCK_FASTPATH=0``; then through stock wasmtime-py (with
``wasmtime_fixes``). Both paths give the same values and the same errors.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import wasmtime
from wasmtime.component import Func, Linker

from ..errors import HostBug
from ..host_config import DEFAULT_MAX_GUEST_LIST_BYTES
from . import adapter
from . import fastpath as fp
from . import fastpath_store as fps
from . import linker as host_linker
from .engine import LoadedComponent, Runtime
from .traps import classify_trap as classify_trap  # re-exported: the trap kinds were defined here
from .traps import failure, instantiated

DEFAULT_MEMORY_LIMIT = 50 * 1024 * 1024
DEFAULT_FUEL = 5_000_000_000
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Limits:
    """Per-callback limits. memory_bytes: linear-memory cap; fuel: wasm instructions (roughly);
    timeout_s: wall-clock deadline enforced by epoch interruption."""

    memory_bytes: int = DEFAULT_MEMORY_LIMIT
    fuel: int = DEFAULT_FUEL
    timeout_s: float = DEFAULT_TIMEOUT_S


class ReusedCall(Protocol):
    """``Sandbox.reused_instance``'s call: ``(callback, WIT args, host API for this call or None) -> result``."""

    def __call__(self, callback: str, args: tuple[Any, ...], call_api: host_linker.HostApi | None = None) -> Any: ...


@dataclass(frozen=True)
class _Prepared:
    """What a fresh-store fast call needs, read once per component: C addresses and compiled converters.

    Holds ``component``, ``linker`` and the export indices so the addresses stay valid while it is cached.
    """

    component: Any
    linker: Linker
    indices: tuple[Any, ...]
    engine_addr: int
    component_addr: int
    linker_addr: int
    wasi: bool
    imports: dict[str, fp.ImportConv]
    exports: dict[str, tuple[fp.ExportCall, int]]  # callback -> (converters, export index address)


@dataclass(frozen=True)
class CallStats:
    fuel_used: int
    elapsed_s: float


class Sandbox:
    """Runs callbacks of loaded components; holds the shared linkers and compiled converters. Thread-safe.

    Args:
        runtime: the process-wide engine.
        fastpath: use the fast call path; ``None`` follows ``AIRLOCK_FASTPATH`` (on unless "0").
        host_functions: the host interface's functions (``linker.build_linker``); default: channel-host.
        max_guest_list_bytes: the longest ``list<u8>`` a host function accepts from a guest
            (``HostConfig.max_guest_list_bytes``); a longer one gets a WIT error (``linker.bind``).
    """

    def __init__(
        self, runtime: Runtime, fastpath: bool | None = None, host_functions: host_linker.HostFunctions | None = None,
        max_guest_list_bytes: int = DEFAULT_MAX_GUEST_LIST_BYTES,
    ) -> None:
        self.runtime = runtime
        self.fastpath = fp.enabled(fastpath)
        self.max_guest_list_bytes = max_guest_list_bytes
        self._functions = host_functions
        self._linkers: dict[tuple[str, bool, bool], Linker] = {}
        self._fast: dict[str, fp.FastComponent] = {}
        self._prepared: dict[str, _Prepared | None] = {}
        self._lock = threading.Lock()

    def fast_component(self, loaded: LoadedComponent) -> fp.FastComponent | None:
        """The component's compiled converters (built on first use), or ``None`` with the fast path off."""
        if not self.fastpath:
            return None
        key = f"{loaded.sha256}|{loaded.world.channel_interface}|{loaded.adapted}"
        fc = self._fast.get(key)  # a dict read is atomic; the lock only guards building
        if fc is not None:
            return fc
        with self._lock:
            fc = self._fast.get(key)
            if fc is None:
                fc = fp.compile_component(
                    loaded.component, self.runtime.engine, export_interface=loaded.world.channel_interface,
                    export_names=loaded.exports,
                    import_interface=(loaded.world.host_interface, adapter.CHUNKS_INTERFACE) if loaded.adapted
                    else loaded.world.host_interface,
                    label=loaded.path.name,
                )
                self._fast[key] = fc
            return fc

    def linker_for(self, loaded: LoadedComponent, fc: fp.FastComponent | None = None) -> Linker:
        """The shared linker for ``loaded`` (fast trampolines when its converters ``fc`` allow them)."""
        fc = fc or self.fast_component(loaded)
        key = (loaded.world.host_interface, loaded.imports_wasi, fc is not None and fc.imports_ok)
        linker = self._linkers.get(key)
        if linker is not None:
            return linker
        with self._lock:
            linker = self._linkers.get(key)
            if linker is None:
                linker = host_linker.build_linker(
                    self.runtime.engine, key[0], wasi=key[1], fast=key[2], functions=self._functions
                )
                self._linkers[key] = linker
            return linker

    def prepared(self, loaded: LoadedComponent) -> _Prepared | None:
        """The component's C-level call plan (built on first use), or ``None`` when its calls go through
        wasmtime-py's objects (fast path off, or a host import the fast path does not convert)."""
        key = f"{loaded.sha256}|{loaded.world.channel_interface}|{loaded.adapted}"
        if key in self._prepared:
            prep = self._prepared[key]
            if prep is None or prep.component is loaded.component:
                return prep
        fc = self.fast_component(loaded)
        built: _Prepared | None = None
        if fc is not None and fc.imports_ok:
            linker = self.linker_for(loaded, fc)
            exports = {
                name: (call, fps.address(loaded.exports[name]))
                for name, call in fc.exports.items() if call is not None and name in loaded.exports
            }
            built = _Prepared(
                component=loaded.component, linker=linker, indices=tuple(loaded.exports.values()),
                engine_addr=fps.address(self.runtime.engine), component_addr=fps.address(loaded.component),
                linker_addr=fps.address(linker), wasi=loaded.imports_wasi, imports=fc.imports, exports=exports,
            )
        with self._lock:  # another LoadedComponent of the same bytes replaces the plan (and frees the old one)
            self._prepared[key] = built
        return built

    def call(
        self, loaded: LoadedComponent, callback: str, args: tuple[Any, ...], api: host_linker.HostApi,
        limits: Limits,
    ) -> tuple[Any, CallStats]:
        """Instantiate ``loaded`` in a fresh store and call ``callback`` with WIT-level ``args``.

        Returns the raw WIT result and the fuel/time used.

        Raises:
            GuestTrap: the guest trapped (kind: timeout, fuel, memory, panic, trap), including at
                instantiation (e.g. initial memory above the limit).
            SandboxBusy: every slot of the pooling allocator is in use; the guest did not run.
            HostBug: a host function failed unexpectedly, or a host value (an argument, a host function's
                result) does not fit its WIT type.
        """
        prep = self.prepared(loaded)
        if prep is not None:
            export = prep.exports.get(callback)
            if export is not None:
                return self._call_fresh(prep, export, callback, args, api, limits)
        fc = self.fast_component(loaded)
        linker = self.linker_for(loaded, fc)
        store = self._store(loaded, limits)
        start = time.perf_counter()
        self._bind(api, fc.imports if fc is not None else None, limits)
        try:
            instance = instantiated(lambda: linker.instantiate(store, loaded.component))
            result, _func = self._invoke(fc, loaded, store, instance, callback, args)
            stats = CallStats(fuel_used=limits.fuel - store.get_fuel(), elapsed_s=time.perf_counter() - start)
            return result, stats
        except Exception as exc:
            raise failure(exc, api, callback) from None
        finally:
            self._release(store)

    def _call_fresh(
        self, prep: _Prepared, export: tuple[fp.ExportCall, int], callback: str, args: tuple[Any, ...],
        api: host_linker.HostApi, limits: Limits,
    ) -> tuple[Any, CallStats]:
        """``call`` through ``fastpath_store``: the same C calls and limits, without wasmtime-py's wrappers."""
        store = fps.FreshStore(prep.engine_addr, limits.fuel, self.runtime.deadline_ticks(limits.timeout_s),
                               limits.memory_bytes, prep.wasi)
        start = time.perf_counter()
        self._bind(api, prep.imports, limits)
        try:
            instance = instantiated(lambda: store.instantiate(prep.linker_addr, prep.component_addr))
            func = store.func(instance, export[1])
            if func is None:
                raise HostBug(f"export {callback} vanished after load")
            result = export[0].call_raw(store.ctx, func, args)
            return result, CallStats(fuel_used=limits.fuel - store.fuel_left(),
                                     elapsed_s=time.perf_counter() - start)
        except Exception as exc:
            raise failure(exc, api, callback) from None
        finally:
            self._release(store)

    @contextlib.contextmanager
    def reused_instance(
        self, loaded: LoadedComponent, api: host_linker.HostApi, limits: Limits,
    ) -> Iterator[ReusedCall]:
        """One instance serving several calls, for benchmarks and tests (Airlock's callbacks always get a
        fresh one). Yields ``call(callback, args, api=None) -> result``, which raises like ``call``
        (``GuestTrap``, ``HostBug``) and runs the export's post-return after a success; ``api`` given to it
        replaces the block's for that call (a benchmark passes each callback's own host state). The calls
        take the same route as fresh callbacks (``fastpath_store`` when the component has a call plan for
        every export, else wasmtime-py's objects), so fresh vs reused compares only the store and the
        instantiation. ``limits`` cover the instance's whole life (fuel and the deadline are not reset per
        call). Use it on one thread: the host API is bound to the calling thread for each call (fresh
        callbacks may run on the same thread in between).

        Raises:
            GuestTrap: instantiation failed (e.g. initial memory above the limit).
            SandboxBusy: every slot of the pooling allocator is in use.
        """
        prep = self.prepared(loaded)
        if prep is not None and len(prep.exports) == len(loaded.exports):
            with self._reused_fast(prep, api, limits) as fast_call:
                yield fast_call
            return
        fc = self.fast_component(loaded)
        linker = self.linker_for(loaded, fc)
        store = self._store(loaded, limits)
        self._bind(api, fc.imports if fc is not None else None, limits)
        try:
            try:
                instance = instantiated(lambda: linker.instantiate(store, loaded.component))
            except Exception as exc:
                raise failure(exc, api, "instantiate") from None

            def call(callback: str, args: tuple[Any, ...], call_api: host_linker.HostApi | None = None) -> Any:
                # Bound again per call: a fresh callback on this thread in between clears the binding.
                bound = call_api or api
                self._bind(bound, fc.imports if fc is not None else None, limits)
                try:
                    result, func = self._invoke(fc, loaded, store, instance, callback, args)
                    func.post_return(store)
                    return result
                except Exception as exc:
                    raise failure(exc, bound, callback) from None

            yield call
        finally:
            self._release(store)

    @contextlib.contextmanager
    def _reused_fast(self, prep: _Prepared, api: host_linker.HostApi, limits: Limits) -> Iterator[ReusedCall]:
        store = fps.FreshStore(prep.engine_addr, limits.fuel, self.runtime.deadline_ticks(limits.timeout_s),
                               limits.memory_bytes, prep.wasi)
        self._bind(api, prep.imports, limits)
        try:
            try:
                instance = instantiated(lambda: store.instantiate(prep.linker_addr, prep.component_addr))
            except Exception as exc:
                raise failure(exc, api, "instantiate") from None

            def call(callback: str, args: tuple[Any, ...], call_api: host_linker.HostApi | None = None) -> Any:
                bound = call_api or api
                self._bind(bound, prep.imports, limits)
                try:
                    export, index = prep.exports[callback]
                    func = store.func(instance, index)
                    if func is None:
                        raise HostBug(f"export {callback} vanished after load")
                    result = export.call_raw(store.ctx, func, args)
                    store.post_return(func)
                    return result
                except Exception as exc:
                    raise failure(exc, bound, callback) from None

            yield call
        finally:
            self._release(store)

    def _bind(self, api: host_linker.HostApi, imports: dict[str, fp.ImportConv] | None, limits: Limits) -> None:
        """Bind ``api`` and the fast path's import converters to this thread for one call (host functions find
        them there)."""
        host_linker.bind(api, self.max_guest_list_bytes, limits.memory_bytes)
        fp.bind_imports(imports)

    @staticmethod
    def _release(store: wasmtime.Store | fps.FreshStore) -> None:
        """The end of every call path: nothing bound to this thread any more, the store closed."""
        host_linker.bind(None)
        fp.bind_imports(None)
        store.close()

    def _store(self, loaded: LoadedComponent, limits: Limits) -> wasmtime.Store:
        store = wasmtime.Store(self.runtime.engine)
        try:
            store.set_fuel(limits.fuel)
            store.set_epoch_deadline(self.runtime.deadline_ticks(limits.timeout_s))
            store.set_limits(memory_size=limits.memory_bytes)
            if loaded.imports_wasi:
                # Forgetting this after add_wasip2() aborts the process (wasmtime-py-notes.md).
                store.set_wasi(wasmtime.WasiConfig())
        except BaseException:
            store.close()
            raise
        return store

    @staticmethod
    def _invoke(
        fc: fp.FastComponent | None, loaded: LoadedComponent, store: wasmtime.Store, instance: Any, callback: str,
        args: tuple[Any, ...],
    ) -> tuple[Any, Func]:
        """Call ``callback`` on ``instance`` (fast or stock, as compiled); returns (result, the export)."""
        func = instance.get_func(store, loaded.exports[callback])
        if func is None:
            raise HostBug(f"export {callback} vanished after load")
        export = fc.exports.get(callback) if fc is not None else None
        return (export.call(store, func, args) if export is not None else func(store, *args)), func

