"""WIT value types read once from wasmtime into plain, immutable descriptors for the fast call path.

wasmtime-py re-reads a function's type from C on every call (and every record field on every value);
the fast path reads it once per component export and per host import, through wasmtime-py's own type
objects, into the tree below. Nothing here touches values.

The descriptors also carry wasmtime-py's value-mapping rules, because the fast path must accept and
produce exactly the Python values the stock path does (source: wasmtime-py 50.0.1
``component/_types.py``, ``add_classes`` / ``_tagged`` / ``_lower``): a variant, option or result whose
cases lower to overlapping Python classes is "tagged" (``Variant(tag, payload)``); otherwise it is the
bare payload (or ``None`` for a case without one), and lowering picks the first case whose classes
match, in declaration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wasmtime.component import Record, Variant
from wasmtime.component import _types as wt

__all__ = [
    "BYTES_CLASSES",
    "Bool",
    "Char",
    "Enum",
    "Flags",
    "Float",
    "FuncSig",
    "Int",
    "List",
    "Option",
    "RecordT",
    "ResultT",
    "String",
    "TupleT",
    "Type",
    "Unsupported",
    "VariantT",
    "func_sig",
]

BYTES_CLASSES: tuple[type, ...] = (bytes, bytearray, memoryview)
"""What a ``list<u8>`` accepts when lowered (the stock path with ``wasmtime_fixes`` applied)."""


class Unsupported(Exception):
    """A type the fast path leaves to the stock path (resources, futures, streams, error-context, maps)."""


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class Int:
    """name: wasmtime-py's class name ("U8".."S64"); code: struct format; lo/hi: the WIT range."""

    name: str
    code: str
    lo: int
    hi: int


@dataclass(frozen=True)
class Float:
    name: str  # "F32" | "F64"
    code: str  # "f" | "d"


@dataclass(frozen=True)
class Char:
    pass


@dataclass(frozen=True)
class String:
    pass


@dataclass(frozen=True)
class List:
    element: Type

    @property
    def is_bytes(self) -> bool:
        return isinstance(self.element, Int) and self.element.name == "U8"


@dataclass(frozen=True)
class RecordT:
    fields: tuple[tuple[str, Type], ...]


@dataclass(frozen=True)
class TupleT:
    elements: tuple[Type, ...]


@dataclass(frozen=True)
class Enum:
    names: tuple[str, ...]


@dataclass(frozen=True)
class Flags:
    names: tuple[str, ...]


@dataclass(frozen=True)
class VariantT:
    cases: tuple[tuple[str, Type | None], ...]


@dataclass(frozen=True)
class Option:
    payload: Type

    @property
    def cases(self) -> tuple[tuple[str, Type | None], ...]:
        return (("none", None), ("some", self.payload))


@dataclass(frozen=True)
class ResultT:
    ok: Type | None
    err: Type | None

    @property
    def cases(self) -> tuple[tuple[str, Type | None], ...]:
        return (("ok", self.ok), ("err", self.err))


Type = Bool | Int | Float | Char | String | List | RecordT | TupleT | Enum | Flags | VariantT | Option | ResultT
VariantLike = VariantT | Option | ResultT


@dataclass(frozen=True)
class FuncSig:
    """A component function's parameters (names dropped: values are positional) and optional result."""

    params: tuple[Type, ...]
    result: Type | None


_INTS: dict[type, Int] = {
    wt.U8: Int("U8", "B", 0, 2**8 - 1),
    wt.U16: Int("U16", "H", 0, 2**16 - 1),
    wt.U32: Int("U32", "I", 0, 2**32 - 1),
    wt.U64: Int("U64", "Q", 0, 2**64 - 1),
    wt.S8: Int("S8", "b", -(2**7), 2**7 - 1),
    wt.S16: Int("S16", "h", -(2**15), 2**15 - 1),
    wt.S32: Int("S32", "i", -(2**31), 2**31 - 1),
    wt.S64: Int("S64", "q", -(2**63), 2**63 - 1),
}


def from_wasmtime(ty: Any) -> Type:
    """Convert a wasmtime-py ``ValType`` into a descriptor. Raises ``Unsupported``."""
    cls = type(ty)
    if cls in _INTS:
        return _INTS[cls]
    simple: dict[type, Type] = {
        wt.Bool: Bool(), wt.Char: Char(), wt.String: String(), wt.F32: Float("F32", "f"), wt.F64: Float("F64", "d"),
    }
    if cls in simple:
        return simple[cls]
    if isinstance(ty, wt.ListType):
        return List(from_wasmtime(ty.element))
    if isinstance(ty, wt.RecordType):
        return RecordT(tuple((name, from_wasmtime(t)) for name, t in ty.fields))
    if isinstance(ty, wt.TupleType):
        return TupleT(tuple(from_wasmtime(t) for t in ty.elements))
    if isinstance(ty, wt.EnumType):
        return Enum(tuple(ty.names))
    if isinstance(ty, wt.FlagsType):
        return Flags(tuple(ty.names))
    if isinstance(ty, wt.OptionType):
        return Option(from_wasmtime(ty.payload))
    if isinstance(ty, wt.ResultType):
        ok, err = ty.ok, ty.err
        return ResultT(None if ok is None else from_wasmtime(ok), None if err is None else from_wasmtime(err))
    if isinstance(ty, wt.VariantType):
        return VariantT(tuple((name, None if t is None else from_wasmtime(t)) for name, t in ty.cases))
    raise Unsupported(type(ty).__name__)


def func_sig(fty: Any) -> FuncSig:
    """Read a wasmtime-py ``FuncType`` once. Raises ``Unsupported`` (or wasmtime-py's ``TypeError`` for a
    type kind it cannot read, which the caller treats the same way)."""
    result = fty.result
    return FuncSig(
        params=tuple(from_wasmtime(t) for _name, t in fty.params),
        result=None if result is None else from_wasmtime(result),
    )


# ---- wasmtime-py's value-mapping rules -------------------------------------------------------------


def classes(t: Type | None) -> frozenset[type]:
    """The Python classes a value of ``t`` lowers from / lifts to (``object`` for a case without payload)."""
    if t is None:
        return frozenset({object})
    simple: dict[type, type] = {
        Bool: bool, Int: int, Float: float, Char: str, String: str, Enum: str, RecordT: Record, TupleT: tuple,
        Flags: set,
    }
    if type(t) in simple:
        return frozenset({simple[type(t)]})
    if isinstance(t, List):
        return frozenset({bytes if t.is_bytes else list})
    assert isinstance(t, VariantT | Option | ResultT)
    if tagged(t):
        return frozenset({Variant})
    out: frozenset[type] = frozenset()
    for _name, case in t.cases:
        out |= classes(case)
    return out


def tagged(t: VariantLike) -> bool:
    """True when two cases share a Python class, so values must be ``Variant(tag, payload)``."""
    seen: frozenset[type] = frozenset()
    for _name, case in t.cases:
        mine = classes(case)
        if mine & seen:
            return True
        seen |= mine
    return False
