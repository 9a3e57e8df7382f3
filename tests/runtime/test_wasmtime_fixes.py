"""Each fix in ``airlock.runtime.wasmtime_fixes`` has a test here that fails without it.

Fix 1 (``list<u8>`` in bulk): a 1 MB body crosses a real call exactly and with no per-byte Python
conversion (``U8.convert_to_c`` / ``convert_from_c`` are never called); with the fix unapplied the same
counters are non-zero. Fix 2 (option/result payload boxes): the boxes are freed (the native heap stays
flat over 100k lifts, where stock wasmtime-py grows by ~48 bytes a lift) without double-freeing host-import
arguments (a guest passing ``some(...)`` top-level and nested arguments runs hundreds of times and every
lifted parent is left "moved"). Fix 3 (host values checked before wasmtime): an out-of-range integer and an
unknown enum case are host bugs; unfixed, the integer silently wraps and the enum traps as the guest's fault.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from ctypes import byref
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import watguest
from echohost import ECHO_FUNCTIONS, EchoApi, load_echo
from wasmtime import _ffi as ffi
from wasmtime.component import _types as wt

from airlock.errors import GuestTrap, HostBug
from airlock.runtime import convert, wasmtime_fixes
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.instance import Limits, Sandbox
from airlock.runtime.linker import GuestFault
from airlock.runtime.values import EmittedMessage, HttpResponse, IncomingHttpRequest, LogLevel

MB = 1024 * 1024
BOOL = int(ffi.WASMTIME_COMPONENT_BOOL.value)


# ---- a host API double and the guests ------------------------------------------------------------


class RecordingApi:
    """A ``HostApi`` that records what the guest did."""

    def __init__(self) -> None:
        self.host_bug: str | None = None
        self.logs: list[tuple[str, str]] = []
        self.emitted: list[EmittedMessage] = []
        self.writes: dict[str, str] = {}
        self.http_calls: list[tuple[str, str, str, bytes | None, int | None]] = []

    def log(self, level: LogLevel, message: str) -> None:
        self.logs.append((level, message))

    def now_millis(self) -> int:
        return 0

    def workspace_read(self, path: str) -> str | None:
        return self.writes.get(path)

    def workspace_write(self, path: str, content: str) -> None:
        self.writes[path] = content

    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> HttpResponse:
        self.http_calls.append((method, url, headers_json, body, timeout_ms))
        return HttpResponse(status=201, headers_json="{}", body=b"response-bytes")

    def secret_exists(self, name: str) -> bool:
        return False

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        raise GuestFault("no attachments here")

    def emit_message(self, msg: EmittedMessage) -> None:
        self.emitted.append(msg)

    def websocket_send_text(self, payload: str) -> None:
        raise GuestFault("no websocket here")

    def pairing_upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]:
        return "CODE", True

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        return None

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        return []


def _build_wat(out_dir: Path, stem: str, source: str) -> Path:
    """Turn a core-module WAT for the airlock world into a component (as watguest does)."""
    out = out_dir / f"{stem}.wasm"
    if out.exists():
        return out
    wat = out_dir / f"{stem}.wat"
    wat.write_text(source)
    core = out_dir / f"{stem}.core.wasm"
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(watguest.WIT_DIR), "--world", watguest.WORLDS["airlock"][2],
                    str(wat), "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"watguest changed shape: {old!r}"
    return text.replace(old, new)


def options_guest_source() -> str:
    """The normal WAT guest, except that on-http-request passes ``some(...)`` options to the host:
    emit-message gets user-name = some("u1") and thread-id = some("ok") (options nested in a record), and
    a new http-request call gets body = some(<request body>) and timeout-ms = some(1234) (top-level
    option arguments, the case a naive box free double-frees)."""
    s = watguest.STATIC
    src = watguest.wat_source("opts")
    host = "airlock:channel/channel-host@0.1.0"
    src = _replace_once(
        src, f'  (import "{host}" "emit-message"',
        f'  (import "{host}" "http-request" (func $http (param {" ".join(["i32"] * 12)})))\n'
        f'  (import "{host}" "emit-message"',
    )
    http_call = (
        f"(call $http (i32.const {s['post']}) (i32.const 4) (local.get 2) (local.get 3)"
        f" (i32.const {s['empty_json']}) (i32.const 2) (i32.const 1) (local.get 8) (local.get 9)"
        f" (i32.const 1) (i32.const 1234) (i32.const {s['import_ret']}))\n    "
    )
    src = _replace_once(
        src,
        f"(call $emit (i32.const {s['user']}) (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 0)",
        f"{http_call}(call $emit (i32.const {s['user']}) (i32.const 2)"
        f" (i32.const 1) (i32.const {s['user']}) (i32.const 2)",
    )
    return _replace_once(
        src, "(local.get 8) (local.get 9) (i32.const 0) (i32.const 0) (i32.const 0)",
        f"(local.get 8) (local.get 9) (i32.const 1) (i32.const {s['ok']}) (i32.const 2)",
    )


@pytest.fixture(scope="module")
def sandbox(runtime: Runtime) -> Sandbox:
    """These fixes patch the stock conversion path, so the calls here must take it (no fast path)."""
    return Sandbox(runtime, fastpath=False)


@pytest.fixture(scope="module")
def normal(runtime: Runtime, wat_dir: Path) -> LoadedComponent:
    return runtime.load(watguest.build_component(wat_dir, "fixes"))


@pytest.fixture(scope="module")
def polling(runtime: Runtime, wat_dir: Path) -> LoadedComponent:
    return runtime.load(watguest.build_component(wat_dir, "fixes", poll_ms=1500))


@pytest.fixture(scope="module")
def options_guest(runtime: Runtime, wat_dir: Path) -> LoadedComponent:
    return runtime.load(_build_wat(wat_dir, "options-guest", options_guest_source()))


@pytest.fixture
def stock() -> Iterator[None]:
    """Stock wasmtime-py for the duration of a test; the fixes are re-applied afterwards. Request it before
    fixtures that patch wasmtime-py themselves (``u8_calls``), so their patch wraps the stock function."""
    assert wasmtime_fixes.is_applied()
    wasmtime_fixes._unapply_for_tests()
    try:
        yield
    finally:
        wasmtime_fixes.apply()
        assert wasmtime_fixes.is_applied()


@pytest.fixture
def u8_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts per-element ``U8`` conversions (what stock wasmtime-py does for every byte)."""
    counts = {"to_c": 0, "from_c": 0}
    to_c, from_c = wt.U8.convert_to_c, wt.U8.convert_from_c

    def counting_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        counts["to_c"] += 1
        to_c(self, store, val, ptr)

    def counting_from_c(self: Any, c: Any) -> Any:
        counts["from_c"] += 1
        return from_c(self, c)

    monkeypatch.setattr(wt.U8, "convert_to_c", counting_to_c)
    monkeypatch.setattr(wt.U8, "convert_from_c", counting_from_c)
    return counts


def _webhook(sandbox: Sandbox, loaded: LoadedComponent, body: bytes, api: RecordingApi) -> Any:
    req = IncomingHttpRequest(method="POST", path="/webhook/fixes", headers_json="{}", query_json="{}",
                              body=body, secret_validated=False)
    result, _ = sandbox.call(loaded, "on-http-request", (convert.incoming_request_to_wit(req),), api, Limits())
    return convert.outgoing_response_from_wit(result)


def _interface_types(items: Any, name: str, engine: wasmtime.Engine) -> dict[str, Any]:
    instance: Any = items[name].ty  # a ComponentInstanceType
    return {fn: ext.ty for fn, ext in instance.exports(engine).items()}


def _host_types(loaded: LoadedComponent, runtime: Runtime) -> dict[str, Any]:
    """The channel-host functions the component imports, name -> FuncType (no store needed)."""
    imports = loaded.component.type.imports(runtime.engine)
    return _interface_types(imports, loaded.world.host_interface, runtime.engine)


def _export_types(loaded: LoadedComponent, runtime: Runtime) -> dict[str, Any]:
    exports = loaded.component.type.exports(runtime.engine)
    return _interface_types(exports, loaded.world.channel_interface, runtime.engine)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _native_heap_in_use() -> int:
    """Bytes malloc has handed out and not had back (glibc ``mallinfo2``). Unlike RSS this does not hide a
    leak that lands in memory an earlier test freed."""
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


# ---- fix 1: list<u8> ------------------------------------------------------------------------------


def test_one_megabyte_body_is_exact_and_never_converted_per_byte(
    sandbox: Sandbox, normal: LoadedComponent, u8_calls: dict[str, int]
) -> None:
    body = bytes(range(128)) * (MB // 128)  # every ASCII byte value: the guest emits the body as a string
    api = RecordingApi()
    start = time.perf_counter()
    out = _webhook(sandbox, normal, body, api)
    elapsed = time.perf_counter() - start
    assert (out.status, out.body) == (200, b"ok")
    assert len(api.emitted) == 1
    assert api.emitted[0].content.encode() == body  # lowered into the guest byte for byte
    assert u8_calls == {"to_c": 0, "from_c": 0}, "list<u8> went through per-element conversion"
    print(f"1 MiB webhook body through a real call: {elapsed * 1000:.0f} ms")


def test_multibyte_utf8_body_is_exact(sandbox: Sandbox, normal: LoadedComponent, u8_calls: dict[str, int]) -> None:
    text = "".join(chr(c) for c in range(1, 0x3000) if not 0xD800 <= c < 0xE000) + "€𝄞\U0010ffff"
    body = text.encode() * 8
    api = RecordingApi()
    _webhook(sandbox, normal, body, api)
    assert api.emitted[0].content == text * 8
    assert u8_calls == {"to_c": 0, "from_c": 0}


def test_stock_list_u8_converts_every_byte(
    sandbox: Sandbox, normal: LoadedComponent, stock: None, u8_calls: dict[str, int]
) -> None:
    """The same assertion as above fails without the fix (a small body keeps stock fast)."""
    body = b"stock wasmtime-py " * 60
    api = RecordingApi()
    out = _webhook(sandbox, normal, body, api)
    assert api.emitted[0].content.encode() == body and out.body == b"ok"  # stock is exact, only slow
    assert u8_calls["to_c"] == len(body)  # one Python call per byte lowered
    assert u8_calls["from_c"] == len(b"ok")  # and per byte lifted


def _bytes_roundtrip(list_u8: Any, store: wasmtime.Store, data: Any) -> bytes:
    c = ffi.wasmtime_component_val_t()
    list_u8.convert_to_c(store, data, ctypes.pointer(c))
    assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value and c.of.list.size == len(data)
    out = list_u8.convert_from_c(c)
    assert isinstance(out, bytes)
    return out


def test_list_u8_value_roundtrip_is_exact_for_all_byte_values(
    runtime: Runtime, normal: LoadedComponent, u8_calls: dict[str, int]
) -> None:
    """Lower arbitrary bytes into a component value of the real ``body: list<u8>`` type and lift it back."""
    req_type = _export_types(normal, runtime)["on-http-request"].params[0][1]
    list_u8 = dict(req_type.fields)["body"]
    assert isinstance(list_u8, wt.ListType) and isinstance(list_u8.element, wt.U8)
    store = wasmtime.Store(runtime.engine)
    every = bytes(range(256))
    for data in (b"", b"\x00", b"\xff", every, every[::-1] * 3, every * (MB // 256), os.urandom(65537)):
        assert _bytes_roundtrip(list_u8, store, data) == data
    assert _bytes_roundtrip(list_u8, store, bytearray(every)) == every
    assert _bytes_roundtrip(list_u8, store, memoryview(every)) == every
    with pytest.raises(TypeError):
        _bytes_roundtrip(list_u8, store, [1, 2, 3])
    assert u8_calls == {"to_c": 0, "from_c": 0}
    # The C layout the fix writes in place is what stock wasmtime-py reads element by element.
    wasmtime_fixes._unapply_for_tests()
    try:
        c = ffi.wasmtime_component_val_t()
        list_u8.convert_to_c(store, every, ctypes.pointer(c))  # stock lowering...
    finally:
        wasmtime_fixes.apply()
    assert list_u8.convert_from_c(c) == every  # ...lifted by the fix
    c = ffi.wasmtime_component_val_t()
    list_u8.convert_to_c(store, every, ctypes.pointer(c))  # the fix's lowering...
    wasmtime_fixes._unapply_for_tests()
    try:
        assert list_u8.convert_from_c(c) == every  # ...lifted by stock
    finally:
        wasmtime_fixes.apply()


# ---- fix 2: option/result payload boxes -------------------------------------------------------------


def _string_val(text: str) -> Any:
    v = ffi.wasmtime_component_val_t()
    v.kind = ffi.WASMTIME_COMPONENT_STRING
    v.of.string = ffi.str_to_capi(text)
    return v


def _lifters(loaded: LoadedComponent, runtime: Runtime) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Two lifts of heap-boxed payloads through real types of the channel-host interface:
    emit-message's ``user-name: option<string>`` as some("user") and workspace-write's
    ``result<_, string>`` as err("nope"). Each builds the C value the way wasmtime hands it over and
    returns (lifted value, parent C value, address of the payload box)."""
    host = _host_types(loaded, runtime)
    option = dict(host["emit-message"].params[0][1].fields)["user-name"]
    result = host["workspace-write"].result
    assert isinstance(option, wt.OptionType) and isinstance(result, wt.ResultType)

    def lift_option() -> tuple[Any, Any, int]:
        c = ffi.wasmtime_component_val_t()
        c.kind = ffi.WASMTIME_COMPONENT_OPTION
        c.of.option = box = ffi.wasmtime_component_val_new(byref(_string_val("user")))
        return option.convert_from_c(c), c, ctypes.addressof(box.contents)

    def lift_result() -> tuple[Any, Any, int]:
        c = ffi.wasmtime_component_val_t()
        c.kind = ffi.WASMTIME_COMPONENT_RESULT
        c.of.result.is_ok = False
        c.of.result.val = box = ffi.wasmtime_component_val_new(byref(_string_val("nope")))
        return result.convert_from_c(c), c, ctypes.addressof(box.contents)

    return lift_option, lift_result


def _heap_growth_per_100k_lifts(lift_option: Callable[[], Any], lift_result: Callable[[], Any], lifts: int) -> float:
    for _ in range(1000):  # warm up the allocators
        lift_option()
        lift_result()
    before = _native_heap_in_use()
    for _ in range(lifts // 2):
        assert lift_option()[0] == "user"
        assert lift_result()[0] == "nope"
    return (_native_heap_in_use() - before) * 100_000 / lifts


def test_payload_boxes_do_not_leak(runtime: Runtime, normal: LoadedComponent) -> None:
    lift_option, lift_result = _lifters(normal, runtime)
    fixed = _heap_growth_per_100k_lifts(lift_option, lift_result, 100_000)
    wasmtime_fixes._unapply_for_tests()
    try:  # stock leaks at a steady rate; 30k lifts measure it (scaled to 100k) at a third of the time
        leaked = _heap_growth_per_100k_lifts(lift_option, lift_result, 30_000)
    finally:
        wasmtime_fixes.apply()
    print(f"native heap growth per 100k payload lifts: fixed {fixed / MB:.2f} MiB, stock {leaked / MB:.2f} MiB")
    assert fixed < 0.5 * MB
    assert leaked >= 3 * MB  # ~48 bytes a box: the stock behaviour the fix exists for


def test_every_lifted_box_is_freed_once_and_its_parent_marked_moved(
    runtime: Runtime, normal: LoadedComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    freed: list[int] = []
    real_free = ffi.wasmtime_component_val_free

    def counting_free(ptr: Any) -> None:
        freed.append(ctypes.addressof(ptr.contents))
        real_free(ptr)

    monkeypatch.setattr(ffi, "wasmtime_component_val_free", counting_free)
    lift_option, lift_result = _lifters(normal, runtime)
    for lift in (lift_option, lift_result) * 500:
        before = len(freed)
        value, parent, box = lift()
        assert value in ("user", "nope")
        assert freed[before:] == [box]  # this lift's box, freed exactly once
        assert parent.kind == BOOL  # moved: whoever drops the parent later drops nothing
    assert len(freed) == 1000
    # Stock: the same lift frees no box (the leak) and leaves the parent pointing at it.
    freed.clear()
    wasmtime_fixes._unapply_for_tests()
    try:
        value, parent, box = lift_option()
    finally:
        wasmtime_fixes.apply()
    assert value == "user"
    assert freed == []
    assert parent.kind == ffi.WASMTIME_COMPONENT_OPTION.value


def test_host_import_option_arguments_are_not_double_freed(
    sandbox: Sandbox, options_guest: LoadedComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Top-level (http-request body/timeout-ms) and record-nested (emit-message user-name/thread-id)
    ``some(...)`` arguments lifted from a real guest, 400 times: values exact, each payload box freed
    exactly once by the fix and its parent left moved, so wasmtime's own drop frees nothing twice."""
    freed = 0
    real_free = ffi.wasmtime_component_val_free

    def counting_free(ptr: Any) -> None:
        nonlocal freed
        freed += 1
        real_free(ptr)

    parents_left: list[int] = []
    fixed_option_lift = wt.OptionType.convert_from_c

    def watching_lift(self: Any, c: Any) -> Any:
        value = fixed_option_lift(self, c)
        parents_left.append(int(c.kind))
        return value

    monkeypatch.setattr(ffi, "wasmtime_component_val_free", counting_free)
    monkeypatch.setattr(wt.OptionType, "convert_from_c", watching_lift)
    calls = 400
    for i in range(calls):
        body = f"request {i} ".encode() * (i % 7 + 1)
        api = RecordingApi()
        out = _webhook(sandbox, options_guest, body, api)
        assert (out.status, out.body) == (200, b"ok")
        assert api.http_calls == [("POST", "/webhook/fixes", "{}", body, 1234)]
        [msg] = api.emitted
        assert (msg.user_id, msg.user_name, msg.content, msg.thread_id) == ("u1", "u1", body.decode(), "ok")
    assert freed == 4 * calls  # user-name, thread-id, body, timeout-ms: one box each, freed once
    assert len(parents_left) == 4 * calls
    assert set(parents_left) == {BOOL}


def test_on_start_result_with_nested_option_lifted_2000_times(
    sandbox: Sandbox, polling: LoadedComponent, normal: LoadedComponent
) -> None:
    """on-start returns result<channel-config, string> whose record holds option<poll-config>."""
    start = time.perf_counter()
    for i in range(2000):
        loaded = polling if i % 2 else normal
        value, _ = sandbox.call(loaded, "on-start", ("{}",), RecordingApi(), Limits())
        cfg = convert.channel_config_from_wit(value)
        assert cfg.display_name == "fixes"
        assert [e.path for e in cfg.http_endpoints] == ["/webhook/fixes"]
        if i % 2:
            assert cfg.poll is not None and (cfg.poll.interval_ms, cfg.poll.enabled) == (1500, True)
        else:
            assert cfg.poll is None
    print(f"2000 on-start calls: {time.perf_counter() - start:.2f} s")


# ---- fix 3: host values checked before wasmtime ------------------------------------------------------


@pytest.fixture(scope="module")
def echo(runtime: Runtime, wat_dir: Path) -> tuple[Sandbox, LoadedComponent]:
    """The echo component (tests/guests/echogen.py) on the stock path."""
    return Sandbox(runtime, fastpath=False, host_functions=ECHO_FUNCTIONS), load_echo(runtime, wat_dir / "echo")


def _echo_u16_answering_70000(echo: tuple[Sandbox, LoadedComponent]) -> Any:
    sandbox, loaded = echo
    value, _ = sandbox.call(loaded, "echo-u16", (1,), EchoApi({"echo-u16": lambda _v: 70000}), Limits())
    return value


def test_out_of_range_int_and_unknown_enum_are_host_bugs(echo: tuple[Sandbox, LoadedComponent]) -> None:
    sandbox, loaded = echo
    with pytest.raises(HostBug, match=r"^ValueError in echo-u16$"):
        _echo_u16_answering_70000(echo)
    with pytest.raises(HostBug, match=r"^ValueError in echo-color arguments$"):
        sandbox.call(loaded, "echo-color", ("purple",), EchoApi(), Limits())


def test_unfixed_ints_wrap_and_unknown_enums_blame_the_guest(echo: tuple[Sandbox, LoadedComponent],
                                                             stock: None) -> None:
    sandbox, loaded = echo
    assert _echo_u16_answering_70000(echo) == 70000 % 65536  # what ctypes does with a u16 field
    with pytest.raises(GuestTrap, match="purple"):
        sandbox.call(loaded, "echo-color", ("purple",), EchoApi(), Limits())
