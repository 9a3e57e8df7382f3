"""Fresh stores without wasmtime-py's Python wrappers: store, limits, instantiate, export lookup, teardown.

A fresh-store callback makes about ten C calls around the guest's own work. Through wasmtime-py each goes
through a generated Python wrapper, ``argtypes`` conversion of typed pointers and a wrapper object
(``Store``, ``Instance``, ``Func``): ~25 µs per callback on the benchmark machine, a quarter of what the
Rust benchmark guest costs in total. Here the same C functions (``wasmtime.h``, ``wasmtime/store.h``,
``wasmtime/component/linker.h``, ``wasmtime/component/instance.h``) are declared once with plain ``void*``
arguments and called with integer addresses; the calls, their order and every limit are the stock path's:

1. ``wasmtime_store_new`` (no host data, no finalizer) and ``wasmtime_store_context``;
2. ``wasmtime_context_set_fuel(fuel)``, ``wasmtime_context_set_epoch_deadline(ticks)``,
   ``wasmtime_store_limiter(memory_size=memory_bytes, others unlimited (-1))`` -- what ``Store.set_fuel``,
   ``set_epoch_deadline`` and ``set_limits(memory_size=...)`` call;
3. for a component that imports WASI, an empty ``wasi_config_new()`` handed to ``wasmtime_context_set_wasi``
   (which takes ownership) -- forgetting it after ``add_wasip2`` aborts the process (wasmtime-py-notes.md);
4. ``wasmtime_component_linker_instantiate`` into a 16-byte instance slot, ``wasmtime_component_instance_get_func``
   into a 32-byte function slot (both in :class:`FreshStore`'s own buffer);
5. ``wasmtime_context_get_fuel`` for the stats, and ``wasmtime_store_delete`` exactly once (``close``).

Errors come back as ``wasmtime.WasmtimeError`` built from the C error, as wasmtime-py builds them, so the
sandbox classifies them the same way. Only used with fast linkers (``fastpath.add_host_funcs``): stock
trampolines expect wasmtime-py's own ``Store`` bookkeeping.
"""

from __future__ import annotations

import ctypes
from ctypes import c_bool, c_int64, c_uint64, c_void_p
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

__all__ = ["FreshStore", "address"]

_dll = ffi.dll
_store_new = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p)(("wasmtime_store_new", _dll))
_store_context = ctypes.CFUNCTYPE(c_void_p, c_void_p)(("wasmtime_store_context", _dll))
_store_delete = ctypes.CFUNCTYPE(None, c_void_p)(("wasmtime_store_delete", _dll))
_store_limiter = ctypes.CFUNCTYPE(None, c_void_p, c_int64, c_int64, c_int64, c_int64, c_int64)(
    ("wasmtime_store_limiter", _dll)
)
_set_fuel = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_uint64)(("wasmtime_context_set_fuel", _dll))
_get_fuel = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p)(("wasmtime_context_get_fuel", _dll))
_set_epoch_deadline = ctypes.CFUNCTYPE(None, c_void_p, c_uint64)(("wasmtime_context_set_epoch_deadline", _dll))
_wasi_config_new = ctypes.CFUNCTYPE(c_void_p)(("wasi_config_new", _dll))
_set_wasi = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p)(("wasmtime_context_set_wasi", _dll))
_instantiate = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)(
    ("wasmtime_component_linker_instantiate", _dll)
)
_get_func = ctypes.CFUNCTYPE(c_bool, c_void_p, c_void_p, c_void_p, c_void_p)(
    ("wasmtime_component_instance_get_func", _dll)
)

_post_return = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p)(("wasmtime_component_func_post_return", _dll))

_INSTANCE_SIZE = ctypes.sizeof(ffi.wasmtime_component_instance_t)
_FUNC_SIZE = ctypes.sizeof(ffi.wasmtime_component_func_t)
if (_INSTANCE_SIZE, _FUNC_SIZE) != (16, 32):  # the slots below are laid out for these sizes
    raise ImportError(f"unexpected wasmtime component instance/func sizes {_INSTANCE_SIZE}/{_FUNC_SIZE}")
_FUNC_OFFSET = 16
_FUEL_OFFSET = 48
_BUFFER_SIZE = 56


_free_slots: list[tuple[Any, int]] = []
"""Slot buffers of closed stores, reused by the next store (``list.pop``/``append`` are atomic under the GIL, so
threads can share it); at most one per store alive at once is ever created."""


def _take_slots() -> tuple[Any, int]:
    try:
        return _free_slots.pop()
    except IndexError:
        buf = ctypes.create_string_buffer(_BUFFER_SIZE)
        return buf, ctypes.addressof(buf)


def address(obj: Any) -> int:
    """The C address held by a wasmtime-py object (``Engine``, ``Component``, ``Linker``, ``ExportIndex``)."""
    return ctypes.cast(obj.ptr(), c_void_p).value or 0


def _raise(err: int) -> None:
    raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))


class FreshStore:
    """One store for one callback: create with the limits, ``instantiate``, ``func``, then ``close`` once.

    Args:
        engine: address of the ``wasm_engine_t`` (:func:`address` of the runtime's engine).
        fuel: fuel units (> 0); ``deadline_ticks``: epoch ticks from now (>= 1); ``memory_bytes``: the
            linear-memory cap (``wasmtime_store_limiter``'s memory_size); ``wasi``: give the store an empty
            WASI context (no preopens, no environment, no inherited stdio).

    Raises:
        wasmtime.WasmtimeError: wasmtime refused a setting (the store is deleted before raising).
    """

    __slots__ = ("_buf", "_ptr", "_slots", "ctx")

    def __init__(self, engine: int, fuel: int, deadline_ticks: int, memory_bytes: int, wasi: bool) -> None:
        ptr = _store_new(engine, None, None)
        if not ptr:
            raise MemoryError("wasmtime_store_new returned NULL")
        self._ptr: int = ptr
        self.ctx: int = _store_context(ptr)
        self._buf = _take_slots()  # (buffer, its address): the instance, function and fuel slots
        self._slots: int = self._buf[1]
        try:
            err = _set_fuel(self.ctx, fuel)
            if err:
                _raise(err)
            _set_epoch_deadline(self.ctx, deadline_ticks)
            _store_limiter(ptr, memory_bytes, -1, -1, -1, -1)
            if wasi:
                err = _set_wasi(self.ctx, _wasi_config_new())
                if err:
                    _raise(err)
        except BaseException:
            self.close()
            raise

    def instantiate(self, linker: int, component: int) -> int:
        """Instantiate ``component`` (address) through ``linker`` (address); returns the instance slot's address.

        Raises:
            wasmtime.WasmtimeError: instantiation failed (a trap in a start function, a limit, a full pool).
        """
        slot = self._slots
        err = _instantiate(linker, self.ctx, component, slot)
        if err:
            _raise(err)
        return slot

    def func(self, instance: int, export_index: int) -> int | None:
        """Address of the function slot for ``export_index`` (address) of ``instance``; None if not a function."""
        slot = self._slots + _FUNC_OFFSET
        return slot if _get_func(instance, self.ctx, export_index, slot) else None

    def post_return(self, func: int) -> None:
        """Run the export's post-return after a successful call (needed only when the instance is called again).

        Raises:
            wasmtime.WasmtimeError: the guest's post-return trapped.
        """
        err = _post_return(func, self.ctx)
        if err:
            _raise(err)

    def fuel_left(self) -> int:
        """Fuel remaining (``wasmtime_context_get_fuel``)."""
        slot = self._slots + _FUEL_OFFSET
        err = _get_fuel(self.ctx, slot)
        if err:
            _raise(err)
        return c_uint64.from_address(slot).value

    def close(self) -> None:
        """Delete the store (frees the instance's pool slot). Safe to call twice."""
        ptr, self._ptr = self._ptr, 0
        if ptr:
            _store_delete(ptr)
            _free_slots.append(self._buf)  # the instance is gone: nothing refers to its slots any more
