"""The fast call path and stock wasmtime-py give identical results and identical errors.

Every case runs twice through the real ``Sandbox`` (fresh store, limits, linker, Airlock's blame rules):
once with ``fastpath=True`` and once with ``fastpath=False``. The outcome -- the export's value, the
host-call trace, the logs, or the exception's class, message and trap kind as Airlock classifies them --
must be the same both ways, and (so the test cannot pass with both paths equally broken) must be the
expected one.

The guest is ``tests/guests/echogen.py``: for every WIT type the channel worlds use (and every integer
width, floats, char, flags, variants, tuples) an export passes its argument through a host import of the
same type and returns the host's answer. At the end, the real Telegram component (CPython guest) runs a
few callbacks both ways against a recording host.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILT_CHANNELS
from echohost import ECHO_FUNCTIONS, EchoApi, load_echo
from wasmtime.component import Record, Variant

from airlock.errors import GuestTrap, HostBug
from airlock.runtime import convert
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.instance import Limits, Sandbox
from airlock.runtime.linker import GuestFault
from airlock.runtime.values import AgentResponse, EmittedMessage, HttpResponse, IncomingHttpRequest, StatusUpdate

MB = 1024 * 1024
KIB = 1024
PATHS = ("fast", "stock")

# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo(runtime: Runtime, wat_dir: Path) -> LoadedComponent:
    return load_echo(runtime, wat_dir / "echo")


@pytest.fixture(scope="module")
def sandboxes(runtime: Runtime) -> dict[str, Sandbox]:
    return {
        "fast": Sandbox(runtime, fastpath=True, host_functions=ECHO_FUNCTIONS),
        "stock": Sandbox(runtime, fastpath=False, host_functions=ECHO_FUNCTIONS),
    }


# ---- outcomes --------------------------------------------------------------------------------------


def norm(value: Any) -> Any:
    """A comparable, type-exact rendering of a WIT value as the host sees it."""
    if isinstance(value, Record):
        return ("Record", tuple((k, norm(v)) for k, v in value.__dict__.items()))
    if isinstance(value, Variant):
        return ("Variant", value.tag, norm(value.payload))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(norm(v) for v in value))
    if isinstance(value, set):
        return ("set", tuple(sorted(value)))
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, bytes | bytearray) and len(value) > 4096:
        return (type(value).__name__, len(value), hashlib.sha256(value).hexdigest())
    return (type(value).__name__, value)


@dataclass
class Outcome:
    value: Any = None
    trace: Any = None
    logs: Any = None
    error: tuple[str, str, str | None] | None = None  # (class, message, trap kind)

    @property
    def ok(self) -> bool:
        return self.error is None


def _error(exc: BaseException) -> tuple[str, str, str | None]:
    return (type(exc).__name__, str(exc), exc.kind if isinstance(exc, GuestTrap) else None)


def run(sandbox: Sandbox, loaded: LoadedComponent, export: str, args: tuple[Any, ...], api: EchoApi,
        limits: Limits) -> Outcome:
    try:
        value, _stats = sandbox.call(loaded, export, args, api, limits)
    except Exception as exc:
        return Outcome(trace=norm(api.trace), logs=api.logs, error=_error(exc))
    return Outcome(value=norm(value), trace=norm(api.trace), logs=api.logs)


def both(sandboxes: dict[str, Sandbox], loaded: LoadedComponent, export: str, *args: Any,
         overrides: dict[str, Callable[..., Any]] | None = None, limits: Limits | None = None) -> Outcome:
    """Run the case on both paths; assert the outcomes are identical; return it."""
    outcomes = {p: run(sandboxes[p], loaded, export, args, EchoApi(overrides), limits or Limits()) for p in PATHS}
    assert outcomes["fast"] == outcomes["stock"], f"{export}{args!r:.200}"
    return outcomes["fast"]


# ---- values ----------------------------------------------------------------------------------------


def rec(**fields: Any) -> Record:
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def point(x: int, y: int) -> Record:
    return rec(x=x, y=y)


def attachment(i: int, full: bool) -> Record:
    some = (lambda v: v) if full else (lambda v: None)
    return rec(id=f"att-{i}", mime_type="image/png", filename=some("ü.png"), size_bytes=some(2**64 - 1),
               source_url=some("https://x/ü"), storage_key=some(""), extracted_text=some("text ✓"),
               extras_json="{}")


def emitted(n_attachments: int) -> Record:
    return rec(user_id="42", user_name="Zoë", content="héllo 😀", thread_id=None, metadata_json='{"a": 1}',
               attachments=[attachment(i, i % 2 == 0) for i in range(n_attachments)])


def response(body: Any) -> Record:
    return rec(status=200, headers_json='{"content-type": "text/plain"}', body=body)


def outer() -> Record:
    inner = rec(name="ïnner", tags=["a", "", "ß"], maybe=2**63)
    return rec(id=2**64 - 1, label="outer ✓", inner=inner, points=[point(1, -1), point(-(2**31), 2**31 - 1)],
               body=bytes(range(256)), color="blue-ish", note=None,
               shapes=[1.5, point(3, 4), None, "named ✓"], perms={"read", "exec"})


MB_BYTES = random.Random(4).randbytes(MB)

ROUND_TRIPS: list[tuple[str, Any]] = [
    ("bool", True), ("bool", False),
    ("u8", 0), ("u8", 255), ("u16", 0), ("u16", 65535), ("u32", 0), ("u32", 2**32 - 1), ("u64", 0),
    ("u64", 2**64 - 1), ("s8", -128), ("s8", 127), ("s16", -(2**15)), ("s16", 2**15 - 1), ("s32", -(2**31)),
    ("s32", 2**31 - 1), ("s64", -(2**63)), ("s64", 2**63 - 1),
    ("f32", 1.5), ("f32", -0.0), ("f32", float("inf")), ("f64", math.pi), ("f64", -1e308), ("f64", float("nan")),
    ("char", "a"), ("char", "é"), ("char", "😀"),
    ("string", ""), ("string", "a"), ("string", "héllo wörld ✓ 😀"), ("string", "x" * 100_000),
    ("bytes", b""), ("bytes", b"\x00"), ("bytes", bytes(range(256))), ("bytes", MB_BYTES),
    ("strings", []), ("strings", ["", "a", "ü", "😀" * 10]),
    ("points", []), ("points", [point(1, 2), point(-(2**31), 2**31 - 1)]),
    ("attachments", [attachment(0, True), attachment(1, False)]),
    ("opt-string", None), ("opt-string", ""), ("opt-string", "ü"),
    ("opt-opt-string", Variant("none")), ("opt-opt-string", Variant("some", None)),
    ("opt-opt-string", Variant("some", "x")),
    ("opt-u32", None), ("opt-u32", 0), ("opt-u64", 2**64 - 1),
    ("opt-bytes", None), ("opt-bytes", b""), ("opt-bytes", b"\xff\x00"),
    ("opt-point", None), ("opt-point", point(5, 6)),
    ("opt-res", Variant("none")), ("opt-res", Variant("some", None)), ("opt-res", Variant("some", "bad")),
    ("res-unit-string", None), ("res-unit-string", "an error ✗"),
    ("res-string-string", Variant("ok", "yes")), ("res-string-string", Variant("err", "no")),
    ("res-response", response(b"body")), ("res-response", "refused"),
    ("res-opt-string", Variant("ok", None)), ("res-opt-string", Variant("ok", "x")),
    ("res-opt-string", Variant("err", "e")),
    ("res-strings", ["a", "b"]), ("res-strings", []), ("res-strings", "e"),
    ("res-pairing", rec(code="ABC123", created=True)), ("res-pairing", "e"),
    ("res-bare", Variant("ok")), ("res-bare", Variant("err")),
    ("res-u32", 7), ("res-u32", None),
    ("res-u8-s8", Variant("ok", 255)), ("res-u8-s8", Variant("err", -128)),
    ("color", "red"), ("color", "blue-ish"),
    ("perms", set()), ("perms", {"read", "write", "exec"}),
    ("shape", 2.5), ("shape", point(0, 0)), ("shape", None), ("shape", "name"),
    ("tuple", (255, "ü", False)),
    ("outer", outer()),
    ("emitted", emitted(0)), ("emitted", emitted(3)),
    ("response", response(b"")), ("response", response(MB_BYTES)),
]


def _expected(kind: str, value: Any) -> Any:
    if kind == "f32":
        return ctypes.c_float(value).value  # f32 rounding
    return value


@pytest.mark.parametrize(("kind", "value"), ROUND_TRIPS, ids=[f"{k}-{i}" for i, (k, _v) in enumerate(ROUND_TRIPS)])
def test_round_trip(sandboxes: dict[str, Sandbox], echo: LoadedComponent, kind: str, value: Any) -> None:
    out = both(sandboxes, echo, f"echo-{kind}", value)
    expected = _expected(kind, value)
    assert out.ok, out.error
    assert out.value == norm(expected)
    assert out.trace == norm([(f"echo-{kind}", (expected,))])


@pytest.mark.parametrize("value", [bytearray(b"abc"), memoryview(b"xyz")], ids=["bytearray", "memoryview"])
def test_bytes_like_arguments_arrive_as_bytes(sandboxes: dict[str, Sandbox], echo: LoadedComponent,
                                              value: Any) -> None:
    out = both(sandboxes, echo, "echo-bytes", value)
    assert out.value == norm(bytes(value))


def test_multiple_parameters_over_and_under_the_flat_limit(sandboxes: dict[str, Sandbox],
                                                           echo: LoadedComponent) -> None:
    pair = (response(b"\x01" * 1000), emitted(2))  # 19 flat values: passed through memory
    out = both(sandboxes, echo, "pair", *pair)
    assert out.value == norm(pair) and out.trace == norm([("pair", pair)])
    mix = (7, -(2**63), "mïx", None, b"\x00\x01", True)  # 10 flat values: passed as core values
    out = both(sandboxes, echo, "mix", *mix)
    assert out.value == norm(mix)


def test_no_result_function(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "note", "a note ✓")
    assert out.ok and out.value == norm(None) and out.trace == norm([("note", ("a note ✓",))])


# ---- host values that do not fit (export arguments, host function results) -----------------------


BAD_ARGUMENTS: list[tuple[str, tuple[Any, ...], str]] = [
    ("echo-u8", (256,), "ValueError"), ("echo-s8", (-129,), "ValueError"), ("echo-u64", (2**64,), "ValueError"),
    ("echo-u32", (-1,), "ValueError"), ("echo-u8", ("1",), "TypeError"), ("echo-bool", (1,), "TypeError"),
    ("echo-f64", (1,), "TypeError"), ("echo-char", ("ab",), "TypeError"), ("echo-string", (b"x",), "TypeError"),
    ("echo-string", ("\ud800",), "UnicodeEncodeError"), ("echo-bytes", ("text",), "TypeError"),
    ("echo-bytes", ([1, 2],), "TypeError"), ("echo-color", ("purple",), "ValueError"),
    ("echo-color", (1,), "TypeError"), ("echo-points", ((point(1, 2),),), "TypeError"),
    ("echo-points", ([point(1, 2), "x"],), "AttributeError"), ("echo-opt-string", (5,), "ValueError"),
    ("echo-opt-opt-string", ("x",), "TypeError"), ("echo-res-bare", (Variant("maybe"),), "ValueError"),
    ("echo-tuple", ((1, "a"),), "TypeError"), ("echo-perms", (["read"],), "TypeError"),
    ("echo-outer", (rec(id=1),), "AttributeError"), ("echo-u8", (1, 2), "TypeError"),
]


@pytest.mark.parametrize(("export", "args", "cls"), BAD_ARGUMENTS,
                         ids=[f"{e}-{i}" for i, (e, _a, _c) in enumerate(BAD_ARGUMENTS)])
def test_bad_export_argument_is_a_host_bug(sandboxes: dict[str, Sandbox], echo: LoadedComponent, export: str,
                                           args: tuple[Any, ...], cls: str) -> None:
    out = both(sandboxes, echo, export, *args)
    assert out.error == ("HostBug", f"{cls} in {export} arguments", None)
    assert out.trace == norm([])  # the guest never ran


BAD_RESULTS: list[tuple[str, Any, Any, str]] = [
    ("echo-u16", 1, 70000, "ValueError"), ("echo-s64", 1, 2**63, "ValueError"), ("echo-u8", 1, None, "TypeError"),
    ("echo-string", "a", 5, "TypeError"), ("echo-color", "red", "purple", "ValueError"),
    ("echo-bytes", b"a", "text", "TypeError"), ("echo-response", response(b""), response("str"), "TypeError"),
    ("echo-res-unit-string", None, 5, "ValueError"), ("echo-opt-u32", 1, 2**32, "ValueError"),
    ("echo-emitted", emitted(1), rec(user_id="x"), "AttributeError"), ("echo-bool", True, 1, "TypeError"),
    ("note", "x", "unexpected", "AssertionError"),
]


@pytest.mark.parametrize(("export", "arg", "bad", "cls"), BAD_RESULTS,
                         ids=[f"{e}-{i}" for i, (e, _a, _b, _c) in enumerate(BAD_RESULTS)])
def test_bad_host_result_is_a_host_bug(sandboxes: dict[str, Sandbox], echo: LoadedComponent, export: str, arg: Any,
                                       bad: Any, cls: str) -> None:
    out = both(sandboxes, echo, export, arg, overrides={export: lambda *_a: bad})
    assert out.error == ("HostBug", f"{cls} in {export}", None)
    assert out.trace == norm([(export, (arg,))])


def test_untagged_result_takes_a_str_as_the_error(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    """result<_, string> is untagged: a host returning "ok" means err("ok") (wasmtime-py-notes.md)."""
    out = both(sandboxes, echo, "echo-res-unit-string", None, overrides={"echo-res-unit-string": lambda _v: "ok"})
    assert out.value == norm("ok")


def _raise(exc: BaseException) -> Callable[..., Any]:
    def fn(*_args: Any) -> Any:
        raise exc

    return fn


def test_host_function_raising_is_a_host_bug(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "echo-string", "x", overrides={"echo-string": _raise(RuntimeError("db down"))})
    assert out.error == ("HostBug", "RuntimeError in echo-string", None)


def test_guest_fault_becomes_the_wit_error(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    fault = {"echo-res-unit-string": _raise(GuestFault("path not allowed"))}
    assert both(sandboxes, echo, "echo-res-unit-string", None, overrides=fault).value == norm("path not allowed")
    fault = {"echo-res-string-string": _raise(GuestFault("nope"))}
    out = both(sandboxes, echo, "echo-res-string-string", Variant("ok", "x"), overrides=fault)
    assert out.value == norm(Variant("err", "nope"))


def test_guest_fault_without_error_case_is_logged(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "note", "x", overrides={"note": _raise(GuestFault("too long"))})
    assert out.ok and out.logs == [("warn", "host refused call: too long")]


# ---- traps -------------------------------------------------------------------------------------------


def test_unreachable(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "boom")
    assert out.error is not None and out.error[0] == "GuestTrap" and out.error[2] == "panic"


def test_trap_after_a_host_call(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "echo-then-boom", "before")
    assert out.error is not None and out.error[2] == "panic"
    assert out.trace == norm([("echo-then-boom", ("before",))])


def test_fuel_exhausted(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "spin", limits=Limits(fuel=200_000))
    assert out.error is not None and out.error[2] == "fuel"


def test_epoch_deadline(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "spin", limits=Limits(timeout_s=0.05))
    assert out.error is not None and out.error[2] == "timeout"


def test_memory_bomb(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "grow", limits=Limits(memory_bytes=MB))
    assert out.error is not None and out.error[2] in ("memory", "panic")


def test_initial_memory_over_the_limit(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "echo-u8", 1, limits=Limits(memory_bytes=64 * KIB))
    assert out.error is not None and out.error[2] == "memory"


def test_argument_too_big_for_guest_memory(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    """Lowering 1 MiB into a guest capped at 512 KiB: the guest's allocator cannot grow and traps."""
    out = both(sandboxes, echo, "echo-bytes", MB_BYTES, limits=Limits(memory_bytes=512 * KIB))
    assert out.error is not None and out.error[0] == "GuestTrap"
    assert out.trace == norm([])


def test_host_result_too_big_for_guest_memory(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = both(sandboxes, echo, "echo-bytes", b"small", overrides={"echo-bytes": lambda _b: MB_BYTES},
               limits=Limits(memory_bytes=512 * KIB))
    assert out.error is not None and out.error[0] == "GuestTrap"
    assert out.trace == norm([("echo-bytes", (b"small",))])


# ---- several calls on one instance -------------------------------------------------------------------


def session(sandbox: Sandbox, loaded: LoadedComponent, calls: list[tuple[str, tuple[Any, ...]]],
            api: EchoApi) -> list[Any]:
    """``calls`` on one instance (``Sandbox.reused_instance``), each outcome as Airlock classifies it."""
    results: list[Any] = []
    with sandbox.reused_instance(loaded, api, Limits()) as call:
        for name, args in calls:
            try:
                results.append(("ok", norm(call(name, args))))
            except (GuestTrap, HostBug) as exc:
                results.append(_error(exc))
    return results


def _session_both(sandboxes: dict[str, Sandbox], echo: LoadedComponent,
                  calls: list[tuple[str, tuple[Any, ...]]], overrides: dict[str, Any] | None = None) -> list[Any]:
    outs = {p: session(sandboxes[p], echo, calls, EchoApi(overrides)) for p in PATHS}
    assert outs["fast"] == outs["stock"]
    return outs["fast"]


def test_calls_after_a_trap_on_the_same_instance(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = _session_both(sandboxes, echo, [("echo-u8", (1,)), ("boom", ()), ("echo-u8", (2,)), ("echo-string", ("x",))])
    assert out[0] == ("ok", norm(1))
    assert out[1][0] == "GuestTrap" and out[1][2] == "panic"
    for later in out[2:]:
        assert later[0] == "GuestTrap" and "cannot enter component instance" in later[1]


def test_calls_after_a_host_bug_on_the_same_instance(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    out = _session_both(sandboxes, echo, [("echo-u16", (1,)), ("echo-u8", (3,))],
                        overrides={"echo-u16": lambda _v: 70000})
    assert out[0] == ("HostBug", "ValueError in echo-u16", None)
    assert out[1][0] == "HostBug"  # the recorded host bug still blames the host for the dead instance


def test_many_calls_on_one_instance(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    calls = [(f"echo-{k}", (v,)) for k, v in ROUND_TRIPS if not isinstance(v, bytes) or len(v) < 4096]
    out = _session_both(sandboxes, echo, calls)
    assert all(o[0] == "ok" for o in out)


# ---- the real Telegram component ---------------------------------------------------------------------

TELEGRAM = BUILT_CHANNELS / "telegram.wasm"
TG_CAPS = BUILT_CHANNELS / "telegram.capabilities.json"


class RecordingHost:
    """A channel-host that records every call with its arguments and answers like a healthy Bot API."""

    def __init__(self) -> None:
        self.host_bug: str | None = None
        self.trace: list[tuple[str, Any]] = []
        self.workspace: dict[str, str] = {}

    def _t(self, name: str, *args: Any) -> None:
        self.trace.append((name, args))

    def log(self, level: str, message: str) -> None:
        self._t("log", level, message)

    def now_millis(self) -> int:
        self._t("now-millis")
        return 1_700_000_000_000

    def workspace_read(self, path: str) -> str | None:
        self._t("workspace-read", path)
        return self.workspace.get(path)

    def workspace_write(self, path: str, content: str) -> None:
        self._t("workspace-write", path, content)
        self.workspace[path] = content

    def http_request(self, method: str, url: str, headers_json: str, body: bytes | None,
                     timeout_ms: int | None) -> HttpResponse:
        self._t("http-request", method, url, headers_json, body, timeout_ms)
        if "getUpdates" in url:
            update = {"update_id": 9, "message": {"message_id": 3, "date": 1700000000, "text": "polled ✓",
                                                   "from": {"id": 42, "is_bot": False, "first_name": "Zoë"},
                                                   "chat": {"id": 42, "type": "private"}}}
            payload: dict[str, Any] = {"ok": True, "result": [update]}
        else:
            payload = {"ok": True, "result": {"message_id": 77, "date": 1700000000, "chat": {"id": 42}}}
        return HttpResponse(status=200, headers_json='{"content-type": "application/json"}',
                            body=json.dumps(payload).encode())

    def secret_exists(self, name: str) -> bool:
        self._t("secret-exists", name)
        return True

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        self._t("store-attachment-data", attachment_id, data)

    def emit_message(self, msg: EmittedMessage) -> None:
        self._t("emit-message", msg)

    def websocket_send_text(self, payload: str) -> None:
        self._t("websocket-send-text", payload)
        raise GuestFault("no websocket")

    def pairing_upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]:
        self._t("pairing-upsert-request", channel, external_id, meta_json)
        return "PAIR42", True

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        self._t("pairing-resolve-identity", channel, external_id)
        return None

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        self._t("pairing-read-allow-from", channel)
        return []


def _telegram_callbacks() -> list[tuple[str, tuple[Any, ...]]]:
    caps = json.loads(TG_CAPS.read_text())
    config = dict(caps.get("config", {}), dm_policy="open", bot_username="airlock_test_bot", polling_enabled=True)
    update = {"update_id": 1, "message": {"message_id": 5, "date": 1700000000, "text": "hello bot ✓",
                                          "from": {"id": 42, "is_bot": False, "first_name": "Zoë", "username": "z"},
                                          "chat": {"id": 42, "type": "private", "first_name": "Zoë"}}}
    req = IncomingHttpRequest("POST", "/webhook/telegram", '{"content-type": "application/json"}', "{}",
                              json.dumps(update).encode(), True)
    reply = AgentResponse(message_id="m1", content="hi Zoë ✓", thread_id=None,
                          metadata_json=json.dumps({"chat_id": 42, "message_id": 5}))
    return [
        ("on-start", (json.dumps(config),)),
        ("on-http-request", (convert.incoming_request_to_wit(req),)),
        ("on-poll", ()),
        ("on-respond", (convert.agent_response_to_wit(reply),)),
        ("on-status", (convert.status_update_to_wit(StatusUpdate("thinking", "", reply.metadata_json)),)),
        ("on-broadcast", ("42", convert.agent_response_to_wit(reply))),
        ("on-shutdown", ()),
    ]


def _norm_trace(trace: list[tuple[str, Any]]) -> Any:
    return [(name, tuple(norm(a) if not isinstance(a, EmittedMessage) else repr(a) for a in args))
            for name, args in trace]


@pytest.fixture(scope="module")
def telegram(runtime: Runtime) -> LoadedComponent:
    if not TELEGRAM.exists():
        pytest.skip("build/channels/telegram.wasm not built (make guests)")
    return runtime.load(TELEGRAM)


def test_telegram_component_same_results_and_host_calls(runtime: Runtime, telegram: LoadedComponent) -> None:
    per_path = {}
    for p in PATHS:
        sandbox = Sandbox(runtime, fastpath=(p == "fast"))
        host = RecordingHost()
        outcomes = []
        for callback, args in _telegram_callbacks():
            try:
                value, _ = sandbox.call(telegram, callback, args, host, Limits())
                outcomes.append((callback, "ok", norm(value)))
            except (GuestTrap, HostBug) as exc:
                outcomes.append((callback, *_error(exc)))
        per_path[p] = (outcomes, _norm_trace(host.trace), host.workspace)
    assert per_path["fast"] == per_path["stock"]
    outcomes, trace, _ws = per_path["fast"]
    assert all(o[1] == "ok" for o in outcomes), outcomes
    names = [t[0] for t in trace]
    assert "emit-message" in names and "http-request" in names  # the callbacks did real work


# ---- no per-element Python work for list<u8> ---------------------------------------------------------


@pytest.fixture
def no_stock_conversion(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if anything falls back to wasmtime-py's per-value conversion."""
    from wasmtime.component import _types as wt

    def refuse(*_a: Any) -> Any:
        raise AssertionError("stock conversion used on the fast path")

    for cls in (wt.U8, wt.ListType, wt.RecordType, wt.String, wt.OptionType, wt.ResultType, wt.VariantType):
        monkeypatch.setattr(cls, "convert_to_c", refuse)
        monkeypatch.setattr(cls, "convert_from_c", refuse)
    yield


def test_fast_path_never_uses_stock_conversion(sandboxes: dict[str, Sandbox], echo: LoadedComponent,
                                               no_stock_conversion: None) -> None:
    for kind, value in [("bytes", MB_BYTES), ("outer", outer()), ("emitted", emitted(2)), ("res-opt-string",
                                                                                         Variant("ok", "x"))]:
        out = run(sandboxes["fast"], echo, f"echo-{kind}", (value,), EchoApi(), Limits())
        assert out.ok and out.value == norm(value)


def test_one_megabyte_round_trip_is_exact(sandboxes: dict[str, Sandbox], echo: LoadedComponent) -> None:
    start = time.perf_counter()
    out = run(sandboxes["fast"], echo, "echo-bytes", (MB_BYTES,), EchoApi(), Limits())
    elapsed = time.perf_counter() - start
    assert out.value == norm(MB_BYTES)
    print(f"1 MiB list<u8> through export arg, import arg, import result, export result: {elapsed * 1e3:.0f} ms")
