"""The fast call path: component calls and host callbacks without wasmtime-py's per-call conversion.

Stock wasmtime-py re-reads every function type on every call, converts ``list<u8>`` byte by byte and
builds a ctypes object per value node; at Airlock's call rates that is most of a callback's cost
(``shared/design/wasmtime-py-notes.md``, last section). This module (with ``fastpath_types``,
``fastpath_lower``, ``fastpath_lift`` and ``fastpath_memory``) replaces that layer:

- ``compile_component`` reads a component's export and host-import types once and compiles them into
  straight-line converter functions (``FastComponent``);
- ``ExportCall`` lowers arguments into arena memory that C only reads, calls
  ``wasmtime_component_func_call`` directly, lifts the result straight from C memory and frees it with
  one ``wasmtime_component_val_delete`` (no leak, no per-node frees);
- ``add_host_funcs`` registers light trampolines for host functions: they find the running component's
  converters through ``bind_imports`` (set per callback), so no type is read during a call.

Fallback, chosen once: an export whose types the fast path does not handle (resources, futures, streams,
error-context, maps) is called through stock wasmtime-py (``FastComponent.exports[name] is None``); a
component with such a type in a host import gets a stock linker (``FastComponent.imports_ok`` is False).
Values and errors are the stock path's, with ``wasmtime_fixes`` applied; ``tests/runtime/
test_fastpath_equivalence.py`` runs every case both ways.

Switch: ``enabled(flag)`` -- an explicit flag wins, else the environment variable ``AIRLOCK_FASTPATH``
(``0``/``false``/``off``/``no`` turn it off; on by default).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable, Iterable
from ctypes import byref, c_size_t, c_void_p
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Component, Func
from wasmtime.component._enter import maybe_raise_last_exn
from wasmtime.component._types import FuncType

from . import fastpath_types as ft
from .fastpath_lift import Lifter, LiftFn, ParamsLiftFn
from .fastpath_lower import Lowerer, LowerFn, ParamsFn
from .fastpath_memory import MEM, VAL_SIZE, arena, c_error, func_call, val_clone, val_delete

__all__ = [
    "ENV_VAR",
    "ExportCall",
    "FastComponent",
    "ImportConv",
    "add_host_funcs",
    "bind_imports",
    "compile_component",
    "enabled",
]

log = logging.getLogger("airlock.runtime")

ENV_VAR = "AIRLOCK_FASTPATH"
_OFF = frozenset({"0", "false", "off", "no"})


def enabled(flag: bool | None = None) -> bool:
    """Whether to use the fast path: ``flag`` if given, else ``AIRLOCK_FASTPATH`` (on unless 0/false/off/no)."""
    if flag is not None:
        return flag
    return os.environ.get(ENV_VAR, "1").strip().lower() not in _OFF


def _raise_call_error(err: int) -> None:
    error = wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
    # A stock host trampoline (a component on a stock linker) parks its Python exception here.
    maybe_raise_last_exn()
    raise error


# ---- exports -----------------------------------------------------------------------------------------


class ExportCall:
    """A compiled component export: ``call(store, func, args)`` behaves like stock ``func(store, *args)``.

    Raises what the stock call raises: ``TypeError`` for a wrong argument count or type, ``ValueError``
    for an invalid case or out-of-range integer, ``wasmtime.WasmtimeError`` for a trap.
    """

    __slots__ = ("_lift", "_lower", "nparams")

    def __init__(self, sig: ft.FuncSig, lower: ParamsFn, lift: LiftFn | None) -> None:
        self.nparams = len(sig.params)
        self._lower = lower
        self._lift = lift

    def call(self, store: wasmtime.Store, func: Func, args: tuple[Any, ...]) -> Any:
        return self.call_raw(store._context(), byref(func._func), args)

    def call_raw(self, ctx: Any, func: Any, args: tuple[Any, ...]) -> Any:
        """``call`` with the store context and the function slot as C addresses (``fastpath_store``)."""
        n = self.nparams
        if len(args) != n:
            raise TypeError(f"wrong number of parameters provided: given {len(args)}, expected {n}")
        ar = arena()
        mark = ar.mark()
        try:
            params = self._lower(args, ar)
            # A real slot even without a result: Rust builds a slice from it, and a NULL base is undefined.
            result = ar.alloc(VAL_SIZE)
            MEM[result] = 0  # a bool: wasmtime drops the slot's old value before writing the result
            lift = self._lift
            err = func_call(func, ctx, params, n, result, 0 if lift is None else 1)
            if err:
                _raise_call_error(err)
            if lift is None:
                return None
            try:
                return lift(result)
            finally:
                val_delete(result)
        finally:
            ar.release(mark)


# ---- host imports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportConv:
    """How one host function's values cross for one component.

    ``lift``: arguments address -> tuple; ``write``: for a scalar result, writes it straight into
    wasmtime's result slot; ``lower``: for any other result, lowers it into the arena (then cloned into
    Rust-owned memory, which wasmtime frees).
    """

    nparams: int
    lift: ParamsLiftFn
    write: Callable[[Any, int, Any], None] | None
    lower: LowerFn | None


_SCALARS = (ft.Bool, ft.Int, ft.Float, ft.Char)
_local = threading.local()


def bind_imports(imports: dict[str, ImportConv] | None) -> None:
    """Make ``imports`` the host-import converters for fast trampolines on this thread (``None`` clears)."""
    _local.imports = imports


def _bound() -> dict[str, ImportConv]:
    imports: dict[str, ImportConv] | None = getattr(_local, "imports", None)
    if imports is None:
        raise RuntimeError("fast host function called with no component bound on this thread")
    return imports


def _store_result(conv: ImportConv, result: Any, results: int, nresults: int) -> None:
    if conv.write is None and conv.lower is None:
        if result is not None:  # the stock trampoline asserts the same
            raise AssertionError("host function without a result returned a value")
        return
    if nresults != 1:
        raise RuntimeError(f"wasmtime expects {nresults} results")
    ar = arena()
    mark = ar.mark()
    try:
        if conv.write is not None:
            conv.write(result, results, ar)
        else:
            assert conv.lower is not None
            val_clone(conv.lower(result, ar), results)
    finally:
        ar.release(mark)


OnError = Callable[[str, BaseException], None]
"""Called when a fast trampoline fails outside the host function (e.g. its result does not fit the WIT
type): the linker records a host bug, as it does for a failing host function."""

_CALLBACK = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t)
_add_func = ctypes.CFUNCTYPE(c_void_p, c_void_p, ctypes.c_char_p, c_size_t, c_void_p, c_void_p, c_void_p)(
    ("wasmtime_component_linker_instance_add_func", ffi.dll)
)


def _trampoline(name: str, fn: Callable[..., Any], on_error: OnError) -> Any:
    def callback(_data: int, _ctx: int, _ty: int, args: int, nargs: int, results: int, nresults: int) -> int:
        try:
            conv = _bound()[name]
            if nargs != conv.nparams:
                raise RuntimeError(f"wasmtime passed {nargs} arguments, the import declares {conv.nparams}")
            result = fn(None, *conv.lift(args))
        except wasmtime.WasmtimeError as exc:  # the host function's own trap (e.g. a recorded host bug)
            return int(ctypes.cast(exc._consume(), c_void_p).value or 0)
        except BaseException as exc:
            on_error(name, exc)
            return c_error("host function failed")
        try:
            _store_result(conv, result, results, nresults)
        except BaseException as exc:
            on_error(name, exc)
            return c_error("host function failed")
        return 0

    return _CALLBACK(callback)


def add_host_funcs(inst: Any, functions: dict[str, Callable[..., Any]], on_error: OnError) -> list[Any]:
    """Define ``functions`` (WIT name -> ``fn(store, *args)``, as for ``LinkerInstance.add_func``) on the
    linker instance ``inst`` with fast trampolines. Returns the C callbacks: keep them alive as long as
    the linker (``build_linker`` stores them on it).

    Raises:
        wasmtime.WasmtimeError: wasmtime refused a definition (e.g. a duplicate name).
    """
    callbacks = []
    for name, fn in functions.items():
        cb = _trampoline(name, fn, on_error)
        encoded = name.encode("utf-8")
        err = _add_func(ctypes.cast(inst.ptr(), c_void_p), encoded, len(encoded), ctypes.cast(cb, c_void_p), None, None)
        if err:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
        callbacks.append(cb)
    return callbacks


# ---- per component -----------------------------------------------------------------------------------


@dataclass
class FastComponent:
    """A component's compiled converters.

    ``exports``: export name -> ``ExportCall``, or ``None`` where the stock call is used;
    ``imports``: host function name -> ``ImportConv``; ``imports_ok``: False when some host import has a
    type the fast path does not handle (the component then runs on a stock linker).
    """

    exports: dict[str, ExportCall | None] = field(default_factory=dict)
    imports: dict[str, ImportConv] = field(default_factory=dict)
    imports_ok: bool = True


def _functions(items: dict[str, Any], interface: str, engine: wasmtime.Engine) -> dict[str, Any]:
    extern = items.get(interface)
    if extern is None:
        return {}
    items_ty = {name: item.ty for name, item in extern.ty.exports(engine).items()}
    return {name: ty for name, ty in items_ty.items() if isinstance(ty, FuncType)}  # not the type exports


def _sig(fty: Any) -> ft.FuncSig | None:
    try:
        return ft.func_sig(fty)
    except (ft.Unsupported, TypeError, NotImplementedError) as exc:
        log.info("fast path: stock conversion for a function with %s", exc)
        return None


def compile_component(
    component: Component, engine: wasmtime.Engine, *, export_interface: str, export_names: Iterable[str],
    import_interface: str | tuple[str, ...], label: str = "component",
) -> FastComponent:
    """Read the types of ``export_interface``'s functions ``export_names`` and of every function of
    ``import_interface`` (one interface or several, whose function names must differ: the trampolines find their
    converters by name) once, and compile their converters. Names the component lacks are skipped."""
    ctype = component.type
    lowerer, lifter = Lowerer(label), Lifter(label)
    out = FastComponent()
    exported = _functions(ctype.exports(engine), export_interface, engine)
    for name in export_names:
        if name not in exported:
            continue
        sig = _sig(exported[name])
        out.exports[name] = None if sig is None else ExportCall(
            sig, lowerer.params(sig), None if sig.result is None else lifter.value(sig.result)
        )
    interfaces = (import_interface,) if isinstance(import_interface, str) else import_interface
    imported: dict[str, Any] = {}
    for interface in interfaces:
        imported.update(_functions(ctype.imports(engine), interface, engine))
    for name, fty in imported.items():
        sig = _sig(fty)
        if sig is None:
            out.imports_ok = False
            continue
        scalar = isinstance(sig.result, _SCALARS)
        out.imports[name] = ImportConv(
            nparams=len(sig.params), lift=lifter.params(sig),
            write=lowerer.writer(sig.result) if scalar and sig.result is not None else None,
            lower=lowerer.value(sig.result) if sig.result is not None and not scalar else None,
        )
    return out
