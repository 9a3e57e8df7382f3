"""A hostile channel component, hand-written in WAT: a puppet that attacks the host as each webhook tells it.

``build_component(tmp, name)`` writes the core module (``wat_source``), embeds the ``airlock:channel`` world
with ``wasm-tools component embed`` and wraps it with ``wasm-tools component new`` (the same route as
``tests/guests/watguest.py``; no WASI import). on-start asks for ``POST``/``GET``/``PUT``/``DELETE``/``PATCH`` on
``/webhook/<name>``; on-poll, on-respond, on-status and on-broadcast do nothing.

on-http-request reads its order from the request body: one op byte, then fields, each a little-endian u32
length and that many bytes (``order(op, *fields)`` builds one; a number is a 4-byte field, ``num``). Answers
are 200 unless the op traps; ``decode_*`` read the answer bodies.

====  ======================================================  ===============================================
op    what the guest does                                     answer body
====  ======================================================  ===============================================
e     nothing                                                 the rest of the body, byte for byte
l     loops forever                                           (trap: timeout or fuel)
m     ``memory.grow(n)`` once, then 16 pages at a time         u32 pages reached
      until refused
M     same, then ``unreachable`` (a guest that aborts on       (trap: panic)
      allocation failure, as Rust's does)
s     grows one page at a time, writing every 4 KiB of it,    u32 pages reached
      spinning n iterations between pages, until refused
r     recurses without end                                    (trap: stack exhausted)
E     emit-message n times (content, user id)                 ``ok``
L     log(info, text) n times                                 ``ok``
W     workspace-write n distinct paths (prefix + 8 hex        u32 ok, u32 refused, last error text
      digits) with one value
V     as W, the value made in guest memory: n NUL bytes       as W
w     workspace-write(path, value)                            ``O`` or ``E`` + error text
R     workspace-read(path)                                    ``N`` or ``S`` + value
h     http-request(method, url, headers-json, [body])         ``O`` + u16 status + u32 n + n bytes of
                                                              headers-json + body, or ``E`` + error text
H     http-request n times (method, url, headers, [body])     u32 ok, u32 refused, last error text
x     secret-exists(name)                                     ``1`` or ``0``
p     pairing-upsert-request(channel, id, meta-json)          ``O`` + code, or ``E`` + error text
B     one host call with an n-byte argument made in guest     ``O`` or ``E`` + error text
      memory (field 1: ``http`` body, ``attach`` data,
      ``ws`` workspace value)
====  ======================================================  ===============================================
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from watguest import CABI_REALLOC, WIT_DIR, _wasm_tools

WORLD = "airlock:channel/sandboxed-channel"
HOST = "airlock:channel/channel-host@0.1.0"
EXPORT = "airlock:channel/channel@0.1.0"
METHODS = ("POST", "GET", "PUT", "DELETE", "PATCH")

RET = 8192  # the export's return area (outgoing-http-response)
IRET = 8256  # import return areas
FIELDS = 12288  # (ptr, len) of each parsed field
MAX_FIELDS = 256
SCRATCH = 16384  # a workspace key being built (prefix + 8 hex digits), up to 4 KiB
HEAP = 65536  # cabi_realloc's first address
PAGE = 65536


def num(n: int) -> bytes:
    """A number field (u32, little-endian)."""
    return struct.pack("<I", n)


def order(op: str, *fields: bytes | str | int) -> bytes:
    """The request body that makes the guest run ``op`` with ``fields`` (str: UTF-8, int: ``num``)."""
    out = op.encode("ascii")
    for f in fields:
        raw = num(f) if isinstance(f, int) else f.encode() if isinstance(f, str) else f
        out += struct.pack("<I", len(raw)) + raw
    return out


def decode_http(body: bytes) -> tuple[int, str, bytes] | str:
    """An ``h`` answer: (status, headers-json, body) or the error text."""
    if body[:1] == b"E":
        return body[1:].decode()
    assert body[:1] == b"O", body[:80]
    status, n = struct.unpack("<HI", body[1:7])
    return status, body[7:7 + n].decode(), body[7 + n:]


def decode_counts(body: bytes) -> tuple[int, int, str]:
    """A ``W`` / ``H`` answer: (ok, refused, last error text)."""
    ok, refused = struct.unpack("<II", body[:8])
    return ok, refused, body[8:].decode()


def i32s(n: int) -> str:
    """``n`` core i32 types, for a function signature."""
    return " ".join(["i32"] * n)


def _data(addr: int, raw: bytes) -> str:
    esc = "".join(f"\\{b:02x}" for b in raw)
    return f'  (data (i32.const {addr}) "{esc}")\n'


def _static(name: str) -> tuple[dict[str, int], str]:
    """Static data from address 1024: the on-start answer's strings and constants. Returns addresses and WAT."""
    path = f"/webhook/{name}".encode()
    items: list[tuple[str, bytes]] = [("name", name.encode()), ("path", path), ("json", b"{}"), ("ok", b"ok"),
                                      ("user", b"hostile-user"), ("http", b"http"), ("attach", b"attach"),
                                      ("att_id", b"att-1"), ("post", b"POST"), ("url", b"https://api.allowed.test/")]
    items += [(f"m{i}", m.encode()) for i, m in enumerate(METHODS)]
    addr, table, wat = 1024, {}, ""
    for key, raw in items:
        table[key] = addr
        wat += _data(addr, raw)
        addr += (len(raw) + 7) // 8 * 8
    methods = b"".join(struct.pack("<II", table[f"m{i}"], len(m)) for i, m in enumerate(METHODS))
    table["methods"], table["endpoint"] = addr, addr + 64
    endpoint = struct.pack("<IIIIB", table["path"], len(path), addr, len(METHODS), 0)
    wat += _data(addr, methods) + _data(addr + 64, endpoint)
    table["path_len"], table["name_len"] = len(path), len(name.encode())
    return table, wat


_HELPERS = f"""
  (func $fp (param $i i32) (result i32)
    (i32.load (i32.add (i32.const {FIELDS}) (i32.shl (local.get $i) (i32.const 3)))))
  (func $fl (param $i i32) (result i32)
    (i32.load offset=4 (i32.add (i32.const {FIELDS}) (i32.shl (local.get $i) (i32.const 3)))))
  (func $num (param $i i32) (result i32)
    (if (result i32) (i32.lt_u (call $fl (local.get $i)) (i32.const 4)) (then (i32.const 0))
      (else (i32.load (call $fp (local.get $i))))))
  (func $parse (param $p i32) (param $end i32)
    (local $len i32)
    (block $done (loop $next
      (br_if $done (i32.gt_u (i32.add (local.get $p) (i32.const 4)) (local.get $end)))
      (br_if $done (i32.ge_u (global.get $nf) (i32.const {MAX_FIELDS})))
      (local.set $len (i32.load (local.get $p)))
      (br_if $done (i32.gt_u (local.get $len) (i32.sub (local.get $end) (i32.add (local.get $p) (i32.const 4)))))
      (i32.store (i32.add (i32.const {FIELDS}) (i32.shl (global.get $nf) (i32.const 3)))
        (i32.add (local.get $p) (i32.const 4)))
      (i32.store offset=4 (i32.add (i32.const {FIELDS}) (i32.shl (global.get $nf) (i32.const 3))) (local.get $len))
      (global.set $nf (i32.add (global.get $nf) (i32.const 1)))
      (local.set $p (i32.add (i32.add (local.get $p) (i32.const 4)) (local.get $len)))
      (br $next))))
  (func $alloc (param $n i32) (result i32) (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (local.get $n)))
  (func $respond (param $p i32) (param $l i32) (result i32)
    (i32.store16 (i32.const {RET}) (i32.const 200))
    (i32.store (i32.const {RET + 4}) (global.get $json)) (i32.store (i32.const {RET + 8}) (i32.const 2))
    (i32.store (i32.const {RET + 12}) (local.get $p)) (i32.store (i32.const {RET + 16}) (local.get $l))
    (i32.const {RET}))
  ;; answer: a tag byte followed by the string at (p, l)
  (func $tagged (param $tag i32) (param $p i32) (param $l i32) (result i32)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $l) (i32.const 1))))
    (i32.store8 (local.get $out) (local.get $tag))
    (memory.copy (i32.add (local.get $out) (i32.const 1)) (local.get $p) (local.get $l))
    (call $respond (local.get $out) (i32.add (local.get $l) (i32.const 1))))
  ;; answer for result<_, string> written at IRET: "O", or "E" + the error
  (func $unit_result (result i32)
    (if (result i32) (i32.load8_u (i32.const {IRET}))
      (then (call $tagged (i32.const 69) (i32.load (i32.const {IRET + 4})) (i32.load (i32.const {IRET + 8}))))
      (else (call $tagged (i32.const 79) (i32.const 0) (i32.const 0)))))
  ;; answer: u32 ok, u32 refused, then the last error text (p, l)
  (func $counts (param $ok i32) (param $bad i32) (param $p i32) (param $l i32) (result i32)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $l) (i32.const 8))))
    (i32.store (local.get $out) (local.get $ok)) (i32.store offset=4 (local.get $out) (local.get $bad))
    (memory.copy (i32.add (local.get $out) (i32.const 8)) (local.get $p) (local.get $l))
    (call $respond (local.get $out) (i32.add (local.get $l) (i32.const 8))))
  (func $u32_answer (param $v i32) (result i32)
    (local $out i32)
    (local.set $out (call $alloc (i32.const 4)))
    (i32.store (local.get $out) (local.get $v))
    (call $respond (local.get $out) (i32.const 4)))
  (func $hex (param $v i32) (result i32)
    (i32.add (local.get $v) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $v) (i32.const 10)))))
  ;; http-request with fields base.. base+3 (method, url, headers, optional body); result at IRET
  (func $http_from (param $b i32)
    (call $http (call $fp (local.get $b)) (call $fl (local.get $b))
      (call $fp (i32.add (local.get $b) (i32.const 1))) (call $fl (i32.add (local.get $b) (i32.const 1)))
      (call $fp (i32.add (local.get $b) (i32.const 2))) (call $fl (i32.add (local.get $b) (i32.const 2)))
      (i32.gt_u (global.get $nf) (i32.add (local.get $b) (i32.const 3)))
      (call $fp (i32.add (local.get $b) (i32.const 3))) (call $fl (i32.add (local.get $b) (i32.const 3)))
      (i32.const 0) (i32.const 0) (i32.const {IRET})))
  (func $rec (param $d i64) (result i64)
    (i64.add (call $rec (i64.add (local.get $d) (i64.const 1))) (local.get $d)))
"""


def _ops() -> str:
    """The op handlers, one ``if`` each on ``$op``; each returns the answer's address."""
    grow_until_refused = ("(block $full (loop $more (br_if $full (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))"
                          " (br $more)))")
    return f"""
    (if (i32.eq (local.get $op) (i32.const 101)) (then  ;; e
      (return (call $respond (i32.add (local.get 8) (i32.const 1)) (i32.sub (local.get 9) (i32.const 1))))))
    (if (i32.eq (local.get $op) (i32.const 108)) (then (loop $spin (br $spin))))  ;; l
    (if (i32.eq (local.get $op) (i32.const 109)) (then  ;; m
      (drop (memory.grow (call $num (i32.const 0)))) {grow_until_refused}
      (return (call $u32_answer (memory.size)))))
    (if (i32.eq (local.get $op) (i32.const 77)) (then  ;; M
      (drop (memory.grow (call $num (i32.const 0)))) {grow_until_refused} unreachable))
    (if (i32.eq (local.get $op) (i32.const 115)) (then  ;; s
      (block $full (loop $page
        (local.set $a (memory.grow (i32.const 1)))
        (br_if $full (i32.eq (local.get $a) (i32.const -1)))
        (local.set $i (i32.const 0))
        (loop $touch
          (i32.store (i32.add (i32.mul (local.get $a) (i32.const {PAGE})) (i32.shl (local.get $i) (i32.const 12)))
            (local.get $i))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $touch (i32.lt_u (local.get $i) (i32.const 16))))
        (local.set $i (call $num (i32.const 0)))
        (loop $busy (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $busy (i32.gt_s (local.get $i) (i32.const 0))))
        (br $page)))
      (return (call $u32_answer (memory.size)))))
    (if (i32.eq (local.get $op) (i32.const 114)) (then (drop (call $rec (i64.const 0)))))  ;; r
    (if (i32.eq (local.get $op) (i32.const 69)) (then  ;; E
      (local.set $n (call $num (i32.const 0)))
      (block $end (loop $next (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (call $emit (call $fp (i32.const 2)) (call $fl (i32.const 2)) (i32.const 0) (i32.const 0) (i32.const 0)
          (call $fp (i32.const 1)) (call $fl (i32.const 1)) (i32.const 0) (i32.const 0) (i32.const 0)
          (global.get $json) (i32.const 2) (i32.const 0) (i32.const 0))
        (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
      (return (call $respond (global.get $okp) (i32.const 2)))))
    (if (i32.eq (local.get $op) (i32.const 76)) (then  ;; L
      (local.set $n (call $num (i32.const 0)))
      (block $end (loop $next (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (call $log (i32.const 2) (call $fp (i32.const 1)) (call $fl (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
      (return (call $respond (global.get $okp) (i32.const 2)))))
    (if (i32.eq (local.get $op) (i32.const 86)) (then  ;; V: W with a value of n NUL bytes made in guest memory
      (local.set $l (call $num (i32.const 2)))
      (i32.store (i32.add (i32.const {FIELDS}) (i32.const 16)) (call $alloc (local.get $l)))
      (i32.store (i32.add (i32.const {FIELDS}) (i32.const 20)) (local.get $l))
      (local.set $op (i32.const 87))))
    (if (i32.eq (local.get $op) (i32.const 87)) (then  ;; W
      (local.set $n (call $num (i32.const 0)))
      (local.set $l (call $fl (i32.const 1)))
      (memory.copy (i32.const {SCRATCH}) (call $fp (i32.const 1)) (local.get $l))
      (block $end (loop $next (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $a (i32.const 0))
        (loop $digit
          (i32.store8 (i32.add (i32.add (i32.const {SCRATCH}) (local.get $l)) (local.get $a))
            (call $hex (i32.and (i32.shr_u (local.get $i)
              (i32.sub (i32.const 28) (i32.shl (local.get $a) (i32.const 2)))) (i32.const 15))))
          (local.set $a (i32.add (local.get $a) (i32.const 1)))
          (br_if $digit (i32.lt_u (local.get $a) (i32.const 8))))
        (call $ws_write (i32.const {SCRATCH}) (i32.add (local.get $l) (i32.const 8))
          (call $fp (i32.const 2)) (call $fl (i32.const 2)) (i32.const {IRET}))
        (if (i32.load8_u (i32.const {IRET}))
          (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))
                (local.set $ep (i32.load (i32.const {IRET + 4}))) (local.set $el (i32.load (i32.const {IRET + 8}))))
          (else (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
      (return (call $counts (local.get $ok) (local.get $bad) (local.get $ep) (local.get $el)))))
    (if (i32.eq (local.get $op) (i32.const 119)) (then  ;; w
      (call $ws_write (call $fp (i32.const 0)) (call $fl (i32.const 0))
        (call $fp (i32.const 1)) (call $fl (i32.const 1)) (i32.const {IRET}))
      (return (call $unit_result))))
    (if (i32.eq (local.get $op) (i32.const 82)) (then  ;; R
      (call $ws_read (call $fp (i32.const 0)) (call $fl (i32.const 0)) (i32.const {IRET}))
      (if (i32.load8_u (i32.const {IRET}))
        (then (return (call $tagged (i32.const 83)
          (i32.load (i32.const {IRET + 4})) (i32.load (i32.const {IRET + 8}))))))
      (return (call $tagged (i32.const 78) (i32.const 0) (i32.const 0)))))
    (if (i32.eq (local.get $op) (i32.const 104)) (then  ;; h
      (call $http_from (i32.const 0))
      (if (i32.load8_u (i32.const {IRET}))
        (then (return (call $tagged (i32.const 69)
          (i32.load (i32.const {IRET + 4})) (i32.load (i32.const {IRET + 8}))))))
      (local.set $l (i32.load (i32.const {IRET + 12})))
      (local.set $n (i32.load (i32.const {IRET + 20})))
      (local.set $a (call $alloc (i32.add (i32.add (local.get $l) (local.get $n)) (i32.const 7))))
      (i32.store8 (local.get $a) (i32.const 79))
      (i32.store16 offset=1 (local.get $a) (i32.load16_u (i32.const {IRET + 4})))
      (i32.store offset=3 (local.get $a) (local.get $l))
      (memory.copy (i32.add (local.get $a) (i32.const 7)) (i32.load (i32.const {IRET + 8})) (local.get $l))
      (memory.copy (i32.add (i32.add (local.get $a) (i32.const 7)) (local.get $l)) (i32.load (i32.const {IRET + 16}))
        (local.get $n))
      (return (call $respond (local.get $a) (i32.add (i32.add (local.get $l) (local.get $n)) (i32.const 7))))))
    (if (i32.eq (local.get $op) (i32.const 72)) (then  ;; H
      (local.set $n (call $num (i32.const 0)))
      (block $end (loop $next (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (call $http_from (i32.const 1))
        (if (i32.load8_u (i32.const {IRET}))
          (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))
                (local.set $ep (i32.load (i32.const {IRET + 4}))) (local.set $el (i32.load (i32.const {IRET + 8}))))
          (else (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))
      (return (call $counts (local.get $ok) (local.get $bad) (local.get $ep) (local.get $el)))))
    (if (i32.eq (local.get $op) (i32.const 120)) (then  ;; x
      (i32.store8 (i32.const {IRET})
        (i32.add (i32.const 48) (call $secret_exists (call $fp (i32.const 0)) (call $fl (i32.const 0)))))
      (return (call $respond (i32.const {IRET}) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 112)) (then  ;; p
      (call $pair (call $fp (i32.const 0)) (call $fl (i32.const 0)) (call $fp (i32.const 1)) (call $fl (i32.const 1))
        (call $fp (i32.const 2)) (call $fl (i32.const 2)) (i32.const {IRET}))
      (return (call $tagged (select (i32.const 69) (i32.const 79) (i32.load8_u (i32.const {IRET})))
        (i32.load (i32.const {IRET + 4})) (i32.load (i32.const {IRET + 8}))))))
    (if (i32.eq (local.get $op) (i32.const 66)) (then  ;; B
      (local.set $n (call $num (i32.const 0)))
      (local.set $a (call $alloc (local.get $n)))
      (local.set $l (i32.load8_u (call $fp (i32.const 1))))
      (if (i32.eq (local.get $l) (i32.const 104))  ;; "http": POST with an n-byte body
        (then (call $http (global.get $postp) (i32.const 4) (global.get $urlp) (i32.const 25) (global.get $json)
                (i32.const 2) (i32.const 1) (local.get $a) (local.get $n) (i32.const 0) (i32.const 0)
                (i32.const {IRET}))))
      (if (i32.eq (local.get $l) (i32.const 97))  ;; "attach"
        (then (call $attach (global.get $attp) (i32.const 5) (local.get $a) (local.get $n) (i32.const {IRET}))))
      (if (i32.eq (local.get $l) (i32.const 119))  ;; "ws": an n-byte value of NUL characters
        (then (call $ws_write (global.get $attp) (i32.const 5) (local.get $a) (local.get $n) (i32.const {IRET}))))
      (return (call $unit_result))))
"""


def wat_source(name: str) -> str:
    """The core module of the hostile guest whose webhook is ``/webhook/<name>``."""
    table, data = _static(name)
    realloc = CABI_REALLOC.replace('(func (export "cabi_realloc")', '(func $realloc (export "cabi_realloc")')
    assert realloc != CABI_REALLOC
    return f"""(module
  (import "{HOST}" "log" (func $log (param i32 i32 i32)))
  (import "{HOST}" "workspace-read" (func $ws_read (param i32 i32 i32)))
  (import "{HOST}" "workspace-write" (func $ws_write (param {i32s(5)})))
  (import "{HOST}" "http-request" (func $http (param {i32s(12)})))
  (import "{HOST}" "secret-exists" (func $secret_exists (param i32 i32) (result i32)))
  (import "{HOST}" "store-attachment-data" (func $attach (param {i32s(5)})))
  (import "{HOST}" "emit-message" (func $emit (param {i32s(14)})))
  (import "{HOST}" "pairing-upsert-request" (func $pair (param {i32s(7)})))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const {HEAP}))
  (global $nf (mut i32) (i32.const 0))
  (global $json i32 (i32.const {table["json"]}))
  (global $okp i32 (i32.const {table["ok"]}))
  (global $postp i32 (i32.const {table["post"]}))
  (global $urlp i32 (i32.const {table["url"]}))
  (global $attp i32 (i32.const {table["att_id"]}))
{data}{realloc}{_HELPERS}
  (func (export "{EXPORT}#on-start") (param i32 i32) (result i32)
    (i32.store8 (i32.const {RET}) (i32.const 0))
    (i32.store (i32.const {RET + 4}) (i32.const {table["name"]}))
    (i32.store (i32.const {RET + 8}) (i32.const {table["name_len"]}))
    (i32.store (i32.const {RET + 12}) (i32.const {table["endpoint"]}))
    (i32.store (i32.const {RET + 16}) (i32.const 1))
    (i32.store8 (i32.const {RET + 20}) (i32.const 0))
    (i32.const {RET}))
  (func (export "{EXPORT}#on-http-request") (param {i32s(11)}) (result i32)
    (local $op i32) (local $i i32) (local $n i32) (local $a i32) (local $l i32)
    (local $ok i32) (local $bad i32) (local $ep i32) (local $el i32)
    (if (i32.eqz (local.get 9)) (then (return (call $respond (global.get $okp) (i32.const 2)))))
    (local.set $op (i32.load8_u (local.get 8)))
    (call $parse (i32.add (local.get 8) (i32.const 1)) (i32.add (local.get 8) (local.get 9)))
{_ops()}
    (call $respond (global.get $okp) (i32.const 2)))
  (func (export "{EXPORT}#on-poll"))
  (func (export "{EXPORT}#on-respond") (param {i32s(11)}) (result i32)
    (i32.store8 (i32.const {RET}) (i32.const 0)) (i32.const {RET}))
  (func (export "{EXPORT}#on-status") (param {i32s(5)}))
  (func (export "{EXPORT}#on-broadcast") (param {i32s(13)}) (result i32)
    (i32.store8 (i32.const {RET}) (i32.const 0)) (i32.const {RET}))
  (func (export "{EXPORT}#on-shutdown"))
)
"""


def componentize(tmp: Path, stem: str, wat: str, wit: Path, world: str) -> Path:
    """``wat`` embedded with ``world`` from ``wit`` and made a component at ``tmp/<stem>.wasm`` (cached by
    content). Raises CalledProcessError with wasm-tools' message."""
    import hashlib

    tmp.mkdir(parents=True, exist_ok=True)
    stem = f"{stem}-{hashlib.sha256((wat + world).encode()).hexdigest()[:12]}"
    out = tmp / f"{stem}.wasm"
    if out.exists():
        return out
    (tmp / f"{stem}.wat").write_text(wat)
    core = tmp / f"{stem}.core.wasm"
    tool = _wasm_tools()
    for args in (["component", "embed", str(wit), "--world", world, str(tmp / f"{stem}.wat"), "-o", str(core)],
                 ["component", "new", str(core), "-o", str(out)]):
        done = subprocess.run([tool, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
    return out


def build_component(tmp: Path, name: str = "hostile") -> Path:
    """Build the hostile guest for ``/webhook/<name>`` into ``tmp``; returns the component's path."""
    return componentize(tmp, f"hostile-{name}", wat_source(name), WIT_DIR, WORLD)
