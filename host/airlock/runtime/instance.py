"""One callback in a fresh sandbox: Store, limits, instantiate, call, classify traps, close.

Nothing survives in guest memory between callbacks: every call gets a new ``Store`` with a memory limit,
fuel and an epoch deadline, and an empty WASI context only when the component imports WASI (no preopens,
no environment, no inherited stdio). Blocking; run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime.component import Linker

from ..errors import GuestTrap, HostBug, TrapKind
from . import linker as host_linker
from .engine import LoadedComponent, Runtime

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


@dataclass(frozen=True)
class CallStats:
    fuel_used: int
    elapsed_s: float


def classify_trap(message: str) -> TrapKind:
    """Map a wasmtime error message to a trap kind (traps surface as WasmtimeError with the reason in
    the text: wasmtime-py-notes.md, "Traps and limits")."""
    text = message.lower()
    if "all fuel consumed" in text:
        return "fuel"
    if "interrupt" in text:
        return "timeout"
    if "memory" in text and ("limit" in text or "exceeds" in text or "grow" in text):
        return "memory"
    if "unreachable" in text:
        return "panic"
    return "trap"


def _trap_reason(exc: BaseException) -> str:
    """One line saying why wasmtime failed. A trap's text starts with "error while executing at wasm
    backtrace:" and names the reason only at the end, after "Caused by:"; other errors lead with it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if "Caused by:" in lines else lines[0]


class Sandbox:
    """Runs callbacks of loaded components; holds the shared linkers. Thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._linkers: dict[tuple[str, bool], Linker] = {}
        self._lock = threading.Lock()

    def linker_for(self, loaded: LoadedComponent) -> Linker:
        key = (loaded.world.host_interface, loaded.imports_wasi)
        with self._lock:
            linker = self._linkers.get(key)
            if linker is None:
                linker = host_linker.build_linker(self.runtime.engine, key[0], wasi=key[1])
                self._linkers[key] = linker
            return linker

    def call(
        self, loaded: LoadedComponent, callback: str, args: tuple[Any, ...], api: host_linker.HostApi,
        limits: Limits,
    ) -> tuple[Any, CallStats]:
        """Instantiate ``loaded`` in a fresh store and call ``callback`` with WIT-level ``args``.

        Returns the raw WIT result and the fuel/time used.

        Raises:
            GuestTrap: the guest trapped (kind: timeout, fuel, memory, panic, trap), including at
                instantiation (e.g. initial memory above the limit).
            HostBug: a host function failed unexpectedly.
        """
        linker = self.linker_for(loaded)
        store = wasmtime.Store(self.runtime.engine)
        start = time.perf_counter()
        try:
            store.set_fuel(limits.fuel)
            store.set_epoch_deadline(self.runtime.deadline_ticks(limits.timeout_s))
            store.set_limits(memory_size=limits.memory_bytes)
            if loaded.imports_wasi:
                # Forgetting this after add_wasip2() aborts the process (wasmtime-py-notes.md).
                store.set_wasi(wasmtime.WasiConfig())
            host_linker.bind(api)
            try:
                instance = linker.instantiate(store, loaded.component)
                func = instance.get_func(store, loaded.exports[callback])
                if func is None:
                    raise HostBug(f"export {callback} vanished after load")
                result = func(store, *args)
            finally:
                host_linker.bind(None)
            stats = CallStats(fuel_used=limits.fuel - store.get_fuel(), elapsed_s=time.perf_counter() - start)
            return result, stats
        except wasmtime.WasmtimeError as exc:
            if api.host_bug is not None or host_linker.is_host_bug_trap(exc):
                raise HostBug(api.host_bug or "host function failed") from None
            # Classify the reason only: the backtrace carries guest-chosen function names.
            reason = _trap_reason(exc)
            raise GuestTrap(classify_trap(reason), reason) from None
        finally:
            store.close()
