"""Runtime + Sandbox through real components and real wasmtime, with a HostApi test double.

Covers: the three supported worlds; no WASI for a guest that imports none (and one empty WASI context per
callback for a guest that does); the limits (epoch timeout,
fuel, memory growth, initial memory above the limit) and how their traps are classified; blame (host
exception -> HostBug, GuestFault -> WIT error); a fresh store per callback; the compile cache; and
refusing files that are not components of a supported world.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import watguest

from airlock.errors import ComponentError, GuestError, GuestTrap, HostBug
from airlock.runtime import convert
from airlock.runtime import fastpath_store as fps
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.instance import Limits, Sandbox, classify_trap
from airlock.runtime.linker import GuestFault
from airlock.runtime.values import (
    AgentResponse,
    EmittedMessage,
    HttpResponse,
    IncomingHttpRequest,
    LogLevel,
)

KIB = 1024
MIB = 1024 * KIB


class FakeHostApi:
    """A ``HostApi`` double: records calls; ``fail`` makes a named method raise the given exception."""

    def __init__(self, **fail: BaseException) -> None:
        self.host_bug: str | None = None
        self.fail = fail
        self.logs: list[tuple[str, str]] = []
        self.emitted: list[EmittedMessage] = []
        self.workspace: dict[str, str] = {}
        self.reads: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise self.fail[name]

    def log(self, level: LogLevel, message: str) -> None:
        self._maybe_fail("log")
        self.logs.append((level, message))

    def now_millis(self) -> int:
        return int(time.time() * 1000)

    def workspace_read(self, path: str) -> str | None:
        self.reads.append(path)
        return self.workspace.get(path)

    def workspace_write(self, path: str, content: str) -> None:
        self._maybe_fail("workspace_write")
        self.workspace[path] = content

    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> HttpResponse:
        raise GuestFault("no http capability")

    def secret_exists(self, name: str) -> bool:
        return False

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        raise GuestFault("no attachments")

    def emit_message(self, msg: EmittedMessage) -> None:
        self._maybe_fail("emit_message")
        self.emitted.append(msg)

    def websocket_send_text(self, payload: str) -> None:
        raise GuestFault("no websocket")

    def pairing_upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]:
        return "CODE", True

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        return None

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        return []


@pytest.fixture(scope="module")
def guest(runtime: Runtime, wat_dir: Path) -> LoadedComponent:
    return runtime.load(watguest.build_component(wat_dir, "sbx"))


def _request(body: bytes, path: str = "/webhook/sbx") -> Any:
    return convert.incoming_request_to_wit(IncomingHttpRequest(
        method="POST", path=path, headers_json="{}", query_json="{}", body=body, secret_validated=False))


def _response(content: str) -> Any:
    return convert.agent_response_to_wit(AgentResponse(
        message_id="m1", content=content, thread_id=None, metadata_json="{}"))


def _wasm_tools_parse(tmp: Path, name: str, wat: str) -> Path:
    src, out = tmp / f"{name}.wat", tmp / f"{name}.wasm"
    src.write_text(wat)
    subprocess.run([watguest._wasm_tools(), "parse", str(src), "-o", str(out)], check=True, capture_output=True)
    return out


def _variant(wat_dir: Path, name: str, *edits: tuple[str, str]) -> Path:
    """The normal WAT guest ``name`` with each ``(old, new)`` piece of its source replaced once, as a component."""
    out = wat_dir / f"variant-{name}.wasm"
    if out.exists():
        return out
    src = watguest.wat_source(name)
    for old, new in edits:
        assert src.count(old) == 1, f"watguest changed shape: {old!r}"
        src = src.replace(old, new)
    wat, core = wat_dir / f"variant-{name}.wat", wat_dir / f"variant-{name}.core.wasm"
    wat.write_text(src)
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(watguest.WIT_DIR), "--world", watguest.WORLDS["airlock"][2],
                    str(wat), "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


_STATUS_200 = "(i32.store16 (i32.const 2048) (i32.const 200))"
_HEAP = "(global $heap (mut i32) (i32.const 65536))"


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "plain"])
def each_path(request: pytest.FixtureRequest, runtime: Runtime) -> Sandbox:
    """A sandbox on the fast call path, then one on the plain (stock wasmtime-py) path."""
    return Sandbox(runtime, fastpath=request.param)


def _on_path(sandbox: Sandbox, loaded: LoadedComponent) -> LoadedComponent:
    """``loaded``, after checking that ``sandbox`` really takes its path for it (fast: a C-level call plan)."""
    assert (sandbox.prepared(loaded) is not None) is sandbox.fastpath
    return loaded


# ---- worlds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("world", "host_interface", "world_name"), [
    ("airlock", "airlock:channel/channel-host@0.1.0", "airlock:channel/sandboxed-channel@0.1.0"),
    ("near-0.3.1", "near:agent/channel-host@0.3.1", "near:agent/sandboxed-channel@0.3.1"),
    ("near-0.3.0", "near:agent/channel-host@0.3.0", "near:agent/sandboxed-channel@0.3.0"),
])
def test_each_world_runs_its_callbacks(
    runtime: Runtime, sandbox: Sandbox, wat_dir: Path, world: str, host_interface: str, world_name: str
) -> None:
    loaded = runtime.load(watguest.build_component(wat_dir, "worlds", world=world))
    assert loaded.world.host_interface == host_interface
    assert loaded.world.name == world_name
    assert loaded.imports == (host_interface,)

    value, stats = sandbox.call(loaded, "on-start", ("{}",), FakeHostApi(), Limits())
    cfg = convert.channel_config_from_wit(value)
    assert cfg.display_name == "worlds" and [e.path for e in cfg.http_endpoints] == ["/webhook/worlds"]
    assert stats.fuel_used > 0

    api = FakeHostApi()
    value, _ = sandbox.call(loaded, "on-http-request", (_request(b"hi there", "/webhook/worlds"),), api, Limits())
    out = convert.outgoing_response_from_wit(value)
    assert (out.status, out.body) == (200, b"ok")
    assert api.logs == [("info", "/webhook/worlds")]
    assert [(m.user_id, m.content, m.user_name, m.thread_id) for m in api.emitted] == [("u1", "hi there", None, None)]

    value, _ = sandbox.call(loaded, "on-respond", (_response("the reply"),), api, Limits())
    assert convert.unit_result_from_wit(value) is None
    assert api.workspace == {"last-reply": "the reply"}


def _spy_wasi_contexts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every WASI context given to a store, on both store paths: wasmtime-py's ``Store.set_wasi``
    (stock) and ``fastpath_store``'s direct ``wasmtime_context_set_wasi`` (fast); one entry per context."""
    calls: list[str] = []
    real = wasmtime.Store.set_wasi
    real_c = fps._set_wasi

    def spy(self: wasmtime.Store, *args: Any, **kwargs: Any) -> Any:
        calls.append(type(args[0]).__name__)
        return real(self, *args, **kwargs)

    def spy_c(ctx: int, config: int) -> Any:
        assert config, "a WASI context must be a fresh wasi_config_t"
        calls.append("wasi_config_t")
        return real_c(ctx, config)

    monkeypatch.setattr(wasmtime.Store, "set_wasi", spy)
    monkeypatch.setattr(fps, "_set_wasi", spy_c)
    return calls


def test_guest_without_wasi_gets_no_wasi(
    sandbox: Sandbox, guest: LoadedComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_wasi_contexts(monkeypatch)
    assert guest.imports_wasi is False
    assert not any(i.startswith("wasi:") for i in guest.imports)
    for callback, args in (("on-start", ("{}",)), ("on-poll", ()), ("on-http-request", (_request(b"x"),))):
        sandbox.call(guest, callback, args, FakeHostApi(), Limits())
    assert calls == []
    assert sandbox.linker_for(guest) is sandbox.linker_for(guest)  # one shared linker, built without WASI


_CLOCK_WIT = """package wasi:clocks@0.2.0;

interface monotonic-clock {
    type instant = u64;
    now: func() -> instant;
}
"""


def _wasi_clock_guest(wat_dir: Path) -> Path:
    """The WAT guest plus one WASI import (``wasi:clocks/monotonic-clock@0.2.0#now``, called by on-poll)."""
    out = wat_dir / "wasi-clock.wasm"
    if out.exists():
        return out
    wit = wat_dir / "wit-wasi-clock"
    shutil.copytree(watguest.WIT_DIR, wit, dirs_exist_ok=True)
    (wit / "deps" / "wasi-clocks").mkdir(parents=True, exist_ok=True)
    (wit / "deps" / "wasi-clocks" / "monotonic-clock.wit").write_text(_CLOCK_WIT)
    (wit / "clocked.wit").write_text("package airlock:channel@0.1.0;\n\nworld clocked-channel {\n"
                                     "    include sandboxed-channel;\n"
                                     "    import wasi:clocks/monotonic-clock@0.2.0;\n}\n")
    src = watguest.wat_source("clocked")
    anchor = '(memory (export "memory") 2)'
    poll = '(func (export "airlock:channel/channel@0.1.0#on-poll")'
    assert src.count(anchor) == 1 and src.count(poll) == 1
    src = src.replace(anchor, '(import "wasi:clocks/monotonic-clock@0.2.0" "now" (func $now (result i64)))\n  '
                      + anchor)
    src = src.replace(poll, f"{poll}\n    (drop (call $now))")
    (wat_dir / "wasi-clock.wat").write_text(src)
    core = wat_dir / "wasi-clock.core.wasm"
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(wit), "--world", "airlock:channel/clocked-channel",
                    str(wat_dir / "wasi-clock.wat"), "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


def test_guest_importing_wasi_gets_an_empty_wasi_context_per_callback(
    runtime: Runtime, sandbox: Sandbox, wat_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the rule above: a guest that imports WASI gets exactly one (empty) WASI context per
    callback, on a separate linker that provides WASI, and its WASI call works."""
    loaded = runtime.load(_wasi_clock_guest(wat_dir))
    assert loaded.imports_wasi is True
    assert "wasi:clocks/monotonic-clock@0.2.0" in loaded.imports
    calls = _spy_wasi_contexts(monkeypatch)
    for _ in range(3):
        api = FakeHostApi()
        sandbox.call(loaded, "on-poll", (), api, Limits())
        assert api.logs == [("info", "poll")]  # after the guest's call to wasi:clocks/monotonic-clock#now
    assert len(calls) == 3 and all(kind in ("WasiConfig", "wasi_config_t") for kind in calls)
    no_wasi = runtime.load(watguest.build_component(wat_dir, "sbx"))
    assert sandbox.linker_for(loaded) is not sandbox.linker_for(no_wasi)


# ---- limits and traps -----------------------------------------------------------------------------


def test_infinite_loop_hits_the_epoch_deadline(runtime: Runtime, sandbox: Sandbox, wat_dir: Path) -> None:
    """With the real ticker: a spinning guest is stopped, as a timeout, and never before its deadline (a lower
    bound cannot flake: ticks never come early; the exact tick count is the next test's)."""
    spinner = runtime.load(watguest.build_component(wat_dir, "sbx", mode="loop"))
    start = time.perf_counter()
    with pytest.raises(GuestTrap) as info:
        sandbox.call(spinner, "on-poll", (), FakeHostApi(), Limits(timeout_s=0.3, fuel=10**15))
    assert info.value.kind == "timeout"
    assert "interrupt" in str(info.value)
    assert time.perf_counter() - start >= 0.25


class _Running(FakeHostApi):
    """Sets ``running`` when the guest logs: the spin-after-log guest is then inside its loop."""

    def __init__(self) -> None:
        super().__init__()
        self.running = threading.Event()

    def log(self, level: LogLevel, message: str) -> None:
        super().log(level, message)
        self.running.set()


def test_epoch_deadline_is_the_configured_number_of_ticks(
    compile_cache: Path, wat_dir: Path, request: pytest.FixtureRequest
) -> None:
    """The epoch is the injected clock: on a runtime whose ticker is stopped, the test advances it by hand. A
    0.3 s timeout is ``deadline_ticks(0.3)`` = 31 ticks of 10 ms: the guest survives 30 (however long they
    take on a loaded machine) and is stopped by the 31st, on both call paths."""
    rt = Runtime(compile_cache)
    rt.close()  # stops the ticker; the engine keeps working
    request.addfinalizer(rt.close)
    wasm = _variant(wat_dir, "spin-after-log", ('(i32.const 4)))\n  (func (export "airlock:channel/channel@0.1.0'
                                                '#on-respond")',
                                                '(i32.const 4)) (loop $spin (br $spin)))\n  (func (export '
                                                '"airlock:channel/channel@0.1.0#on-respond")'))
    ticks = rt.deadline_ticks(0.3)
    assert ticks == 31
    for fast in (True, False):
        sandbox = Sandbox(rt, fastpath=fast)
        loaded = _on_path(sandbox, rt.load(wasm))
        api = _Running()
        failure: list[BaseException] = []

        def run(sandbox: Sandbox = sandbox, loaded: LoadedComponent = loaded, api: _Running = api,
                failure: list[BaseException] = failure) -> None:
            try:
                sandbox.call(loaded, "on-poll", (), api, Limits(timeout_s=0.3, fuel=10**15))
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        assert api.running.wait(30), "the guest never started"
        for _ in range(ticks - 1):
            rt.engine.increment_epoch()
        worker.join(0.3)
        assert worker.is_alive() and failure == [], (fast, failure)  # 30 ticks: still spinning
        rt.engine.increment_epoch()
        worker.join(30)
        assert not worker.is_alive(), fast
        [trap] = failure
        assert isinstance(trap, GuestTrap) and trap.kind == "timeout", (fast, trap)


def test_infinite_loop_runs_out_of_fuel(runtime: Runtime, sandbox: Sandbox, wat_dir: Path) -> None:
    spinner = runtime.load(watguest.build_component(wat_dir, "sbx", mode="loop"))
    with pytest.raises(GuestTrap) as info:
        sandbox.call(spinner, "on-http-request", (_request(b"x"),), FakeHostApi(),
                     Limits(timeout_s=600, fuel=2_000_000))
    assert info.value.kind == "fuel"  # not "timeout": fuel stopped it, long before the 600 s deadline
    assert "all fuel consumed" in str(info.value)


def test_memory_bomb_stops_at_the_limit(runtime: Runtime, each_path: Sandbox, wat_dir: Path) -> None:
    """The "grow" guest grows 1 MiB at a time. wasmtime refuses growth past the store limit by returning
    -1 from memory.grow (it does not trap), and the guest then aborts with ``unreachable``, as a Rust
    guest does on allocation failure: so the trap is classified "panic". A guest that trapped in the
    grow itself would be "memory"; both mean the bomb was contained."""
    bomb = _on_path(each_path, runtime.load(watguest.build_component(wat_dir, "sbx", mode="grow")))
    with pytest.raises(GuestTrap) as info:
        each_path.call(bomb, "on-poll", (), FakeHostApi(), Limits(memory_bytes=4 * MIB))
    assert info.value.kind in ("memory", "panic")
    assert info.value.kind == "panic" and "unreachable" in str(info.value)  # what wasmtime 50 does today


@pytest.mark.parametrize("limit_mib", [4, 7])
def test_memory_grows_to_exactly_the_configured_limit(
    runtime: Runtime, each_path: Sandbox, wat_dir: Path, limit_mib: int
) -> None:
    """A guest that grows one page at a time until refused and answers with the pages it reached: the
    per-callback limit, not the pool's or the engine's, on both call paths (two limits, two results)."""
    wasm = _variant(wat_dir, "grow-report", (
        _STATUS_200,
        "(loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))\n"
        "    (i32.store16 (i32.const 2048) (memory.size))"))
    reporter = _on_path(each_path, runtime.load(wasm))
    value, _ = each_path.call(reporter, "on-http-request", (_request(b"x"),), FakeHostApi(),
                              Limits(memory_bytes=limit_mib * MIB))
    assert convert.outgoing_response_from_wit(value).status == limit_mib * MIB // 65536


def test_initial_memory_above_the_limit_fails_at_instantiation(
    sandbox: Sandbox, guest: LoadedComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAT guest declares 2 pages (128 KiB); a 64 KiB limit refuses it before any export runs."""
    entered: list[str] = []
    real_get_func = wasmtime.component.Instance.get_func

    def spy(self: Any, *args: Any) -> Any:
        entered.append("get_func")
        return real_get_func(self, *args)

    monkeypatch.setattr(wasmtime.component.Instance, "get_func", spy)
    api = FakeHostApi()
    with pytest.raises(GuestTrap) as info:
        sandbox.call(guest, "on-poll", (), api, Limits(memory_bytes=64 * KIB))
    assert info.value.kind == "memory"
    assert "memory" in str(info.value) and "limit" in str(info.value)
    assert entered == [] and api.logs == []
    # Exactly at the declared size it instantiates and runs.
    sandbox.call(guest, "on-poll", (), api, Limits(memory_bytes=128 * KIB))
    assert api.logs == [("info", "poll")]


@pytest.mark.parametrize(("message", "kind"), [
    ("error while executing at wasm backtrace:\n    0: 0x4f8 - <unknown>!<wasm function 6>\n\nCaused by:\n"
     "    wasm trap: interrupt\n", "timeout"),
    ("wasm trap: all fuel consumed by WebAssembly", "fuel"),
    ("memory minimum size of 2 pages exceeds memory limits", "memory"),
    ("wasm trap: wasm `unreachable` instruction executed", "panic"),
    ("wasm trap: integer divide by zero", "trap"),
    ("cannot enter component instance", "trap"),
])
def test_classify_trap_matches_wasmtime_wording(message: str, kind: str) -> None:
    assert classify_trap(message) == kind


def test_trap_kind_ignores_guest_chosen_names_in_the_backtrace(
    runtime: Runtime, sandbox: Sandbox, wat_dir: Path
) -> None:
    """A guest that panics inside a function named like a timeout/memory trap is still a "panic" (the
    backtrace carries guest function names; only the trap reason may decide the kind)."""
    src = watguest.wat_source("named")
    export = '(func (export "airlock:channel/channel@0.1.0#on-poll")'
    assert src.count(export) == 1
    src = src.replace(export, "(func $interrupt_all_fuel_consumed_memory_limit_exceeds unreachable)\n  "
                      f"{export} (call $interrupt_all_fuel_consumed_memory_limit_exceeds)")
    core, out = wat_dir / "named-trap.core.wasm", wat_dir / "named-trap.wasm"
    (wat_dir / "named-trap.wat").write_text(src)
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(watguest.WIT_DIR), "--world", watguest.WORLDS["airlock"][2],
                    str(wat_dir / "named-trap.wat"), "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    with pytest.raises(GuestTrap) as info:
        sandbox.call(runtime.load(out), "on-poll", (), FakeHostApi(), Limits())
    assert info.value.kind == "panic"
    assert str(info.value) == "guest trap (panic): wasm trap: wasm `unreachable` instruction executed"


# ---- blame ------------------------------------------------------------------------------------------


def test_host_exception_is_a_host_bug_without_details(sandbox: Sandbox, guest: LoadedComponent) -> None:
    api = FakeHostApi(log=RuntimeError("boom in /home/op/secret-dir/airlock.py token=hunter2"))
    with pytest.raises(HostBug) as info:
        sandbox.call(guest, "on-http-request", (_request(b"payload"),), api, Limits())
    err = info.value
    assert not isinstance(err, GuestError)
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    for leak in ("/", ".py", "boom", "hunter2", "secret-dir", "wasm backtrace"):
        assert leak not in text, (leak, text)
    assert text == "RuntimeError in log"  # the exception type and the WIT function, nothing more
    assert api.emitted == []  # the guest was stopped at the failing host call


def test_guest_fault_becomes_the_wit_error_string(sandbox: Sandbox, guest: LoadedComponent) -> None:
    api = FakeHostApi(workspace_write=GuestFault("workspace path is refused"))
    value, _ = sandbox.call(guest, "on-respond", (_response("x"),), api, Limits())
    assert convert.unit_result_from_wit(value) == "workspace path is refused"
    assert api.host_bug is None and api.workspace == {}


# ---- a fresh store per callback -------------------------------------------------------------------------


def test_each_callback_gets_a_fresh_store(
    sandbox: Sandbox, guest: LoadedComponent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guest's bump allocator never frees: every argument it receives stays in its linear memory.
    Ten 400 KB bodies under a 1 MiB limit only fit if no memory or allocator state survives a callback;
    one 1.1 MB body shows the limit is real."""
    stores: list[int] = []
    real_init = wasmtime.Store.__init__
    real_new = fps._store_new

    def counting_init(self: wasmtime.Store, *args: Any, **kwargs: Any) -> None:
        stores.append(id(self))
        real_init(self, *args, **kwargs)

    def counting_new(engine: int, data: Any, finalizer: Any) -> Any:  # the fast path's direct store_new
        ptr = real_new(engine, data, finalizer)
        stores.append(ptr)
        return ptr

    monkeypatch.setattr(wasmtime.Store, "__init__", counting_init)
    monkeypatch.setattr(fps, "_store_new", counting_new)
    limits = Limits(memory_bytes=1 * MIB)
    for i in range(10):
        api = FakeHostApi()
        body = bytes([ord("a") + i]) * 400_000
        value, _ = sandbox.call(guest, "on-http-request", (_request(body),), api, limits)
        assert convert.outgoing_response_from_wit(value).status == 200
        assert [m.content.encode() for m in api.emitted] == [body]
    assert len(stores) == 10
    with pytest.raises(GuestTrap):
        sandbox.call(guest, "on-http-request", (_request(b"z" * 1_100_000),), FakeHostApi(), limits)


def test_no_state_crosses_callbacks(runtime: Runtime, each_path: Sandbox, guest: LoadedComponent,
                                   wat_dir: Path) -> None:
    """A guest global counts the callbacks its instance served (the response status is 200 + count): 201 on
    every callback, on both call paths, so each one got a new instance. The same guest in one reused instance
    answers 201, 202, 203: the probe would see reuse. Then two callbacks on one host API: the second sees only
    what the host gave it (the workspace the double keeps)."""
    wasm = _variant(wat_dir, "counter",
                    (_HEAP, f"{_HEAP}\n  (global $calls (mut i32) (i32.const 0))"),
                    (_STATUS_200, "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))\n"
                                  "    (i32.store16 (i32.const 2048) (i32.add (i32.const 200) (global.get $calls)))"))
    counter = _on_path(each_path, runtime.load(wasm))
    api = FakeHostApi()
    statuses = [convert.outgoing_response_from_wit(each_path.call(counter, "on-http-request", (_request(b"x"),),
                                                                  api, Limits())[0]).status for _ in range(5)]
    assert statuses == [201] * 5
    with each_path.reused_instance(counter, FakeHostApi(), Limits()) as call:
        reused = [convert.outgoing_response_from_wit(call("on-http-request", (_request(b"x"),))).status
                  for _ in range(3)]
    assert reused == [201, 202, 203]

    each_path.call(guest, "on-respond", (_response("first"),), api, Limits())
    each_path.call(guest, "on-respond", (_response("second"),), api, Limits())
    assert api.workspace == {"last-reply": "second"}
    other = FakeHostApi()
    each_path.call(guest, "on-poll", (), other, Limits())
    assert other.workspace == {} and other.logs == [("info", "poll")]


# ---- the compile cache ------------------------------------------------------------------------------


def test_compile_cache_hit_on_a_fresh_runtime(tmp_path: Path, wat_dir: Path) -> None:
    wasm = watguest.build_component(wat_dir, "cache")
    cache = tmp_path / "cache"
    first_rt = Runtime(cache)
    try:
        first = first_rt.load(wasm)
    finally:
        first_rt.close()
    second_rt = Runtime(cache)
    try:
        second = second_rt.load(wasm)
        Sandbox(second_rt).call(second, "on-poll", (), FakeHostApi(), Limits())  # the cached code runs
    finally:
        second_rt.close()
    assert (first.from_cache, second.from_cache) == (False, True)
    assert len(list(cache.glob("*.cwasm"))) == 1
    assert second.sha256 == first.sha256 and second.world == first.world
    print(f"compile {first.load_ms:.1f} ms, cache hit {second.load_ms:.1f} ms")  # timing is reported, not asserted


def test_corrupt_cache_entry_is_recompiled_with_a_warning(
    tmp_path: Path, wat_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wasm = watguest.build_component(wat_dir, "cache")
    cache = tmp_path / "cache"
    rt = Runtime(cache)
    try:
        rt.load(wasm)
        [entry] = cache.glob("*.cwasm")
        entry.write_bytes(b"\x7fELF but not really" + bytes(200))
        with caplog.at_level(logging.WARNING, logger="airlock.runtime"):
            again = rt.load(wasm)
        assert again.from_cache is False
        assert any("unusable" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
        Sandbox(rt).call(again, "on-poll", (), FakeHostApi(), Limits())
        assert rt.load(wasm).from_cache is True  # the entry was rewritten
    finally:
        rt.close()


@pytest.mark.parametrize(("name", "content"), [
    ("text.wasm", b"this is not webassembly\nat all\n"),
    ("core-module.wasm", b"\x00asm\x01\x00\x00\x00"),
    ("truncated.wasm", b"\x00asm\x0d\x00\x01\x00\x07"),
    ("empty.wasm", b""),
])
def test_non_component_file_is_a_one_line_component_error(
    runtime: Runtime, tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ComponentError) as info:
        runtime.load(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{name}: ")
    assert str(tmp_path) not in text


def test_missing_file_is_a_component_error(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"^gone\.wasm: cannot read"):
        runtime.load(tmp_path / "gone.wasm")


@pytest.mark.parametrize(("wat", "expected"), [
    ("(component)", "imports no supported channel-host interface"),
    ('(component (import "near:agent/channel-host@0.2.0" (instance)))', "imports no supported channel-host"),
    ('(component (import "airlock:channel/channel-host@0.1.0" (instance))'
     ' (import "near:agent/channel-host@0.3.1" (instance)))', "imports no supported channel-host"),
    ('(component (import "airlock:channel/channel-host@0.1.0" (instance))'
     ' (import "evil:net/raw-sockets@1.0.0" (instance)))', "imports interfaces Airlock does not provide"),
    ('(component (import "airlock:channel/channel-host@0.1.0" (instance)))',
     "does not export airlock:channel/channel@0.1.0"),
])
def test_component_of_an_unknown_world_is_refused(
    runtime: Runtime, tmp_path: Path, wat: str, expected: str
) -> None:
    path = _wasm_tools_parse(tmp_path, "odd", wat)
    with pytest.raises(ComponentError) as info:
        runtime.load(path)
    text = str(info.value)
    assert expected in text and "\n" not in text and text.startswith("odd.wasm: ")
