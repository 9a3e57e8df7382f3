"""Tested fixes for two defects of wasmtime-py 50.0.1's component value conversion.

This is the only module that patches wasmtime-py. It is applied once, by ``apply()``, before any
component value crosses the boundary; ``airlock.runtime`` calls it on import. Each fix has a test in
``tests/runtime/test_wasmtime_fixes.py`` that fails without it. Source of both defects:
``shared/design/wasmtime-py-notes.md`` ("Known defects in 50.0.1").

1. ``list<u8>`` is converted one byte at a time in Python (``ListType.convert_to_c`` calls
   ``U8.convert_to_c`` per element; ``convert_from_c`` builds a list of ints). About 1.2 MB/s, so a 1 MB
   webhook body costs close to a second. The fix lays the C array of ``wasmtime_component_val_t`` out in
   place through strided memoryview writes (kind byte at offset 0, payload byte at the union's
   offset, 32-byte stride); lifting slices the payload bytes out of one ``string_at`` copy.

2. Every lifted ``option``/``result``/``variant`` payload leaks its heap box (~48 bytes):
   ``VariantLikeType._lift`` drops the box's contents with ``wasmtime_component_val_delete`` but never
   frees the box. Freeing it naively double-frees when the value is a host import's argument, because
   wasmtime still owns and later drops the parent. The fix frees the box with
   ``wasmtime_component_val_free`` and then marks the parent "moved" (kind ``bool``), so whoever drops
   the parent later drops nothing.

3. Host values that do not fit their WIT type reach wasmtime unchecked: an integer out of range is
   silently truncated by ctypes (70000 as a ``u16`` became 4464), and an enum string that names no case
   is refused by wasmtime as a trap, which blames the guest for the host's value. The fix checks both in
   Python and raises ``ValueError`` (``int_range_error`` / ``enum_case_error``; the fast call path raises
   the same), so the callback fails as a host bug.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from importlib.metadata import version as _dist_version
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import _types as wt_types

__all__ = ["VAL_SIZE", "apply", "enum_case_error", "int_range_error", "is_applied"]

EXPECTED_VERSION = "50.0.1"
VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD_OFFSET = ffi.wasmtime_component_val_t.of.offset
_KIND_U8 = int(ffi.WASMTIME_COMPONENT_U8.value)
_KIND_BOOL = ffi.WASMTIME_COMPONENT_BOOL
_KIND_U8_BYTE = bytes([_KIND_U8])

_applied = False
_originals: dict[str, Any] = {}

_INT_RANGES: dict[type, tuple[int, int]] = {
    wt_types.U8: (0, 2**8 - 1), wt_types.U16: (0, 2**16 - 1), wt_types.U32: (0, 2**32 - 1),
    wt_types.U64: (0, 2**64 - 1), wt_types.S8: (-(2**7), 2**7 - 1), wt_types.S16: (-(2**15), 2**15 - 1),
    wt_types.S32: (-(2**31), 2**31 - 1), wt_types.S64: (-(2**63), 2**63 - 1),
}


def int_range_error(type_name: str, value: int) -> ValueError:
    """The error for an integer that does not fit ``type_name`` (wasmtime-py's class name, e.g. "U16")."""
    return ValueError(f"{value} is out of range for {type_name.lower()}")


def enum_case_error(value: str) -> ValueError:
    """The error for a string that names no case of the enum it is lowered as."""
    shown = value if len(value) <= 40 else value[:40] + "..."
    return ValueError(f"{shown!r} is not a case of the enum")


def _is_byte_list(ty: Any) -> bool:
    # The element type is re-read from C on every access; cache the answer on the type object.
    cached = getattr(ty, "_airlock_is_bytes", None)
    if cached is None:
        cached = isinstance(ty.element, wt_types.U8)
        ty._airlock_is_bytes = cached
    return bool(cached)


def _bytes_to_c(val: Any, ptr: Any) -> None:
    """Lower ``bytes`` into a ``list<u8>`` value with one allocation and one copy."""
    if not isinstance(val, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes value")
    data = bytes(val)
    n = len(data)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        # Write the kind byte and the payload byte of each element straight into the uninitialised C
        # array through a strided memoryview: no per-element Python work, no temporary copy. The other
        # bytes of each element are never read for a u8 value.
        addr = ctypes.cast(raw.data, ctypes.c_void_p).value
        assert addr is not None  # new_uninit(n > 0) returned a buffer
        view = memoryview((ctypes.c_ubyte * (n * VAL_SIZE)).from_address(addr)).cast("B")
        view[0::VAL_SIZE] = _KIND_U8_BYTE * n
        view[_PAYLOAD_OFFSET::VAL_SIZE] = data
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _bytes_from_c(c: Any) -> bytes:
    """Lift a ``list<u8>`` value into ``bytes`` with one copy, then free the C list."""
    try:
        n = int(c.of.list.size)
        if n == 0:
            return b""
        return ctypes.string_at(c.of.list.data, n * VAL_SIZE)[_PAYLOAD_OFFSET::VAL_SIZE]
    finally:
        ffi.wasmtime_component_vallist_delete(byref(c.of.list))


def _patched_list_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
    if _is_byte_list(self):
        _bytes_to_c(val, ptr)
        return
    _originals["list_to_c"](self, store, val, ptr)


def _patched_list_from_c(self: Any, c: Any) -> Any:
    if _is_byte_list(self):
        assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value
        return _bytes_from_c(c)
    return _originals["list_from_c"](self, c)


def _patched_lift(self: Any, tag: str, ptr: Any) -> Any:
    """Stock ``_lift`` plus freeing the payload's heap box (defect 2)."""
    tagged = self._tagged()
    for name, ty in self._cases():
        if name != tag:
            continue
        if ty is None:
            return wt_types.Variant(tag) if tagged else None
        payload = ty.convert_from_c(ptr.contents)
        ptr.contents.kind = _KIND_BOOL
        ptr.contents.of.boolean = False
        ffi.wasmtime_component_val_free(ptr)
        return wt_types.Variant(tag, payload) if tagged else payload
    raise ValueError(f"tag {tag} not found in variant cases")


def _mark_moved(c: Any) -> None:
    # The payload box was freed by _patched_lift; the parent must not point at it any more.
    c.kind = _KIND_BOOL
    c.of.boolean = False


def _wrap_from_c(key: str) -> Any:
    original = _originals[key]

    def convert_from_c(self: Any, c: Any) -> Any:
        value = original(self, c)
        _mark_moved(c)
        return value

    return convert_from_c


def _checked_int(cls: type, lo: int, hi: int) -> Any:
    original = _originals[cls.__name__]

    def convert_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        if isinstance(val, int) and not lo <= val <= hi:
            raise int_range_error(cls.__name__, val)
        original(self, store, val, ptr)

    return convert_to_c


def _enum_names(ty: Any) -> frozenset[str]:
    cached = getattr(ty, "_airlock_names", None)
    if cached is None:
        cached = frozenset(ty.names)
        ty._airlock_names = cached
    return frozenset(cached)


def _checked_enum_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
    if isinstance(val, str) and val not in _enum_names(self):
        raise enum_case_error(val)
    _originals["enum_to_c"](self, store, val, ptr)


def apply() -> None:
    """Install both fixes into wasmtime-py. Idempotent.

    Raises:
        RuntimeError: the installed wasmtime-py is not 50.0.1 (the fixes patch its internals, so another
            version must be re-checked before they are trusted).
    """
    global _applied
    if _applied:
        return
    version = _dist_version("wasmtime")
    if version != EXPECTED_VERSION:
        raise RuntimeError(f"wasmtime_fixes targets wasmtime-py {EXPECTED_VERSION}, found {version}")
    _originals["list_to_c"] = wt_types.ListType.convert_to_c
    _originals["list_from_c"] = wt_types.ListType.convert_from_c
    _originals["lift"] = wt_types.VariantLikeType._lift
    for cls in (wt_types.OptionType, wt_types.ResultType, wt_types.VariantType):
        _originals[cls.__name__] = cls.convert_from_c
    for int_cls in _INT_RANGES:
        _originals[int_cls.__name__] = getattr(int_cls, "convert_to_c")  # noqa: B009 (typed as type)
    _originals["enum_to_c"] = wt_types.EnumType.convert_to_c
    wt_types.ListType.convert_to_c = _patched_list_to_c  # type: ignore[method-assign]
    wt_types.ListType.convert_from_c = _patched_list_from_c  # type: ignore[method-assign]
    wt_types.VariantLikeType._lift = _patched_lift  # type: ignore[method-assign]
    for cls in (wt_types.OptionType, wt_types.ResultType, wt_types.VariantType):
        cls.convert_from_c = _wrap_from_c(cls.__name__)  # type: ignore[method-assign]
    for int_cls, (lo, hi) in _INT_RANGES.items():
        setattr(int_cls, "convert_to_c", _checked_int(int_cls, lo, hi))  # noqa: B010 (typed as type)
    wt_types.EnumType.convert_to_c = _checked_enum_to_c  # type: ignore[method-assign]
    _applied = True


def is_applied() -> bool:
    """True once ``apply()`` has installed the fixes."""
    return _applied


def _unapply_for_tests() -> None:
    """Restore stock wasmtime-py (tests use this to show each fix is needed)."""
    global _applied
    if not _applied:
        return
    wt_types.ListType.convert_to_c = _originals["list_to_c"]  # type: ignore[method-assign]
    wt_types.ListType.convert_from_c = _originals["list_from_c"]  # type: ignore[method-assign]
    wt_types.VariantLikeType._lift = _originals["lift"]  # type: ignore[method-assign]
    for cls in (wt_types.OptionType, wt_types.ResultType, wt_types.VariantType):
        cls.convert_from_c = _originals[cls.__name__]  # type: ignore[method-assign]
    for int_cls in _INT_RANGES:
        setattr(int_cls, "convert_to_c", _originals[int_cls.__name__])  # noqa: B010 (typed as type)
    wt_types.EnumType.convert_to_c = _originals["enum_to_c"]  # type: ignore[method-assign]
    _applied = False
