"""The http adapter component, in component-model WAT, generated from the guest's host-interface type.

The adapter (``runtime.adapter``) is composed in front of a guest: it exports the host interface the guest imports
and imports the same interface from the host plus ``airlock:adapter/http-chunks``. Its exported instance:

- re-exports every function of the imported host interface but ``http-request`` unchanged (and every type): the
  guest calls the host's own functions, lowered into its own memory, exactly as without the adapter -- no core code,
  no copy, no cost per call;
- lifts ``http-request`` from a small core module that serves it from ``http-begin`` (same parameters; answers
  status, headers and the body's length) and ``http-read(max)`` (the next ``max`` bytes at most): it takes room for
  the whole body once, then steers ``realloc`` to the next chunk's place before each read, so every chunk is lowered
  straight into the body. ``result<http-head, string>`` and ``result<http-response, string>`` share their layout up
  to the body (a tag at 0; status at 4; headers at 8/12; the body's length at 16 for the head, the body's (pointer,
  length) at 16/20 for the response), so the answer is completed in place. A read that returns nothing or more than
  asked traps: the host never does that, and a loop must not spin on it.

Core instances: ``$Mem`` (the memory, empty until http-request needs it; the bump heap from :data:`HEAP_BASE`;
``realloc``) is instantiated first so
that http-begin and http-read can be lowered with its memory before ``$Main`` imports them: two core instances and no
table, where wit-component's layout takes three (its shim and fixup modules). ``$Main``'s post-return resets the
heap after wasmtime copied the result into the guest, so the memory holds one call's arguments and result at a time.

The host interface's instance type is the one wasm-tools prints for a dummy component of the world
``import <host interface>; import http-chunks;`` (:func:`instance_types`), so it is exactly what the guest imports
(any version; only the functions it uses). Source of the ABI rules: the component model's ``CanonicalABI.md``
(flattening, ``MAX_FLAT_PARAMS`` = 16, a result over one flat value returned through a pointer, post-return).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RET_AREA = 16
"""Return area of http-begin and of the lifted http-request (24 bytes)."""
READ_AREA = 48
"""Return area of http-read: a list's (pointer, length)."""
HEAP_BASE = 1024
"""First byte of the bump heap."""
CHUNK_BYTES = 64 * 1024
"""Bytes asked of the host per http-read: the host converts each chunk value by value (about 80 bytes of host
memory per byte in wasmtime-py 50), so this bounds that cost at ~5 MiB per read."""

HTTP_REQUEST = "http-request"
HTTP_PARAMS = 11
"""Flat core parameters of http-request and http-begin (method, url, headers-json: 2 each; body: option<list<u8>>,
3; timeout-ms: option<u32>, 2); http-begin's import takes a return pointer after them."""

HTTP_REQUEST_TYPE = (
    '(func (param "method" string) (param "url" string) (param "headers-json" string) '
    '(param "body" (option (list u8))) (param "timeout-ms" (option u32)) (result (result $http-response (error '
    "string))))"
)
"""http-request's WIT signature, the same in every supported world (airlock:channel@0.1.0, near:agent@0.3.x); a world
whose http-request differs fails composition (type check) and loads unadapted."""


class DummyFormatError(ValueError):
    """``wasm-tools`` printed a component this parser does not understand (a version with another layout)."""


@dataclass(frozen=True)
class InstanceType:
    """An imported interface's instance type as printed: its WAT block and the names it exports."""

    wat: str
    types: tuple[str, ...]
    functions: tuple[str, ...]


_TYPE_EXPORT = re.compile(r'^\s*\(export \(;\d+;\) "([^"]+)" \(type \(eq \d+\)\)\)\s*$')
_FUNC_EXPORT = re.compile(r'^\s*\(export \(;\d+;\) "([^"]+)" \(func \(type \d+\)\)\)\s*$')


def _block(lines: list[str], interface: str, label: str) -> InstanceType:
    head = f"  (type $ty-{interface} "
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(head))
        end = next(i for i in range(start + 1, len(lines)) if lines[i] == "  )")
    except StopIteration:
        raise DummyFormatError(f"no instance type for {interface} in the dummy component") from None
    body = lines[start + 1 : end + 1]
    types = tuple(m[1] for line in body if (m := _TYPE_EXPORT.match(line)))
    functions = tuple(m[1] for line in body if (m := _FUNC_EXPORT.match(line)))
    if not functions:
        raise DummyFormatError(f"the instance type of {interface} exports no function")
    # http-request is served by the adapter: the host's is not imported (its types stay: the adapter uses them).
    kept = [line for line in body if not (_FUNC_EXPORT.match(line) and f'"{HTTP_REQUEST}"' in line)]
    return InstanceType(wat=f"  (type {label}\n" + "\n".join(kept) + "\n", types=types, functions=functions)


def instance_types(printed: str, host: str, chunks: str) -> tuple[InstanceType, InstanceType]:
    """The instance types of ``host`` (less its http-request) and ``chunks`` from ``wasm-tools print`` of the dummy
    component that imports both.

    Raises:
        DummyFormatError: a type block is missing, or ``host`` has no http-request or no http-response type.
    """
    lines = printed.splitlines()
    host_ty, chunks_ty = _block(lines, host, "$host-ty"), _block(lines, chunks, "$chunks-ty")
    if HTTP_REQUEST not in host_ty.functions or "http-response" not in host_ty.types:
        raise DummyFormatError(f"{host} has no http-request returning http-response")
    return host_ty, chunks_ty


def _i32s(n: int) -> str:
    return " ".join(["i32"] * n)


_MEM = f"""  (core module $Mem
    (memory (export "memory") 0)
    (global $heap (export "heap") (mut i32) (i32.const {HEAP_BASE}))
    (global $steer (export "steer") (mut i32) (i32.const 0))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32) (local $end i32)
      (if (global.get $steer) (then (return (global.get $steer))))
      (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                               (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
      (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
        (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                    (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
                (then unreachable))))
      (global.set $heap (local.get $end))
      (if (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.ne (local.get $old_size) (i32.const 0)))
        (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
      (local.get $ptr)))
"""


def _main() -> str:
    r = RET_AREA
    args = " ".join(f"(local.get {i})" for i in range(HTTP_PARAMS))
    return f"""  (core module $Main
    (import "mem" "memory" (memory 0))
    (import "mem" "heap" (global $heap (mut i32)))
    (import "mem" "steer" (global $steer (mut i32)))
    (import "mem" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "chunks" "begin" (func $begin (param {_i32s(HTTP_PARAMS + 1)})))
    (import "chunks" "read" (func $read (param i32 i32)))
    (func (export "http-request") (param {_i32s(HTTP_PARAMS)}) (result i32)
      (local $len i32) (local $buf i32) (local $got i32) (local $want i32) (local $n i32)
      (if (i32.eqz (memory.size)) (then (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))))
      (call $begin {args} (i32.const {r}))
      (if (i32.eqz (i32.load8_u (i32.const {r}))) (then
        (local.set $len (i32.load (i32.const {r + 16})))
        (local.set $buf (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $len)))
        (block $done (loop $more
          (br_if $done (i32.ge_u (local.get $got) (local.get $len)))
          (local.set $want (i32.sub (local.get $len) (local.get $got)))
          (if (i32.gt_u (local.get $want) (i32.const {CHUNK_BYTES})) (then (local.set $want (i32.const {CHUNK_BYTES}))))
          (global.set $steer (i32.add (local.get $buf) (local.get $got)))
          (call $read (local.get $want) (i32.const {READ_AREA}))
          (global.set $steer (i32.const 0))
          (local.set $n (i32.load (i32.const {READ_AREA + 4})))
          (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (local.get $want))) (then unreachable))
          (local.set $got (i32.add (local.get $got) (local.get $n)))
          (br $more)))
        (i32.store (i32.const {r + 16}) (local.get $buf))
        (i32.store (i32.const {r + 20}) (local.get $len))))
      (i32.const {r}))
    (func (export "post") (param i32)
      (global.set $heap (i32.const {HEAP_BASE}))))
"""


def adapter_wat(host: str, chunks: str, host_ty: InstanceType, chunks_ty: InstanceType) -> str:
    """The adapter component: imports ``host`` (typed ``host_ty``) and ``chunks``, exports ``host``."""
    exports = [f'    (export "{t}" (type $host "{t}"))' for t in host_ty.types]
    exports += [f'    (export "{f}" (func $host "{f}"))' for f in host_ty.functions if f != HTTP_REQUEST]
    exports.append(f'    (export "{HTTP_REQUEST}" (func $http-request))')
    return "".join([
        "(component\n", host_ty.wat, f'  (import "{host}" (instance $host (type $host-ty)))\n',
        chunks_ty.wat, f'  (import "{chunks}" (instance $chunks (type $chunks-ty)))\n',
        '  (alias export $chunks "http-begin" (func $begin))\n',
        '  (alias export $chunks "http-read" (func $read))\n',
        '  (alias export $host "http-response" (type $http-response))\n',
        _MEM,
        "  (core instance $mem (instantiate $Mem))\n",
        '  (alias core export $mem "memory" (core memory $memory))\n',
        '  (alias core export $mem "realloc" (core func $realloc))\n',
        "  (core func $begin-lowered (canon lower (func $begin) (memory $memory) (realloc $realloc) "
        "string-encoding=utf8))\n",
        "  (core func $read-lowered (canon lower (func $read) (memory $memory) (realloc $realloc)))\n",
        _main(),
        '  (core instance $main (instantiate $Main (with "mem" (instance $mem))\n    (with "chunks" (instance '
        '(export "begin" (func $begin-lowered)) (export "read" (func $read-lowered))))))\n',
        f"  (type $http-request-ty {HTTP_REQUEST_TYPE})\n",
        '  (func $http-request (type $http-request-ty) (canon lift (core func $main "http-request") (memory $memory)\n'
        '    (realloc $realloc) string-encoding=utf8 (post-return (core func $main "post"))))\n',
        "  (instance $out\n", "\n".join(exports), ")\n",
        f'  (export "{host}" (instance $out))\n',
        ")\n",
    ])
