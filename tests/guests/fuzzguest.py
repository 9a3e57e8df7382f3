"""A WAT channel guest that calls one host function with arguments taken from its webhook body.

It lets a test (a fuzzer) drive every ``channel-host`` function through the real canonical ABI, on both call
paths, with any strings it likes. ``on-http-request`` reads its body as::

    u32 selector | u32 n | u32 len1 | u32 len2 | u32 len3 | arg1 bytes | arg2 bytes | arg3 bytes

(little-endian) and calls the host function ``FUNCTIONS[selector]`` with ``arg1..3`` as (pointer, length)
pairs into its own memory and ``n`` as the integer argument (the log level, the http timeout). It answers 200
with a 16-byte body: the import's return area (``result``/``option`` discriminant first) or, for
``secret-exists`` and ``now-millis``, the returned value. Lengths are not checked: a length past the body
makes the host read out of bounds, which the canonical ABI turns into a guest trap. Bytes that are not UTF-8
given for a ``string`` argument are a guest trap too (the host never sees them).

``encode(selector, n, *args)`` builds such a body; ``build_component(tmp)`` builds the component (cached).
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import watguest

FUNCTIONS = (
    "log",                       # 0: log(level = n, message = a1)
    "now-millis",                # 1
    "workspace-read",            # 2: (a1)
    "workspace-write",           # 3: (a1, a2)
    "secret-exists",             # 4: (a1)
    "store-attachment-data",     # 5: (a1, data = a2 bytes)
    "emit-message",              # 6: user-id a1, content a2, metadata-json a3, no name/thread/attachments
    "websocket-send-text",       # 7: (a1)
    "pairing-upsert-request",    # 8: (a1, a2, a3)
    "pairing-resolve-identity",  # 9: (a1, a2)
    "pairing-read-allow-from",   # 10: (a1)
    "http-request",              # 11: method a1, url a2, headers-json a3, no body, timeout-ms some(n)
)
"""Host functions by selector."""

HEADER_BYTES = 20
_RET = 3072  # the import return area (16 bytes), echoed as the response body
_RESP = 2048  # the outgoing-http-response record
_EMPTY_JSON = 1510  # "{}" from watguest's static data


def encode(selector: int, n: int, *args: bytes) -> bytes:
    """The webhook body that makes the guest call ``FUNCTIONS[selector]`` with ``n`` and up to 3 args."""
    padded = [*args, b"", b"", b""][:3]
    return struct.pack("<5I", selector, n & 0xFFFFFFFF, *(len(a) for a in padded)) + b"".join(padded)


def _case(selector: int) -> str:
    """The WAT that calls ``FUNCTIONS[selector]``: $a1..$a3 / $l1..$l3 are the argument slices, $n the int."""
    a = {i: f"(local.get $a{i}) (local.get $l{i})" for i in (1, 2, 3)}
    ret = f"(i32.const {_RET})"
    return [
        "(call $log (local.get $n) " + a[1] + ")",
        f"(i64.store {ret} (call $now))",
        f"(call $ws_read {a[1]} {ret})",
        f"(call $ws_write {a[1]} {a[2]} {ret})",
        f"(i32.store {ret} (call $secret_exists {a[1]}))",
        f"(call $attach {a[1]} {a[2]} {ret})",
        # user-id, user-name none, content, thread-id none, metadata-json, attachments []
        f"(call $emit {a[1]} (i32.const 0) (i32.const 0) (i32.const 0) {a[2]} (i32.const 0) (i32.const 0)"
        f" (i32.const 0) {a[3]} (i32.const 0) (i32.const 0))",
        f"(call $ws_send {a[1]} {ret})",
        f"(call $pair_upsert {a[1]} {a[2]} {a[3]} {ret})",
        f"(call $pair_resolve {a[1]} {a[2]} {ret})",
        f"(call $pair_allow {a[1]} {ret})",
        # method, url, headers-json, body none (disc, ptr, len), timeout-ms some(n)
        f"(call $http {a[1]} {a[2]} {a[3]} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1)"
        f" (local.get $n) {ret})",
    ][selector]


def _dispatch() -> str:
    """``br_table`` over the selectors; an unknown selector calls nothing."""
    n = len(FUNCTIONS)
    labels = " ".join(f"$c{i}" for i in range(n))
    text = f"(block $c0 (br_table {labels} $done (i32.load (local.get $b))))\n"
    for i in range(n):
        text = f"(block $c{i + 1}\n{text}" if i + 1 < n else f"(block $done\n{text}"
        text += f"    {_case(i)} (br $done))\n"
    return text


def wat_source(name: str = "fuzz") -> str:
    """The core module's WAT (airlock world)."""
    pkg, version, _ = watguest.WORLDS["airlock"]
    host, exp = f"{pkg}/channel-host@{version}", f"{pkg}/channel@{version}"
    i32 = lambda k: " ".join(["i32"] * k)  # noqa: E731
    base = watguest.wat_source(name)
    start = base.index(f'  (func (export "{exp}#on-start")')
    end = base.index(f'  (func (export "{exp}#on-http-request")')
    on_start = base[start:end]
    data_start = base.index("  (data ")
    data_end = base.index(watguest.CABI_REALLOC)
    return f"""(module
  (import "{host}" "log" (func $log (param {i32(3)})))
  (import "{host}" "now-millis" (func $now (result i64)))
  (import "{host}" "workspace-read" (func $ws_read (param {i32(3)})))
  (import "{host}" "workspace-write" (func $ws_write (param {i32(5)})))
  (import "{host}" "secret-exists" (func $secret_exists (param {i32(2)}) (result i32)))
  (import "{host}" "store-attachment-data" (func $attach (param {i32(5)})))
  (import "{host}" "emit-message" (func $emit (param {i32(14)})))
  (import "{host}" "websocket-send-text" (func $ws_send (param {i32(3)})))
  (import "{host}" "pairing-upsert-request" (func $pair_upsert (param {i32(7)})))
  (import "{host}" "pairing-resolve-identity" (func $pair_resolve (param {i32(5)})))
  (import "{host}" "pairing-read-allow-from" (func $pair_allow (param {i32(3)})))
  (import "{host}" "http-request" (func $http (param {i32(12)})))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
{base[data_start:data_end]}{watguest.CABI_REALLOC}{on_start}  (func (export "{exp}#on-http-request")
    (param {i32(11)}) (result i32)
    (local $b i32) (local $n i32) (local $l1 i32) (local $l2 i32) (local $l3 i32)
    (local $a1 i32) (local $a2 i32) (local $a3 i32)
    (local.set $b (local.get 8))
    (local.set $n (i32.load offset=4 (local.get $b)))
    (local.set $l1 (i32.load offset=8 (local.get $b)))
    (local.set $l2 (i32.load offset=12 (local.get $b)))
    (local.set $l3 (i32.load offset=16 (local.get $b)))
    (local.set $a1 (i32.add (local.get $b) (i32.const {HEADER_BYTES})))
    (local.set $a2 (i32.add (local.get $a1) (local.get $l1)))
    (local.set $a3 (i32.add (local.get $a2) (local.get $l2)))
{_dispatch()}
    (i32.store16 (i32.const {_RESP}) (i32.const 200))
    (i32.store (i32.const {_RESP + 4}) (i32.const {_EMPTY_JSON}))
    (i32.store (i32.const {_RESP + 8}) (i32.const 2))
    (i32.store (i32.const {_RESP + 12}) (i32.const {_RET}))
    (i32.store (i32.const {_RESP + 16}) (i32.const 16))
    (i32.const {_RESP}))
  (func (export "{exp}#on-poll"))
  (func (export "{exp}#on-respond") (param {i32(11)}) (result i32)
    (i32.store8 (i32.const {_RESP}) (i32.const 0))
    (i32.const {_RESP}))
  (func (export "{exp}#on-status") (param {i32(5)}))
  (func (export "{exp}#on-broadcast") (param {i32(13)}) (result i32)
    (i32.store8 (i32.const {_RESP}) (i32.const 0))
    (i32.const {_RESP}))
  (func (export "{exp}#on-shutdown"))
)
"""


def build_component(tmp: Path, name: str = "fuzz") -> Path:
    """Build the fuzz guest into ``tmp`` (once) and return the component's path."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / f"fuzzguest-{name}.wasm"
    if out.exists():
        return out
    wat, core = tmp / f"fuzzguest-{name}.wat", tmp / f"fuzzguest-{name}.core.wasm"
    wat.write_text(wat_source(name))
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(watguest.WIT_DIR), "--world", watguest.WORLDS["airlock"][2],
                    str(wat), "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out
