"""A generated echo component for the fast-path equivalence suite.

World ``airlock:echo/echo@0.1.0``: the guest imports interface ``host`` and exports interface ``guest``;
both declare, for every WIT type Airlock's channel worlds use (and a few more: all integer widths, floats,
char, flags, variants, tuples), a function ``echo-<name>: func(x: T) -> T``. The guest's export passes its
arguments straight to the host import of the same name and returns what the host returned, so a value
crosses host -> guest (export argument), guest -> host (import argument), host -> guest (import result)
and guest -> host (export result): every lowering and lifting path in both directions.

The pass-through works for any type because an export and an import of the same function type share the
canonical ABI's core signature (source: the component model's ``CanonicalABI.md``, "Flattening"): up to
16 flat parameters arrive as core values and more as one pointer to the parameter tuple, which the import
takes unchanged; a result of more than one flat value is written by the host to a return area the guest
passes, and the export returns that area's address.

Also exported: ``pair``/``mix`` (several parameters, over and under the 16-value limit), ``note`` (no
result), ``boom`` (``unreachable``), ``spin`` (loops forever: fuel or epoch deadline), ``grow`` (grows
memory until refused, then ``unreachable``), ``echo-then-boom`` (a host call, then a trap).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from watguest import CABI_REALLOC

PACKAGE = "airlock:echo@0.1.0"
HOST = "airlock:echo/host@0.1.0"
GUEST = "airlock:echo/guest@0.1.0"
RET_AREA = 1024
HEAP_START = 65536
MAX_FLAT_PARAMS = 16

# ---- types ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class L:
    """list<elem>"""

    elem: T


@dataclass(frozen=True)
class O:  # noqa: E742 (WIT's option)
    """option<t>"""

    t: T


@dataclass(frozen=True)
class R:
    """result<ok, err> (None: no payload)"""

    ok: T | None
    err: T | None


@dataclass(frozen=True)
class Tup:
    elems: tuple[T, ...]


@dataclass(frozen=True)
class Named:
    name: str


T = str | L | O | R | Tup | Named

RECORDS: dict[str, list[tuple[str, T]]] = {
    "point": [("x", "s32"), ("y", "s32")],
    "inner": [("name", "string"), ("tags", L("string")), ("maybe", O("u64"))],
    "outer": [
        ("id", "u64"), ("label", "string"), ("inner", Named("inner")), ("points", L(Named("point"))),
        ("body", L("u8")), ("color", Named("color")), ("note", O("string")), ("shapes", L(Named("shape"))),
        ("perms", Named("perms")),
    ],
    "http-response": [("status", "u16"), ("headers-json", "string"), ("body", L("u8"))],
    "inbound-attachment": [
        ("id", "string"), ("mime-type", "string"), ("filename", O("string")), ("size-bytes", O("u64")),
        ("source-url", O("string")), ("storage-key", O("string")), ("extracted-text", O("string")),
        ("extras-json", "string"),
    ],
    "emitted-message": [
        ("user-id", "string"), ("user-name", O("string")), ("content", "string"), ("thread-id", O("string")),
        ("metadata-json", "string"), ("attachments", L(Named("inbound-attachment"))),
    ],
    "pairing-upsert-result": [("code", "string"), ("created", "bool")],
}
ENUMS = {"color": ["red", "green", "blue-ish"]}
FLAGS = {"perms": ["read", "write", "exec"]}
VARIANTS: dict[str, list[tuple[str, T | None]]] = {
    "shape": [("circle", "f64"), ("rect", Named("point")), ("empty", None), ("named", "string")],
}

ECHOES: dict[str, T] = {
    "bool": "bool", "u8": "u8", "u16": "u16", "u32": "u32", "u64": "u64",
    "s8": "s8", "s16": "s16", "s32": "s32", "s64": "s64", "f32": "f32", "f64": "f64", "char": "char",
    "string": "string", "bytes": L("u8"), "strings": L("string"), "points": L(Named("point")),
    "attachments": L(Named("inbound-attachment")),
    "opt-string": O("string"), "opt-opt-string": O(O("string")), "opt-u32": O("u32"), "opt-u64": O("u64"),
    "opt-bytes": O(L("u8")), "opt-point": O(Named("point")), "opt-res": O(R(None, "string")),
    "res-unit-string": R(None, "string"), "res-string-string": R("string", "string"),
    "res-response": R(Named("http-response"), "string"), "res-opt-string": R(O("string"), "string"),
    "res-strings": R(L("string"), "string"), "res-pairing": R(Named("pairing-upsert-result"), "string"),
    "res-bare": R(None, None), "res-u32": R("u32", None), "res-u8-s8": R("u8", "s8"),
    "color": Named("color"), "perms": Named("perms"), "shape": Named("shape"),
    "tuple": Tup(("u8", "string", "bool")), "outer": Named("outer"), "emitted": Named("emitted-message"),
    "response": Named("http-response"),
}
"""echo-<key>: func(x: T) -> T, in both interfaces."""

MULTI: dict[str, tuple[list[T], T]] = {
    "pair": ([Named("http-response"), Named("emitted-message")],
             Tup((Named("http-response"), Named("emitted-message")))),
    "mix": (["u8", "s64", "string", O("string"), L("u8"), "bool"],
            Tup(("u8", "s64", "string", O("string"), L("u8"), "bool"))),
}
"""<name>: func(a0: T0, a1: T1, ...) -> R (R is the tuple of the arguments)."""


def wit_type(t: T) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, Named):
        return t.name
    if isinstance(t, L):
        return f"list<{wit_type(t.elem)}>"
    if isinstance(t, O):
        return f"option<{wit_type(t.t)}>"
    if isinstance(t, Tup):
        return f"tuple<{', '.join(wit_type(e) for e in t.elems)}>"
    if t.ok is None and t.err is None:
        return "result"
    ok = "_" if t.ok is None else wit_type(t.ok)
    return f"result<{ok}>" if t.err is None else f"result<{ok}, {wit_type(t.err)}>"


# ---- canonical ABI flattening ------------------------------------------------------------------------

_I32 = {"bool", "u8", "s8", "u16", "s16", "u32", "s32", "char"}


def _join(a: str, b: str) -> str:
    if a == b:
        return a
    return "i32" if {a, b} == {"i32", "f32"} else "i64"


def _flatten_cases(cases: list[T | None]) -> list[str]:
    flat: list[str] = []
    for case in cases:
        for i, core in enumerate(flatten(case) if case is not None else []):
            if i < len(flat):
                flat[i] = _join(flat[i], core)
            else:
                flat.append(core)
    return ["i32", *flat]


def flatten(t: T) -> list[str]:
    """The core value types of ``t`` (CanonicalABI.md, flatten_type)."""
    if isinstance(t, str):
        if t in _I32:
            return ["i32"]
        return {"u64": ["i64"], "s64": ["i64"], "f32": ["f32"], "f64": ["f64"], "string": ["i32", "i32"]}[t]
    if isinstance(t, L):
        return ["i32", "i32"]
    if isinstance(t, O):
        return _flatten_cases([None, t.t])
    if isinstance(t, R):
        return _flatten_cases([t.ok, t.err])
    if isinstance(t, Tup):
        return [c for e in t.elems for c in flatten(e)]
    if t.name in RECORDS:
        return [c for _n, ft in RECORDS[t.name] for c in flatten(ft)]
    if t.name in VARIANTS:
        return _flatten_cases([ct for _n, ct in VARIANTS[t.name]])
    return ["i32"]  # enum, flags (under 32)


# ---- WIT and WAT ---------------------------------------------------------------------------------------


def _types_block() -> str:
    lines = []
    for name, cases in ENUMS.items():
        lines.append(f"    enum {name} {{ {', '.join(cases)} }}")
    for name, names in FLAGS.items():
        lines.append(f"    flags {name} {{ {', '.join(names)} }}")
    for name, fields in RECORDS.items():
        lines.append(f"    record {name} {{ {', '.join(f'{f}: {wit_type(t)}' for f, t in fields)} }}")
    for name, vcases in VARIANTS.items():
        rendered = ", ".join(c if t is None else f"{c}({wit_type(t)})" for c, t in vcases)
        lines.append(f"    variant {name} {{ {rendered} }}")
    return "\n".join(lines)


def _functions_block() -> str:
    lines = [f"    echo-{name}: func(x: {wit_type(t)}) -> {wit_type(t)};" for name, t in ECHOES.items()]
    for name, (params, result) in MULTI.items():
        ps = ", ".join(f"a{i}: {wit_type(p)}" for i, p in enumerate(params))
        lines.append(f"    {name}: func({ps}) -> {wit_type(result)};")
    lines.append("    note: func(msg: string);")
    lines.append("    echo-then-boom: func(x: string) -> string;")
    return "\n".join(lines)


def wit_source() -> str:
    types, funcs = _types_block(), _functions_block()
    traps = "    boom: func();\n    spin: func();\n    grow: func();"
    return (
        f"package {PACKAGE};\n\ninterface host {{\n{types}\n{funcs}\n}}\n\n"
        f"interface guest {{\n{types}\n{funcs}\n{traps}\n}}\n\nworld echo {{\n    import host;\n    export guest;\n}}\n"
    )


def _signature(params: list[T], result: T | None) -> tuple[list[str], list[str], list[str], list[str]]:
    """(export params, export results, import params, import results) as core types."""
    flat = [c for p in params for c in flatten(p)]
    args = flat if len(flat) <= MAX_FLAT_PARAMS else ["i32"]
    res = [] if result is None else flatten(result)
    if len(res) <= 1:
        return args, res, args, res
    return args, ["i32"], [*args, "i32"], []


def _echo_func(name: str, params: list[T], result: T | None, *, then: str = "") -> tuple[str, str]:
    """(import declaration, export definition) for a pass-through function."""
    exp_params, exp_results, imp_params, imp_results = _signature(params, result)
    ident = "$h_" + name.replace("-", "_")
    p = lambda ts: " ".join(f"(param {t})" for t in ts)  # noqa: E731
    r = lambda ts: " ".join(f"(result {t})" for t in ts)  # noqa: E731
    imp = f'  (import "{HOST}" "{name}" (func {ident} {p(imp_params)} {r(imp_results)}))'
    gets = " ".join(f"(local.get {i})" for i in range(len(exp_params)))
    retptr = f" (i32.const {RET_AREA})" if len(imp_params) > len(exp_params) else ""
    tail = f" (i32.const {RET_AREA})" if retptr else ""
    body = f"(call {ident} {gets}{retptr}){then}{tail}"
    exp = f'  (func (export "{GUEST}#{name}") {p(exp_params)} {r(exp_results)}\n    {body})'
    return imp, exp


def wat_source() -> str:
    imports, exports = [], []
    for name, t in ECHOES.items():
        imp, exp = _echo_func(f"echo-{name}", [t], t)
        imports.append(imp)
        exports.append(exp)
    for name, (params, result) in MULTI.items():
        imp, exp = _echo_func(name, params, result)
        imports.append(imp)
        exports.append(exp)
    imp, exp = _echo_func("note", ["string"], None)
    imports.append(imp)
    exports.append(exp)
    # echo-then-boom: the host call's result is dropped, then the guest traps.
    _imp, exp = _echo_func("echo-then-boom", ["string"], "string", then=" unreachable")
    imports.append(_imp)
    exports.append(exp)
    exports += [
        f'  (func (export "{GUEST}#boom") unreachable)',
        f'  (func (export "{GUEST}#spin") (loop $spin (br $spin)))',
        f'  (func (export "{GUEST}#grow")\n    (loop $more (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))'
        " (then unreachable)) (br $more)))",
    ]
    realloc = f"""  (global $heap (mut i32) (i32.const {HEAP_START}))
{CABI_REALLOC}"""
    body = "\n".join([*imports, '  (memory (export "memory") 2)', realloc, *exports])
    return f"(module\n{body}\n)\n"


def _wasm_tools() -> str:
    exe = Path(sys.executable).parent / "wasm-tools"
    return str(exe) if exe.exists() else (shutil.which("wasm-tools") or "wasm-tools")


def build_component(tmp: Path) -> Path:
    """Write the echo component into ``tmp`` (once per source) and return its path."""
    wit, wat = wit_source(), wat_source()
    stem = "echo-" + hashlib.sha256((wit + wat).encode()).hexdigest()[:12]
    out = tmp / f"{stem}.wasm"
    if out.exists():
        return out
    tmp.mkdir(parents=True, exist_ok=True)
    wit_dir = tmp / f"{stem}-wit"
    wit_dir.mkdir(exist_ok=True)
    (wit_dir / "echo.wit").write_text(wit)
    (tmp / f"{stem}.wat").write_text(wat)
    core = tmp / f"{stem}.core.wasm"
    tool = _wasm_tools()
    subprocess.run([tool, "component", "embed", str(wit_dir), "--world", "airlock:echo/echo", str(tmp / f"{stem}.wat"),
                    "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


if __name__ == "__main__":  # print the sources (for debugging the generator)
    print(wit_source())
    print(wat_source())
