"""The core module of the http adapter, in WAT, generated from the core signatures of its world.

The adapter (``runtime.adapter``) is a component composed in front of a guest: it exports the host interface the
guest imports and imports the same interface from the host plus ``airlock:adapter/http-chunks``. Its core module:

- forwards every function but ``http-request`` unchanged: the exported function has the imported one's flattened
  parameters; when the result does not fit in one core value (canonical ABI: more than one flat result), the
  import takes a return pointer as its last parameter and the export returns a pointer, so the forwarder passes
  its static return area ``RET_AREA`` and returns it (the host writes the result there, strings and lists through
  ``cabi_realloc``: the adapter's memory);
- serves ``http-request`` from ``http-begin`` (same parameters; answers status, headers and the body's length)
  and ``http-read(max)`` (the next ``max`` bytes at most): it takes room for the whole body once, then steers
  ``cabi_realloc`` to the next chunk's place before each read, so every chunk is lowered straight into the body.
  ``result<http-head, string>`` and ``result<http-response, string>`` share their layout up to the body (a tag at
  0; status at 4; headers at 8/12; the body's length at 16 for the head, the body's (pointer, length) at 16/20 for
  the response), so the answer is completed in place. A read that returns nothing or more than asked traps: the
  host never does that, and a loop must not spin on it;
- allocates with a bump heap from ``HEAP_BASE`` and resets it in every export's post-return (after wasmtime copied
  the result into the guest), so its memory holds one call's arguments and result at a time.

Source of the rules: the component model's ``CanonicalABI.md`` (flattening, ``MAX_FLAT_PARAMS`` = 16,
``MAX_FLAT_RESULTS`` = 1, post-return). The signatures come from ``wasm-tools component embed --dummy`` for the
adapter's world (:func:`parse_dummy`), so no signature is written by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RET_AREA = 16
"""Return area for forwarded results and http-begin (24 bytes: the largest result of the host interface)."""
READ_AREA = 48
"""Return area of http-read: a list's (pointer, length)."""
HEAP_BASE = 1024
"""First byte of the bump heap."""
CHUNK_BYTES = 64 * 1024
"""Bytes asked of the host per http-read: the host converts each chunk value by value (about 80 bytes of host
memory per byte in wasmtime-py 50), so this bounds that cost at ~5 MiB per read."""

HTTP_REQUEST = "http-request"
HTTP_BEGIN = "http-begin"
HTTP_READ = "http-read"


class DummyFormatError(ValueError):
    """``wasm-tools`` printed a module this parser does not understand (a version with another layout)."""


@dataclass(frozen=True)
class CoreSig:
    params: tuple[str, ...]
    results: tuple[str, ...]


@dataclass(frozen=True)
class AdapterSigs:
    """What the adapter's core module must import and export, from the dummy module of its world.

    ``imports``: (module, name) -> signature; ``exports``: export name -> signature; ``memory`` and ``realloc``:
    the export names wasm-tools expects for them.
    """

    imports: dict[tuple[str, str], CoreSig]
    exports: dict[str, CoreSig]
    memory: str
    realloc: str


_TYPE = re.compile(r"^\s*\(type \(;(\d+);\) \(func(.*)\)\)\s*$")
_IMPORT = re.compile(r'^\s*\(import "([^"]+)" "([^"]+)" \(func \(;(\d+);\) \(type (\d+)\)')
_EXPORT = re.compile(r'^\s*\(export "([^"]+)" \((func|memory) (\d+)\)\)\s*$')
_FUNC = re.compile(r"^\s*\(func \(;(\d+);\) \(type (\d+)\)")


def _sig(text: str) -> CoreSig:
    params = re.findall(r"\(param ([^)]*)\)", text)
    results = re.findall(r"\(result ([^)]*)\)", text)
    return CoreSig(tuple(" ".join(params).split()), tuple(" ".join(results).split()))


def parse_dummy(printed: str) -> AdapterSigs:
    """Read the imports, exports and their signatures from ``wasm-tools print`` of the dummy core module.

    Raises:
        DummyFormatError: no memory or realloc export, or a function whose type is not declared.
    """
    types: dict[int, CoreSig] = {}
    func_type: dict[int, int] = {}
    imports: dict[tuple[str, str], CoreSig] = {}
    exported: list[tuple[str, int]] = []
    memory = realloc = None
    for line in printed.splitlines():
        if m := _TYPE.match(line):
            types[int(m[1])] = _sig(m[2])
        elif m := _IMPORT.match(line):
            func_type[int(m[3])] = int(m[4])
            imports[(m[1], m[2])] = types[int(m[4])]
        elif m := _EXPORT.match(line):
            if m[2] == "memory":
                memory = m[1]
            else:
                exported.append((m[1], int(m[3])))
        elif m := _FUNC.match(line):
            func_type[int(m[1])] = int(m[2])
    exports: dict[str, CoreSig] = {}
    for name, index in exported:
        if index not in func_type:
            raise DummyFormatError(f"export {name} has no declared type")
        if name.endswith("_realloc") or name == "cabi_realloc":
            realloc = name
        elif not name.endswith("_initialize"):
            exports[name] = types[func_type[index]]
    if memory is None or realloc is None:
        raise DummyFormatError("the dummy module exports no memory or no realloc")
    return AdapterSigs(imports=imports, exports=exports, memory=memory, realloc=realloc)


def _locals(n: int) -> str:
    return " ".join(f"(local.get {i})" for i in range(n))


def _forwarder(export: str, sig: CoreSig, target: str, imported: CoreSig) -> str:
    params = " ".join(sig.params)
    head = f'  (func (export "{export}") (param {params})' if params else f'  (func (export "{export}")'
    result = f" (result {' '.join(sig.results)})" if sig.results else ""
    n = len(sig.params)
    if imported.params == sig.params and imported.results == sig.results:
        return f"{head}{result}\n    (call {target} {_locals(n)}))\n"
    if imported.params == (*sig.params, "i32") and not imported.results and sig.results == ("i32",):
        return f"{head}{result}\n    (call {target} {_locals(n)} (i32.const {RET_AREA}))\n    (i32.const {RET_AREA}))\n"
    raise DummyFormatError(f"{export}: import {imported} and export {sig} do not match a forwarding shape")


def _http_request(export: str, sig: CoreSig, begin: str, read: str, begin_sig: CoreSig) -> str:
    if begin_sig.params != (*sig.params, "i32") or sig.results != ("i32",):
        raise DummyFormatError(f"{export}: http-begin {begin_sig} does not take http-request's parameters {sig}")
    n = len(sig.params)
    r = RET_AREA
    return f"""  (func (export "{export}") (param {" ".join(sig.params)}) (result i32)
    (local $len i32) (local $buf i32) (local $got i32) (local $want i32) (local $n i32)
    (call {begin} {_locals(n)} (i32.const {r}))
    (if (i32.eqz (i32.load8_u (i32.const {r}))) (then
      (local.set $len (i32.load (i32.const {r + 16})))
      (local.set $buf (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $len)))
      (block $done (loop $more
        (br_if $done (i32.ge_u (local.get $got) (local.get $len)))
        (local.set $want (i32.sub (local.get $len) (local.get $got)))
        (if (i32.gt_u (local.get $want) (i32.const {CHUNK_BYTES})) (then (local.set $want (i32.const {CHUNK_BYTES}))))
        (global.set $steer (i32.add (local.get $buf) (local.get $got)))
        (call {read} (local.get $want) (i32.const {READ_AREA}))
        (global.set $steer (i32.const 0))
        (local.set $n (i32.load (i32.const {READ_AREA + 4})))
        (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (local.get $want))) (then unreachable))
        (local.set $got (i32.add (local.get $got) (local.get $n)))
        (br $more)))
      (i32.store (i32.const {r + 16}) (local.get $buf))
      (i32.store (i32.const {r + 20}) (local.get $len))))
    (i32.const {r}))
"""


_REALLOC = """  (func $realloc (export "{name}")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
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
    (local.get $ptr))
"""


def _import_line(module: str, name: str, sig: CoreSig, label: str) -> str:
    params = f" (param {' '.join(sig.params)})" if sig.params else ""
    results = f" (result {' '.join(sig.results)})" if sig.results else ""
    return f'  (import "{module}" "{name}" (func {label}{params}{results}))\n'


def _modules(sigs: AdapterSigs) -> tuple[str, str]:
    """(core module of the host interface, of http-chunks): the two modules the dummy imports from, told apart by
    http-begin."""
    modules = {module for module, _ in sigs.imports}
    chunks = [module for module in modules if (module, HTTP_BEGIN) in sigs.imports]
    if len(modules) != 2 or len(chunks) != 1:
        raise DummyFormatError(f"expected the host interface and http-chunks, the dummy imports {sorted(modules)}")
    return next(iter(modules - set(chunks))), chunks[0]


def adapter_wat(sigs: AdapterSigs) -> str:
    """The adapter's core module for the dummy signatures ``sigs``.

    Raises:
        DummyFormatError: a function whose import and export cannot be matched (:func:`_forwarder`), or imports
            from other modules than the host interface and http-chunks.
    """
    host_module, chunks_module = _modules(sigs)
    parts = ["(module\n"]
    labels: dict[str, str] = {}
    exports = {name: sig for name, sig in sigs.exports.items() if name.startswith(host_module + "|")}
    for name in exports:
        fn = name[len(host_module) + 1:]
        if fn.endswith("_post") or fn == HTTP_REQUEST:
            continue
        imported = sigs.imports.get((host_module, fn))
        if imported is None:
            raise DummyFormatError(f"the dummy module does not import {fn}")
        labels[fn] = f"$host{len(labels)}"
        parts.append(_import_line(host_module, fn, imported, labels[fn]))
    begin_sig = sigs.imports[(chunks_module, HTTP_BEGIN)]
    parts.append(_import_line(chunks_module, HTTP_BEGIN, begin_sig, "$begin"))
    parts.append(_import_line(chunks_module, HTTP_READ, sigs.imports[(chunks_module, HTTP_READ)], "$read"))
    parts.append(f'  (memory (export "{sigs.memory}") 1)\n')
    parts.append(f"  (global $heap (mut i32) (i32.const {HEAP_BASE}))\n  (global $steer (mut i32) (i32.const 0))\n")
    parts.append(_REALLOC.replace("{name}", sigs.realloc))
    for name, sig in exports.items():
        fn = name[len(host_module) + 1:]
        if fn.endswith("_post"):
            params = f" (param {' '.join(sig.params)})" if sig.params else ""
            parts.append(f'  (func (export "{name}"){params}\n    (global.set $heap (i32.const {HEAP_BASE})))\n')
        elif fn == HTTP_REQUEST:
            parts.append(_http_request(name, sig, "$begin", "$read", begin_sig))
        else:
            parts.append(_forwarder(name, sig, labels[fn], sigs.imports[(host_module, fn)]))
    parts.append(")\n")
    return "".join(parts)
