"""Raw memory for the fast call path: the C value layout, a per-thread arena, and direct C entry points.

Layout of ``wasmtime_component_val_t`` in wasmtime 50 (checked against wasmtime-py's ctypes structures at
import; ``LayoutError`` if they ever disagree): 32 bytes, the kind byte at offset 0 and the payload union
at offset 8. A record entry is 48 bytes: the field name (``wasm_name_t``: size, data) then the value.
Vectors (list, tuple, record, flags, strings) are ``(size, data pointer)``; option/result/variant payloads
are pointers to a boxed value.

Ownership rules this module relies on (wasmtime ``crates/c-api/src/component``):
- ``wasmtime_component_func_call`` only reads its arguments (it clones them into Rust values), so
  arguments can live in Python-owned memory: this arena, and the bytes of Python ``bytes`` objects.
- It writes results with Rust-owned allocations; one ``wasmtime_component_val_delete`` on the result frees
  the whole tree.
- A host function's arguments are Rust-owned and dropped by Rust after the callback: read, never free.
- A host function's results are dropped by Rust after the callback, so they must be Rust-owned: the fast
  path builds them in the arena and hands Rust a deep copy (``wasmtime_component_val_clone``).

Python values are read and written through ``MEM``, one memoryview over the process's address space, so
``struct.unpack_from`` / ``pack_into`` work on C memory without a ctypes object per node.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from ctypes import c_size_t, c_void_p
from typing import Any

from wasmtime import _ffi as ffi

__all__ = [
    "BYTES_DATA_OFFSET",
    "ENTRY_SIZE",
    "MEM",
    "PAYLOAD",
    "VAL_SIZE",
    "Arena",
    "LayoutError",
    "arena",
    "bytes_from_list",
    "c_error",
    "func_call",
    "kind",
    "val_clone",
    "val_delete",
]


class LayoutError(RuntimeError):
    """The installed wasmtime-py's C structures differ from what the fast path was written for."""


VAL_SIZE = 32
PAYLOAD = 8
ENTRY_SIZE = 48
NAME_SIZE = 16

MEM = memoryview((ctypes.c_char * (1 << 48)).from_address(0)).cast("B")
"""The address space as bytes. Reading or writing a wrong address crashes like any ctypes misuse."""

BYTES_DATA_OFFSET = sys.getsizeof(b"") - 1
"""Where a ``bytes`` object's data starts relative to ``id()`` (CPython's PyBytesObject.ob_sval); checked
below, so a Python whose layout differs fails at import instead of at a call."""


def _offset(structure: Any, name: str) -> int:
    return int(getattr(structure, name).offset)


def _check_layout() -> None:
    val = ffi.wasmtime_component_val_t
    entry = ffi.wasmtime_component_valrecord_entry_t
    checks = {
        "val size": (ctypes.sizeof(val), VAL_SIZE),
        "payload offset": (_offset(val, "of"), PAYLOAD),
        "record entry size": (ctypes.sizeof(entry), ENTRY_SIZE),
        "record entry value offset": (_offset(entry, "val"), NAME_SIZE),
        "list data offset": (_offset(ffi.wasmtime_component_vallist_t, "data"), 8),
        "name data offset": (_offset(ffi.wasm_byte_vec_t, "data"), 8),
        "result payload offset": (_offset(ffi.wasmtime_component_valresult_t, "val"), 8),
        "variant payload offset": (_offset(ffi.wasmtime_component_valvariant_t, "val"), 16),
    }
    for what, (found, expected) in checks.items():
        if found != expected:
            raise LayoutError(f"wasmtime_component_val_t {what} is {found}, expected {expected}")
    probe = b"layout-probe"
    if ctypes.cast(ctypes.c_char_p(probe), c_void_p).value != id(probe) + BYTES_DATA_OFFSET:
        raise LayoutError("bytes objects do not keep their data at the expected offset")


_check_layout()


def kind(name: str) -> int:
    """The kind byte of ``WASMTIME_COMPONENT_<name>``."""
    return int(getattr(ffi, f"WASMTIME_COMPONENT_{name}").value)


# ---- direct C entry points (own prototypes: raw addresses in, no ctypes pointer objects) -------------

_dll = ffi.dll
func_call = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t)(
    ("wasmtime_component_func_call", _dll)
)
val_delete = ctypes.CFUNCTYPE(None, c_void_p)(("wasmtime_component_val_delete", _dll))
val_clone = ctypes.CFUNCTYPE(None, c_void_p, c_void_p)(("wasmtime_component_val_clone", _dll))
_error_new = ctypes.CFUNCTYPE(c_void_p, ctypes.c_char_p)(("wasmtime_error_new", _dll))


def c_error(message: str) -> int:
    """A new ``wasmtime_error_t`` (owned by whoever receives it: a host function returns it to wasmtime)."""
    ptr = _error_new(message.encode("utf-8"))
    assert ptr is not None
    return int(ptr)


# ---- list<u8> ----------------------------------------------------------------------------------------

_U8 = kind("U8")
_BYTE_CHUNK = 1 << 16  # elements per copy when lifting: bounds the temporary to 2 MiB


def _patterned(n: int) -> bytearray:
    """``n`` value slots whose kind byte is already ``u8`` (only the payload byte is written per call)."""
    buf = bytearray(n * VAL_SIZE)
    buf[0::VAL_SIZE] = bytes([_U8]) * n
    return buf


class _PatternPool:
    """Large pre-patterned ``list<u8>`` buffers, shared by all threads and reused: writing the kind byte of
    every slot is most of the cost of laying out a big list, so it is done once per buffer. Capacities are
    powers of two (at least 128 Ki slots); at most ``CACHE_BYTES`` are kept, and a list too big to cache
    gets a buffer of its own."""

    CACHE_BYTES = 64 << 20

    def __init__(self) -> None:
        self._free: list[bytearray] = []
        self._cached = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytearray:
        need = n * VAL_SIZE
        with self._lock:
            fits = [b for b in self._free if len(b) >= need]
            if fits:
                buf = min(fits, key=len)
                self._free.remove(buf)
                self._cached -= len(buf)
                return buf
        slots = max(1 << 17, 1 << (n - 1).bit_length())
        return _patterned(slots if slots * VAL_SIZE <= self.CACHE_BYTES else n)

    def give(self, buf: bytearray) -> None:
        with self._lock:
            if self._cached + len(buf) <= self.CACHE_BYTES:
                self._free.append(buf)
                self._cached += len(buf)


_pattern_pool = _PatternPool()


def bytes_from_list(data: int, n: int) -> bytes:
    """Lift a ``list<u8>`` whose ``n`` values start at ``data``: one C-level copy and one strided slice per
    64 Ki elements (no Python object per byte)."""
    if n <= _BYTE_CHUNK:
        return ctypes.string_at(data, n * VAL_SIZE)[PAYLOAD::VAL_SIZE] if n else b""
    parts = []
    for start in range(0, n, _BYTE_CHUNK):
        m = min(_BYTE_CHUNK, n - start)
        parts.append(ctypes.string_at(data + start * VAL_SIZE, m * VAL_SIZE)[PAYLOAD::VAL_SIZE])
    return b"".join(parts)


# ---- the arena -----------------------------------------------------------------------------------------

_CHUNK = 1 << 16  # bytes per arena chunk
_U8_SLOTS = 1 << 16  # list<u8> slots kept pre-patterned per thread (2 MiB)

Mark = tuple[int, int, int, int, int, int]


class Arena:
    """Bump allocator for values that C only reads during one call. One per thread; not thread-safe.

    ``alloc`` hands out 8-aligned addresses from 64 KiB chunks (larger requests get their own buffer);
    ``keep`` holds the ``bytes`` objects whose data C reads in place. ``mark``/``release`` make it a
    stack: a host function that runs inside an export call allocates above the call's own values.
    """

    def __init__(self) -> None:
        self._chunks: list[Any] = []
        self._big: list[Any] = []
        self._pooled: list[bytearray] = []  # taken from the pattern pool, given back on release
        self.keep: list[Any] = []
        self._chunk_index = -1
        self._top = 0
        self._end = 0
        self._new_chunk()
        self._u8 = _patterned(_U8_SLOTS)
        self._u8_addr = ctypes.addressof((ctypes.c_char * len(self._u8)).from_buffer(self._u8))
        self._u8_used = 0

    def _new_chunk(self) -> None:
        self._chunk_index += 1
        if self._chunk_index == len(self._chunks):
            self._chunks.append(ctypes.create_string_buffer(_CHUNK))
        base = ctypes.addressof(self._chunks[self._chunk_index])
        self._top, self._end = base, base + _CHUNK

    def alloc(self, size: int) -> int:
        """``size`` bytes (a multiple of 8), uninitialised, valid until the matching ``release``."""
        top = self._top
        if top + size <= self._end:
            self._top = top + size
            return top
        if size > _CHUNK // 4:
            buf = ctypes.create_string_buffer(size)
            self._big.append(buf)
            return ctypes.addressof(buf)
        self._new_chunk()
        return self.alloc(size)

    def byte_list(self, data: Any) -> tuple[int, int]:
        """Lay out ``data`` (bytes-like) as a ``list<u8>``; returns (length, address of the values)."""
        if type(data) is not bytes and type(data) is not bytearray:
            data = bytes(data)
        n = len(data)
        used = self._u8_used
        if used + n <= _U8_SLOTS:
            start = used * VAL_SIZE + PAYLOAD
            self._u8[start:start + n * VAL_SIZE:VAL_SIZE] = data
            self._u8_used = used + n
            return n, self._u8_addr + used * VAL_SIZE
        buf = _pattern_pool.take(n)
        self._pooled.append(buf)
        buf[PAYLOAD:PAYLOAD + n * VAL_SIZE:VAL_SIZE] = data
        return n, ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))

    def mark(self) -> Mark:
        return (self._chunk_index, self._top, len(self.keep), len(self._big), self._u8_used, len(self._pooled))

    def release(self, mark: Mark) -> None:
        chunk_index, top, keep, big, u8_used, pooled = mark
        while len(self._pooled) > pooled:
            _pattern_pool.give(self._pooled.pop())
        if chunk_index != self._chunk_index:
            self._chunk_index = chunk_index
            base = ctypes.addressof(self._chunks[chunk_index])
            self._end = base + _CHUNK
        self._top = top
        del self.keep[keep:]
        del self._big[big:]
        self._u8_used = u8_used


_local = threading.local()


def arena() -> Arena:
    """This thread's arena (created on first use)."""
    try:
        a: Arena = _local.arena
    except AttributeError:
        a = _local.arena = Arena()
    return a
