"""Lifting for the fast call path: ``wasmtime_component_val_t`` trees in C memory -> Python values.

``Lifter.params(sig)`` gives ``fn(address) -> tuple`` (a host function's arguments, owned and later freed
by wasmtime); ``Lifter.value(t)`` gives ``fn(address) -> value`` (an export's result, which the caller
frees with one ``wasmtime_component_val_delete``). Lifting only reads: no per-node frees, no ctypes
objects, one ``struct.unpack_from`` per record, tuple or argument list. Values are the stock path's:
``Record`` objects whose attributes carry the WIT names, ``bytes`` for ``list<u8>``, bare or tagged
variants by the same rule (``fastpath_types.tagged``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from wasmtime.component import Record, Variant

from . import fastpath_types as ft
from .fastpath_codegen import INDENT, Module, function, unpack_targets
from .fastpath_memory import ENTRY_SIZE, MEM, PAYLOAD, VAL_SIZE, bytes_from_list

__all__ = ["LiftFn", "Lifter", "ParamsLiftFn"]

LiftFn = Callable[[int], Any]
ParamsLiftFn = Callable[[int], tuple[Any, ...]]

_SIZES = {"B": 1, "b": 1, "H": 2, "h": 2, "I": 4, "i": 4, "Q": 8, "q": 8, "f": 4, "d": 8, "?": 1}


def _pad(code: str) -> str:
    return f"{code}{24 - _SIZES[code]}x"


def _lift_flags(n: int, data: int) -> set[str]:
    return {str(MEM[p:p + size], "utf-8") for size, p in struct.iter_unpack("<QQ", MEM[data:data + 16 * n])}


class Lifter:
    """Compiles lifting functions; one per component (types repeat across its functions)."""

    def __init__(self, label: str) -> None:
        self.m = Module(f"lift {label}", {
            "MEM": MEM, "unpack_from": struct.unpack_from, "Record": Record, "Variant": Variant,
            "bytes_from_list": bytes_from_list, "lift_flags": _lift_flags,
        })

    # ---- public --------------------------------------------------------------------------------------

    def params(self, sig: ft.FuncSig) -> ParamsLiftFn:
        """``fn(address) -> tuple`` of the ``len(sig.params)`` values at ``address``."""
        name = self.m.fresh("LP")
        targets: list[str] = []
        fmt, exprs = "<", []
        for t in sig.params:
            pfmt, expr = self._payload(t, targets)
            fmt += f"{PAYLOAD}x" + pfmt
            exprs.append(expr)
        body: list[str] = []
        if exprs:
            names = [x for group in targets for x in group.split(",")]
            body.append(f"{INDENT}{unpack_targets(names)} = unpack_from({fmt!r}, MEM, a)")
        body.append(f"{INDENT}return ({', '.join(exprs)}{',' if len(exprs) == 1 else ''})")
        self.m.define(function(name, "a", body))
        self.m.build()
        return self.m.get(name)

    def value(self, t: ft.Type) -> LiftFn:
        """``fn(address) -> value`` for one value of ``t``."""
        name = self._reader(t)
        self.m.build()
        return self.m.get(name)

    # ---- generated functions -------------------------------------------------------------------------

    def _reader(self, t: ft.Type) -> str:
        """Name of ``L(a)``: the value of ``t`` stored at ``a``."""
        key = ("L", t)
        name = self.m.cache.get(key)
        if name is None:
            name = self.m.cache[key] = self.m.fresh("L")
            targets: list[str] = []
            fmt, expr = self._payload(t, targets)
            names = [x for line in targets for x in line.split(",")]
            body = [
                f"{INDENT}{unpack_targets(names)} = unpack_from({'<' + str(PAYLOAD) + 'x' + fmt!r}, MEM, a)",
                f"{INDENT}return {expr}",
            ]
            self.m.define(function(name, "a", body))
        return name

    def _entries(self, t: ft.RecordT | ft.TupleT) -> str:
        """Name of ``R(d)``: the record (or tuple) whose entry array starts at ``d``."""
        key = ("R", t)
        name = self.m.cache.get(key)
        if name is None:
            name = self.m.cache[key] = self.m.fresh("RL")
            targets: list[str] = []
            fmt, exprs = "<", []
            if isinstance(t, ft.RecordT):
                skip = ENTRY_SIZE - VAL_SIZE + PAYLOAD  # the field name and the kind
                for field, ftype in t.fields:
                    pfmt, expr = self._payload(ftype, targets)
                    fmt += f"{skip}x" + pfmt
                    exprs.append(f"{field!r}: {expr}")
                result = f"r = Record(); r.__dict__.update({{{', '.join(exprs)}}}); return r"
            else:
                for et in t.elements:
                    pfmt, expr = self._payload(et, targets)
                    fmt += f"{PAYLOAD}x" + pfmt
                    exprs.append(expr)
                result = f"return ({', '.join(exprs)}{',' if len(exprs) == 1 else ''})"
            names = [x for line in targets for x in line.split(",")]
            body = [f"{INDENT}{unpack_targets(names)} = unpack_from({fmt!r}, MEM, d)"] if names else []
            body.append(f"{INDENT}{result}")
            self.m.define(function(name, "d", body))
        return name

    def _variant(self, t: ft.VariantT) -> str:
        """Name of ``VL(n, s, p)``: the variant whose case name is ``n`` bytes at ``s``, payload box ``p``."""
        key = ("V", t)
        name = self.m.cache.get(key)
        if name is None:
            name = self.m.cache[key] = self.m.fresh("VL")
            tagged = ft.tagged(t)
            body = [f"{INDENT}tag = str(MEM[s:s + n], 'utf-8')"]
            for case, ct in t.cases:
                body.append(f"{INDENT}if tag == {case!r}: return {self._case(case, ct, 'p', tagged)}")
            body.append(f"{INDENT}raise ValueError(f'tag {{tag}} not found in variant cases')")
            self.m.define(function(name, "n, s, p", body))
        return name

    # ---- payloads ------------------------------------------------------------------------------------

    def _payload(self, t: ft.Type, targets: list[str]) -> tuple[str, str]:
        """Register in ``targets`` the locals a 24-byte payload of ``t`` unpacks into; return the payload's
        struct format and the expression that builds the Python value from those locals."""

        def new(*prefixes: str) -> list[str]:
            names = [self.m.fresh(p) for p in prefixes]
            targets.append(",".join(names))
            return names

        if isinstance(t, ft.Bool | ft.Int | ft.Float):
            (x,) = new("x")
            return _pad("?" if isinstance(t, ft.Bool) else t.code), x
        if isinstance(t, ft.Char):
            (x,) = new("x")
            return _pad("I"), f"chr({x})"
        if isinstance(t, ft.String | ft.Enum):
            n, p = new("n", "p")
            return "QQ8x", f"(str(MEM[{p}:{p} + {n}], 'utf-8') if {n} else '')"
        if isinstance(t, ft.List):
            n, d = new("n", "d")
            if t.is_bytes:
                return "QQ8x", f"bytes_from_list({d}, {n})"
            reader = self._reader(t.element)
            return "QQ8x", f"[{reader}({d} + {VAL_SIZE} * i) for i in range({n})]"
        if isinstance(t, ft.RecordT | ft.TupleT):
            _n, d = new("n", "d")
            return "QQ8x", f"{self._entries(t)}({d})"
        if isinstance(t, ft.Flags):
            n, d = new("n", "d")
            return "QQ8x", f"lift_flags({n}, {d})"
        if isinstance(t, ft.Option):
            (p,) = new("p")
            tagged = ft.tagged(t)
            some, none = self._case("some", t.payload, p, tagged), self._case("none", None, p, tagged)
            return "Q16x", f"({some} if {p} else {none})"
        if isinstance(t, ft.ResultT):
            ok, p = new("ok", "p")
            tagged = ft.tagged(t)
            return "?7xQ8x", f"({self._case('ok', t.ok, p, tagged)} if {ok} else {self._case('err', t.err, p, tagged)})"
        n, s, p = new("n", "s", "p")
        return "QQQ", f"{self._variant(t)}({n}, {s}, {p})"

    def _case(self, case: str, ct: ft.Type | None, p: str, tagged: bool) -> str:
        payload = "None" if ct is None else f"{self._reader(ct)}({p})"
        if not tagged:
            return payload
        return f"Variant({case!r})" if ct is None else f"Variant({case!r}, {payload})"
