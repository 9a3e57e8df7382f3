"""The fast call path's own guarantees: the switch, the per-function fallback to stock conversion, no
native leak over 100k lifts, memory hygiene of the arena, and thread safety. (Value-for-value and
error-for-error equality with the stock path: ``test_fastpath_equivalence.py``.)"""

from __future__ import annotations

import ctypes
import struct
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from echohost import ECHO_FUNCTIONS, EchoApi, load_echo
from wasmtime.component import Record, Variant

from airlock.errors import GuestTrap
from airlock.host_config import HostConfig
from airlock.runtime import fastpath as fp
from airlock.runtime import fastpath_types as ft
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.fastpath_memory import MEM, VAL_SIZE, Arena, bytes_from_list, kind
from airlock.runtime.instance import Limits, Sandbox

MB = 1024 * 1024


@pytest.fixture(scope="module")
def echo(runtime: Runtime, wat_dir: Path) -> LoadedComponent:
    return load_echo(runtime, wat_dir / "echo")


def fast_sandbox(runtime: Runtime) -> Sandbox:
    return Sandbox(runtime, fastpath=True, host_functions=ECHO_FUNCTIONS)


# ---- the switch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "expected"), [
    (None, True), ("1", True), ("yes", True), ("0", False), ("false", False), ("OFF", False), (" no ", False),
])
def test_environment_switch(monkeypatch: pytest.MonkeyPatch, env: str | None, expected: bool) -> None:
    if env is None:
        monkeypatch.delenv(fp.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(fp.ENV_VAR, env)
    assert fp.enabled() is expected
    assert fp.enabled(True) is True and fp.enabled(False) is False  # an explicit flag wins


def test_sandbox_and_host_config_follow_the_switch(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fp.ENV_VAR, "0")
    assert Sandbox(runtime).fastpath is False
    assert Sandbox(runtime, fastpath=True).fastpath is True
    assert HostConfig().fastpath is None  # the host config defers to the environment by default
    monkeypatch.delenv(fp.ENV_VAR)
    assert Sandbox(runtime).fastpath is True
    assert Sandbox(runtime, fastpath=HostConfig(fastpath=False).fastpath).fastpath is False


def test_switched_off_uses_no_fast_converters(runtime: Runtime, echo: LoadedComponent) -> None:
    stock = Sandbox(runtime, fastpath=False, host_functions=ECHO_FUNCTIONS)
    assert stock.fast_component(echo) is None
    value, _ = stock.call(echo, "echo-string", ("x",), EchoApi(), Limits())
    assert value == "x"


# ---- fallback, chosen once per function ----------------------------------------------------------------


@pytest.fixture
def refuse_tuples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``func_sig`` refuse functions with a tuple parameter, as it refuses resources and streams (the
    echo world has none of those); in the echo world that is ``echo-tuple``, export and host import."""
    real = ft.func_sig

    def func_sig(fty: Any) -> ft.FuncSig:
        sig = real(fty)
        if any(isinstance(p, ft.TupleT) for p in sig.params):
            raise ft.Unsupported("own<test-resource>")
        return sig

    monkeypatch.setattr(ft, "func_sig", func_sig)


def test_unsupported_types_fall_back_to_stock(runtime: Runtime, echo: LoadedComponent, refuse_tuples: None) -> None:
    sandbox = fast_sandbox(runtime)
    fc = sandbox.fast_component(echo)
    assert fc is not None
    assert [name for name, export in fc.exports.items() if export is None] == ["echo-tuple"]
    assert not fc.imports_ok and "echo-tuple" not in fc.imports
    assert set(sandbox._linkers) == set()
    for export, value in [("echo-tuple", (1, "ü", True)), ("echo-u8", 9), ("echo-bytes", b"\x00\xff")]:
        api = EchoApi()
        result, _ = sandbox.call(echo, export, (value,), api, Limits())
        assert result == value and api.trace == [(export, (value,))]
    # The component's host imports run on a stock linker (stock trampolines, stock conversion).
    assert set(sandbox._linkers) == {(echo.world.host_interface, False, False)}


def test_supported_component_gets_the_fast_linker(runtime: Runtime, echo: LoadedComponent) -> None:
    sandbox = fast_sandbox(runtime)
    sandbox.call(echo, "echo-u8", (1,), EchoApi(), Limits())
    assert set(sandbox._linkers) == {(echo.world.host_interface, False, True)}


def test_export_with_an_unsupported_type_is_called_through_stock(
    runtime: Runtime, echo: LoadedComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = fast_sandbox(runtime)
    fc = sandbox.fast_component(echo)
    assert fc is not None
    monkeypatch.setitem(fc.exports, "echo-strings", None)  # what compile_component stores for a refused export
    calls = {"stock": 0}
    real_call = wasmtime.component.Func.__call__

    def counting(self: Any, store: Any, *args: Any) -> Any:
        calls["stock"] += 1
        return real_call(self, store, *args)

    monkeypatch.setattr(wasmtime.component.Func, "__call__", counting)
    value, _ = sandbox.call(echo, "echo-strings", (["a", "ü"],), EchoApi(), Limits())
    assert value == ["a", "ü"] and calls["stock"] == 1
    sandbox.call(echo, "echo-string", ("x",), EchoApi(), Limits())
    assert calls["stock"] == 1  # the other exports stay on the fast path


# ---- no leak -------------------------------------------------------------------------------------------


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _native_heap_in_use() -> int:
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _session(sandbox: Sandbox, loaded: LoadedComponent, calls: list[tuple[str, tuple[Any, ...]]], repeat: int,
             check: Any) -> None:
    """Call ``calls`` ``repeat`` times on one instance."""
    api = EchoApi()
    with sandbox.reused_instance(loaded, api, Limits(fuel=10**15, timeout_s=3600)) as call:
        for _ in range(repeat):
            for name, args in calls:
                check(args, call(name, args))
            api.trace.clear()


def test_no_native_leak_over_100k_option_and_result_lifts(runtime: Runtime, echo: LoadedComponent) -> None:
    """Each call lifts its argument in the host import (wasmtime-owned), lowers the host's answer (a clone
    wasmtime frees) and lifts the export's result (freed with one val_delete): option, tagged option,
    untagged and tagged results, all with payload boxes."""
    sandbox = fast_sandbox(runtime)
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("echo-opt-u64", (2**64 - 1,)), ("echo-opt-opt-string", (Variant("some", None),)),
        ("echo-res-u8-s8", (Variant("err", -1),)), ("echo-res-u32", (7,)), ("echo-opt-res", (Variant("some", None),)),
    ]

    def check(args: tuple[Any, ...], value: Any) -> None:
        assert value == args[0]

    _session(sandbox, echo, calls, 1000, check)  # warm up allocators and caches
    heap, blocks = _native_heap_in_use(), sys.getallocatedblocks()
    _session(sandbox, echo, calls, 20_000, check)  # 100k calls, each lifting 2 values with payload boxes
    heap_growth, block_growth = _native_heap_in_use() - heap, sys.getallocatedblocks() - blocks
    print(f"after 100k calls: native heap {heap_growth / 1024:+.0f} KiB, Python blocks {block_growth:+d}")
    assert heap_growth < 256 * 1024  # a leaked 48-byte box per lift would be 9 MiB
    assert block_growth < 1000


# ---- the arena -----------------------------------------------------------------------------------------


def test_arena_mark_and_release_reuse_memory() -> None:
    ar = Arena()
    mark = ar.mark()
    first = ar.alloc(64)
    keep = b"kept while marked"
    ar.keep.append(keep)
    big = ar.alloc(1 << 20)  # its own buffer
    MEM[big:big + 8] = b"12345678"
    ar.release(mark)
    assert ar.keep == [] and ar.alloc(64) == first
    many = [ar.alloc(4096) for _ in range(40)]  # crosses into more chunks
    assert len(set(many)) == 40
    ar.release(mark)
    assert ar.alloc(8) == first


def test_byte_lists_beyond_the_patterned_slab() -> None:
    ar = Arena()
    mark = ar.mark()
    small, large = bytes(range(256)) * 4, bytes(range(251)) * 1000  # the second overflows the 64 Ki slab
    for data in (small, large, b"", bytearray(b"xy"), memoryview(b"zz")):
        n, addr = ar.byte_list(data)
        assert n == len(data)
        if n:
            kinds = ctypes.string_at(addr, n * VAL_SIZE)[0::VAL_SIZE]
            assert kinds == bytes([kind("U8")]) * n
        assert bytes_from_list(addr, n) == bytes(data)
    ar.release(mark)


def test_bytes_from_list_in_chunks() -> None:
    n = 200_000  # over one 64 Ki chunk
    buf = bytearray(n * VAL_SIZE)
    data = bytes((i * 7) % 256 for i in range(n))
    buf[8::VAL_SIZE] = data
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    assert bytes_from_list(addr, n) == data


def test_record_layout_written_by_the_lowerer(runtime: Runtime, echo: LoadedComponent) -> None:
    """A lowered record is what wasmtime's C API expects: 48-byte entries, name (size, data), then the
    32-byte value (kind byte, payload at 8)."""
    from airlock.runtime.fastpath_lower import Lowerer

    t = ft.RecordT((("status", ft.Int("U16", "H", 0, 65535)), ("headers-json", ft.String())))
    low = Lowerer("layout")
    ar = Arena()
    r = Record()
    setattr(r, "status", 404)  # noqa: B010
    setattr(r, "headers-json", "{}")
    addr = low.value(t)(r, ar)
    kind_byte, n, entries = struct.unpack_from("<B7xQQ", MEM, addr)
    assert (kind_byte, n) == (kind("RECORD"), 2)
    name_len, name_ptr, k0, status = struct.unpack_from("<QQB7xH", MEM, entries)
    assert ctypes.string_at(name_ptr, name_len) == b"status" and (k0, status) == (kind("U16"), 404)
    name_len, name_ptr, k1, slen, sptr = struct.unpack_from("<QQB7xQQ", MEM, entries + 48)
    assert ctypes.string_at(name_ptr, name_len) == b"headers-json" and k1 == kind("STRING")
    assert ctypes.string_at(sptr, slen) == b"{}"


# ---- threads -------------------------------------------------------------------------------------------


def test_concurrent_callbacks_keep_their_own_values(runtime: Runtime, echo: LoadedComponent) -> None:
    """Host-import converters and arenas are per thread: two threads calling at once never see each other's
    values."""
    sandbox = fast_sandbox(runtime)
    errors: list[str] = []

    def worker(tag: str) -> None:
        for i in range(150):
            body = f"{tag}-{i}-".encode() * (i + 1)
            api = EchoApi()
            value, _ = sandbox.call(echo, "echo-bytes", (body,), api, Limits())
            if value != body or api.trace != [("echo-bytes", (body,))]:
                errors.append(f"{tag} {i}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_one_megabyte_lowered_without_per_byte_python(runtime: Runtime, echo: LoadedComponent,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from wasmtime.component import _types as wt

    def refuse(*_a: Any) -> Any:
        raise AssertionError("per-byte conversion")

    monkeypatch.setattr(wt.U8, "convert_to_c", refuse)
    monkeypatch.setattr(wt.U8, "convert_from_c", refuse)
    body = bytes(range(256)) * (MB // 256)
    value, _ = fast_sandbox(runtime).call(echo, "echo-bytes", (body,), EchoApi(), Limits())
    assert value == body


def test_reused_instance_serves_several_calls_and_reports_instantiation_failures(
    runtime: Runtime, echo: LoadedComponent
) -> None:
    api = EchoApi()
    with fast_sandbox(runtime).reused_instance(echo, api, Limits()) as call:
        assert [call("echo-u8", (i,)) for i in range(3)] == [0, 1, 2]
    assert api.trace == [("echo-u8", (0,)), ("echo-u8", (1,)), ("echo-u8", (2,))]
    with pytest.raises(GuestTrap) as info, fast_sandbox(runtime).reused_instance(echo, EchoApi(),
                                                                                  Limits(memory_bytes=64 * 1024)):
        pass
    assert info.value.kind == "memory"


# ---- host values that misbehave while being lowered (memory safety, not equivalence) -------------------

class _Grows(Record):
    """A record whose field read appends to (or empties) the list being lowered."""

    def __init__(self, owner: list[Any], grow: bool) -> None:
        self._owner, self._grow = owner, grow

    @property
    def a(self) -> int:
        if self._grow:
            self._owner.append(_Grows(self._owner, False))
        else:
            self._owner.clear()
        return 7


@pytest.mark.parametrize("grow", [True, False])
def test_list_changing_size_while_lowered_never_writes_outside_its_slots(grow: bool) -> None:
    from airlock.runtime.fastpath_lift import Lifter
    from airlock.runtime.fastpath_lower import Lowerer

    t = ft.List(ft.RecordT((("a", ft.Int("U32", "I", 0, 2**32 - 1)),)))
    lower, lift = Lowerer("t").value(t), Lifter("t").value(t)
    values: list[Any] = []
    values += [_Grows(values, grow), _Grows(values, grow)]
    ar = Arena()
    mark = ar.mark()
    try:
        if not grow:  # slots left unwritten would hand C garbage: refused
            with pytest.raises(IndexError):
                lower(values, ar)
            return
        addr = lower(values, ar)  # the list's length when lowering began: 2 elements, both intact
        assert [r.a for r in lift(addr)] == [7, 7]
    finally:
        ar.release(mark)


class _OddStr(str):
    def encode(self, *_args: Any, **_kw: Any) -> Any:  # a str subclass whose encode is not str.encode
        return bytearray(b"HELLO")


def test_str_subclass_is_encoded_as_a_str() -> None:
    from airlock.runtime.fastpath_lift import Lifter
    from airlock.runtime.fastpath_lower import Lowerer

    for t, value, expected in (
        (ft.String(), _OddStr("hello"), "hello"),
        (ft.Flags(("hello",)), {_OddStr("hello")}, {"hello"}),
    ):
        ar = Arena()
        mark = ar.mark()
        try:
            assert Lifter("t").value(t)(Lowerer("t").value(t)(value, ar)) == expected
        finally:
            ar.release(mark)
