"""Lowering for the fast call path: Python values -> ``wasmtime_component_val_t`` trees in arena memory.

``Lowerer.params(sig)`` gives ``fn(args, arena) -> address`` (the argument array of an export call);
``Lowerer.value(t)`` gives ``fn(value, arena) -> address`` (one value, e.g. a host function's result).
Both raise exactly what the stock path raises for a value it refuses (same exception class and
message, checked in the same order: wasmtime-py 50.0.1 ``component/_types.py`` plus
``wasmtime_fixes``), so callers cannot tell the two paths apart by their errors.

Generated code conventions: ``v`` is the value being lowered, ``a`` the address being written, ``ar`` the
arena and ``kp`` its keep-alive list's ``append`` (``bytes`` whose data C reads in place). Payload
expressions returned by the emitters are side-effect free (locals, literals, ``len``/``id``), so every
check and nested write happens in statement order, the order the stock path checks in.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from typing import Any

from wasmtime.component import Record, Variant

from . import fastpath_types as ft
from .fastpath_codegen import INDENT, Module, function
from .fastpath_memory import BYTES_DATA_OFFSET, ENTRY_SIZE, MEM, VAL_SIZE, Arena, kind
from .wasmtime_fixes import enum_case_error, int_range_error

__all__ = ["LowerFn", "Lowerer", "ParamsFn"]

ParamsFn = Callable[[tuple[Any, ...], Arena], int]
LowerFn = Callable[[Any, Arena], int]

_SIZES = {"B": 1, "b": 1, "H": 2, "h": 2, "I": 4, "i": 4, "Q": 8, "q": 8, "f": 4, "d": 8, "?": 1}
_BAD_CASE = "value not valid for this variant"


def _pad(code: str) -> str:
    return f"{code}{24 - _SIZES[code]}x"


def _f32(value: float) -> float:
    # ctypes rounds (and saturates to inf) where struct.pack("f") would raise: keep the stock result.
    return float(ctypes.c_float(value).value)


def _lower_flags(v: Any, ar: Arena) -> tuple[int, int]:
    if not isinstance(v, set):
        raise TypeError("expected set type for Flags type")
    for s in v:
        if not isinstance(s, str):
            raise TypeError("expected set of strings for Flags type")
    names = [str.encode(s, "utf8") for s in v]  # str.encode: exact bytes even for a str subclass
    data = ar.alloc(16 * len(names))
    for i, b in enumerate(names):
        ar.keep.append(b)
        struct.pack_into("<QQ", MEM, data + 16 * i, len(b), id(b) + BYTES_DATA_OFFSET)
    return len(names), data


_KINDS = {
    ft.Bool: kind("BOOL"), ft.Char: kind("CHAR"), ft.String: kind("STRING"), ft.List: kind("LIST"),
    ft.RecordT: kind("RECORD"), ft.TupleT: kind("TUPLE"), ft.Enum: kind("ENUM"), ft.Flags: kind("FLAGS"),
    ft.VariantT: kind("VARIANT"), ft.Option: kind("OPTION"), ft.ResultT: kind("RESULT"),
}


def _kind_of(t: ft.Type) -> int:
    if isinstance(t, ft.Int | ft.Float):
        return kind(t.name)
    return _KINDS[type(t)]


class Lowerer:
    """Compiles lowering functions; one per component (types repeat across its functions)."""

    def __init__(self, label: str) -> None:
        self.m = Module(f"lower {label}", {
            "MEM": MEM, "pack_into": struct.pack_into, "Variant": Variant, "Record": Record,
            "BYTES": ft.BYTES_CLASSES, "int_range_error": int_range_error, "enum_case_error": enum_case_error,
            "f32": _f32, "lower_flags": _lower_flags, "str_encode": str.encode,
        })

    # ---- public --------------------------------------------------------------------------------------

    def params(self, sig: ft.FuncSig) -> ParamsFn:
        """``fn(args, arena) -> address`` of ``len(sig.params)`` values (at least one slot, never NULL)."""
        name = self.m.fresh("P")
        body = [f"{INDENT}kp = ar.keep.append", f"{INDENT}a = ar.alloc({VAL_SIZE * max(1, len(sig.params))})"]
        fmt, values = "<", []
        for i, t in enumerate(sig.params):
            v = f"v{i}"
            body.append(f"{INDENT}{v} = args[{i}]")
            pfmt, exprs = self._payload(t, v, body, INDENT)
            fmt += "B7x" + pfmt
            values += [str(_kind_of(t)), *exprs]
        if values:
            body.append(f"{INDENT}pack_into({fmt!r}, MEM, a, {', '.join(values)})")
        body.append(f"{INDENT}return a")
        self.m.define(function(name, "args, ar", body))
        self.m.build()
        return self.m.get(name)

    def value(self, t: ft.Type) -> LowerFn:
        """``fn(value, arena) -> address`` of one lowered value."""
        writer = self._writer(t)
        name = self.m.fresh("V")
        body = [f"{INDENT}a = ar.alloc({VAL_SIZE})", f"{INDENT}{writer}(v, a, ar)", f"{INDENT}return a"]
        self.m.define(function(name, "v, ar", body))
        self.m.build()
        return self.m.get(name)

    def writer(self, t: ft.Type) -> Callable[[Any, int, Arena], None]:
        """``fn(value, address, arena)``: write one value of ``t`` at ``address`` (for a scalar type, no
        arena memory is used, so ``address`` may be wasmtime's own result slot)."""
        name = self._writer(t)
        self.m.build()
        return self.m.get(name)

    # ---- generated functions -------------------------------------------------------------------------

    def _writer(self, t: ft.Type) -> str:
        """Name of ``W(v, a, ar)``: write one value of ``t`` (kind and payload) at ``a``."""
        key = ("W", t)
        name = self.m.cache.get(key)
        if name is None:
            name = self.m.cache[key] = self.m.fresh("W")
            body = [f"{INDENT}kp = ar.keep.append"]
            fmt, exprs = self._payload(t, "v", body, INDENT)
            body.append(f"{INDENT}pack_into({'<B7x' + fmt!r}, MEM, a, {_kind_of(t)}, {', '.join(exprs)})")
            self.m.define(function(name, "v, a, ar", body))
        return name

    def _record(self, t: ft.RecordT) -> str:
        """Name of ``R(v, ar) -> address`` of the record's entry array (names, kinds, payloads)."""
        key = ("R", t)
        name = self.m.cache.get(key)
        if name is None:
            name = self.m.cache[key] = self.m.fresh("R")
            body = [f"{INDENT}kp = ar.keep.append", f"{INDENT}a = ar.alloc({ENTRY_SIZE * len(t.fields)})"]
            fmt, values = "<", []
            for i, (field, ft_) in enumerate(t.fields):
                encoded = field.encode("utf-8")
                const = self.m.const(encoded, "N")
                v = f"f{i}"
                body.append(f"{INDENT}{v} = getattr(v, {field!r})")
                pfmt, exprs = self._payload(ft_, v, body, INDENT)
                fmt += "QQB7x" + pfmt
                # The name's bytes live in the namespace for good, so its address is a literal.
                values += [str(len(encoded)), str(id(self.m.ns[const]) + BYTES_DATA_OFFSET), str(_kind_of(ft_)), *exprs]
            body.append(f"{INDENT}pack_into({fmt!r}, MEM, a, {', '.join(values)})")
            body.append(f"{INDENT}return a")
            self.m.define(function(name, "v, ar", body))
        return name

    def _tuple(self, t: ft.TupleT) -> str:
        key = ("T", t)
        name = self.m.cache.get(key)
        if name is None:
            name = self.m.cache[key] = self.m.fresh("T")
            n = len(t.elements)
            body = [
                f"{INDENT}if not isinstance(v, tuple): raise TypeError('expected tuple type')",
                f"{INDENT}if len(v) != {n}: raise TypeError('tuple length mismatch')",
                f"{INDENT}kp = ar.keep.append",
                f"{INDENT}a = ar.alloc({VAL_SIZE * max(1, n)})",
            ]
            fmt, values = "<", []
            for i, et in enumerate(t.elements):
                v = f"e{i}"
                body.append(f"{INDENT}{v} = v[{i}]")
                pfmt, exprs = self._payload(et, v, body, INDENT)
                fmt += "B7x" + pfmt
                values += [str(_kind_of(et)), *exprs]
            if values:
                body.append(f"{INDENT}pack_into({fmt!r}, MEM, a, {', '.join(values)})")
            body.append(f"{INDENT}return a")
            self.m.define(function(name, "v, ar", body))
        return name

    # ---- payloads ------------------------------------------------------------------------------------

    def _payload(self, t: ft.Type, v: str, body: list[str], ind: str) -> tuple[str, list[str]]:
        """Append to ``body`` the checks and writes for value expression ``v`` of type ``t``; return the
        24-byte payload struct format and the (side-effect free) expressions that fill it."""
        if isinstance(t, ft.Bool):
            body.append(f"{ind}if {v}.__class__ is not bool: raise TypeError('expected bool for Bool type')")
            return _pad("?"), [v]
        if isinstance(t, ft.Int):
            body.append(f"{ind}if not isinstance({v}, int): raise TypeError('expected int for {t.name} type')")
            body.append(f"{ind}if not {t.lo} <= {v} <= {t.hi}: raise int_range_error({t.name!r}, {v})")
            return _pad(t.code), [v]
        if isinstance(t, ft.Float):
            body.append(f"{ind}if not isinstance({v}, float): raise TypeError('expected float for {t.name} type')")
            return _pad(t.code), [f"f32({v})" if t.code == "f" else v]
        if isinstance(t, ft.Char):
            return self._char(v, body, ind)
        if isinstance(t, ft.String):
            b = self.m.fresh("s")
            body.append(f"{ind}if not isinstance({v}, str): raise TypeError('expected string type')")
            # str.encode, not v.encode: a subclass's encode could return a non-bytes whose id() is no data address.
            body.append(f"{ind}{b} = str_encode({v}, 'utf8'); kp({b})")
            return "QQ8x", [f"len({b})", f"id({b}) + {BYTES_DATA_OFFSET}"]
        if isinstance(t, ft.Enum):
            return self._enum(t, v, body, ind)
        if isinstance(t, ft.List):
            return self._list(t, v, body, ind)
        if isinstance(t, ft.RecordT):
            r = self.m.fresh("r")
            body.append(f"{ind}{r} = {self._record(t)}({v}, ar)")
            return "QQ8x", [str(len(t.fields)), r]
        if isinstance(t, ft.TupleT):
            r = self.m.fresh("t")
            body.append(f"{ind}{r} = {self._tuple(t)}({v}, ar)")
            return "QQ8x", [str(len(t.elements)), r]
        if isinstance(t, ft.Flags):
            n, d = self.m.fresh("n"), self.m.fresh("d")
            body.append(f"{ind}{n}, {d} = lower_flags({v}, ar)")
            return "QQ8x", [n, d]
        return self._variant_like(t, v, body, ind)

    def _char(self, v: str, body: list[str], ind: str) -> tuple[str, list[str]]:
        o = self.m.fresh("o")
        msg = "'expected single-character string for Char type'"
        body.append(f"{ind}if not isinstance({v}, str) or len({v}) != 1: raise TypeError({msg})")
        body.append(f"{ind}{o} = ord({v})")
        # wasmtime's C API unwraps char::from_u32 and would abort the process on a surrogate.
        body.append(f"{ind}if 0xD800 <= {o} <= 0xDFFF: raise TypeError({msg})")
        return _pad("I"), [o]

    def _enum(self, t: ft.Enum, v: str, body: list[str], ind: str) -> tuple[str, list[str]]:
        encoded = {n: n.encode("utf-8") for n in t.names}
        cases = {n: (len(b), id(b) + BYTES_DATA_OFFSET) for n, b in encoded.items()}
        self.m.const(encoded, "KEEP")  # keeps the case names' bytes (and so the addresses) alive
        table = self.m.const(cases, "E")
        e = self.m.fresh("e")
        body.append(f"{ind}if not isinstance({v}, str): raise TypeError('expected str type')")
        body.append(f"{ind}{e} = {table}.get({v})")
        body.append(f"{ind}if {e} is None: raise enum_case_error({v})")
        return "QQ8x", [f"{e}[0]", f"{e}[1]"]

    def _list(self, t: ft.List, v: str, body: list[str], ind: str) -> tuple[str, list[str]]:
        n, d = self.m.fresh("n"), self.m.fresh("d")
        if t.is_bytes:
            body.append(f"{ind}if not isinstance({v}, BYTES): raise TypeError('expected bytes value')")
            body.append(f"{ind}{n}, {d} = ar.byte_list({v})")
            return "QQ8x", [n, d]
        writer = self._writer(t.element)
        i = self.m.fresh("i")
        body.append(f"{ind}if not isinstance({v}, list): raise TypeError('expected list value')")
        body.append(f"{ind}{n} = len({v}); {d} = ar.alloc({VAL_SIZE} * {n} or {VAL_SIZE})")
        # Indexing (not iterating) bounds the writes to the n slots allocated even if the list changes size
        # while its elements are lowered (a property of a host value can run code): a shrunk list raises
        # IndexError instead of leaving unwritten slots for C to read.
        body.append(f"{ind}for {i} in range({n}): {writer}({v}[{i}], {d} + {VAL_SIZE} * {i}, ar)")
        return "QQ8x", [n, d]

    def _variant_like(self, t: ft.VariantLike, v: str, body: list[str], ind: str) -> tuple[str, list[str]]:
        p = self.m.fresh("p")  # payload box address (0: no payload)
        sel = self.m.fresh("c")  # for results: is_ok; for variants: the case's name constant
        tagged = ft.tagged(t)
        if tagged:
            body.append(f"{ind}if not isinstance({v}, Variant): raise TypeError('expected Variant type')")
        payload_expr = f"{v}.payload" if tagged else v
        for i, (case, ct) in enumerate(t.cases):
            if tagged:
                cond = f"{v}.tag == {case!r}"
            elif ct is None:
                cond = f"{v} is None"
            else:
                cond = f"isinstance({v}, {self.m.const(tuple(ft.classes(ct)), 'K')})"
            body.append(f"{ind}{'if' if i == 0 else 'elif'} {cond}:")
            body.append(f"{ind}{INDENT}{sel} = {self._selector(t, case)}")
            if ct is None:
                body.append(f"{ind}{INDENT}{p} = 0")
            else:
                body.append(f"{ind}{INDENT}{p} = ar.alloc({VAL_SIZE}); {self._writer(ct)}({payload_expr}, {p}, ar)")
        body.append(f"{ind}else: raise ValueError({_BAD_CASE!r})")
        if isinstance(t, ft.Option):
            return "Q16x", [p]
        if isinstance(t, ft.ResultT):
            return "?7xQ8x", [sel, p]
        return "QQQ", [f"{sel}[0]", f"{sel}[1]", p]

    def _selector(self, t: ft.VariantLike, case: str) -> str:
        if isinstance(t, ft.ResultT):
            return "True" if case == "ok" else "False"
        if isinstance(t, ft.Option):
            return "None"
        encoded = case.encode("utf-8")
        const = self.m.const(encoded, "N")
        return f"({len(encoded)}, {id(self.m.ns[const]) + BYTES_DATA_OFFSET})"
