"""Hand-written WAT channel components for tests and benchmarks.

``build_component(tmp, mode=..., world=...)`` writes a core module in WAT that follows the component
model's canonical ABI for the channel world, embeds the world's WIT with ``wasm-tools component embed`` and
wraps it with ``wasm-tools component new``. The guest imports no WASI.

Behaviour (mode ``normal``):
- on-start: ok({display-name: <name>, http-endpoints: [{path: "/webhook/<name>", methods: <methods, default
  ["POST"]>, require-secret: false}], poll: <some({interval-ms, enabled: true}) if poll_ms else none>})
- on-http-request: log(info, path); emit-message(user-id "u1", content = body); 200 "ok"
- on-poll: log(info, "poll")
- on-respond: workspace-write("last-reply", content) and returns its result
- on-status / on-shutdown: nothing; on-broadcast: ok
Mode ``loop`` makes on-poll and on-http-request spin forever; ``grow`` makes them grow memory until the
limit refuses and then trap (a guest that aborts on allocation failure, as Rust's does). Mode ``attach`` carries
files both ways: on-http-request also stores the body as attachment ``f1`` (``store-attachment-data``) and emits the
message with that attachment (``application/pdf``); on-respond writes the first reply attachment's bytes (text) to
``last-reply`` instead of the content, when the reply has one.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WIT_DIR = REPO / "wit" / "versions" / "0.1.0"
"""The WAT guests are components of Airlock's world 0.1.0 (frozen text, with near:agent as a dependency): the host
keeps running 0.1.0 components after 0.2.0 (``wit/channel.wit``)."""

WORLDS = {
    "airlock": ("airlock:channel", "0.1.0", "airlock:channel/sandboxed-channel"),
    "near-0.3.1": ("near:agent", "0.3.1", "near:agent/sandboxed-channel@0.3.1"),
    "near-0.3.0": ("near:agent", "0.3.0", "near:agent/sandboxed-channel@0.3.0"),
}

STATIC = {
    "name": 1024,
    "endpoints": 1100,
    "path": 1200,
    "methods": 1300,
    "post": 1400,
    "ok": 1500,
    "empty_json": 1510,
    "user": 1520,
    "poll_msg": 1530,
    "last_key": 1540,
    "att_id": 1560,
    "att_mime": 1570,
    "att_record": 1608,
    "ret": 2048,
    "import_ret": 2200,
}


CABI_REALLOC = """  (func (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                  (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
              (then unreachable))))
    (global.set $heap (local.get $end))
    (if (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.ne (local.get $old_size) (i32.const 0)))
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (local.get $ptr))
"""
"""WAT for a bump allocator exported as ``cabi_realloc``: allocates from the global ``$heap`` (the module
declares it), grows memory as needed, traps when memory cannot grow. Shared by every generated test component."""


def _wasm_tools() -> str:
    exe = Path(sys.executable).parent / "wasm-tools"
    return str(exe) if exe.exists() else (shutil.which("wasm-tools") or "wasm-tools")


def _data(addr: int, raw: bytes) -> str:
    esc = "".join(f"\\{b:02x}" for b in raw)
    return f'  (data (i32.const {addr}) "{esc}")\n'


def _spin_or_grow(mode: str) -> str:
    if mode == "loop":
        return "(loop $spin (br $spin))"
    if mode == "grow":
        return (
            "(loop $more (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))"
            " (then unreachable)) (br $more))"
        )
    return ""


def _methods_data(methods: tuple[str, ...]) -> str:
    """The endpoint's list<string> of methods: (ptr, len) pairs at STATIC["methods"], the names from STATIC["post"]."""
    pairs, names, addr = b"", b"", STATIC["post"]
    for m in methods:
        pairs += struct.pack("<II", addr + len(names), len(m))
        names += m.encode()
    if len(names) > STATIC["ok"] - STATIC["post"] or len(pairs) > STATIC["post"] - STATIC["methods"]:
        raise ValueError("too many methods for the WAT guest's static data")
    return _data(STATIC["methods"], pairs) + _data(STATIC["post"], names)


def _attachment_record() -> bytes:
    """The ``inbound-attachment`` of mode ``attach`` in the canonical ABI's layout (96 bytes, align 8): id and
    mime-type strings, the four options none, extras-json ``{}``."""
    raw = bytearray(96)
    struct.pack_into("<IIII", raw, 0, STATIC["att_id"], 2, STATIC["att_mime"], len(b"application/pdf"))
    struct.pack_into("<II", raw, 84, STATIC["empty_json"], 2)  # filename/size/url/key/text: none (zeros)
    return bytes(raw)


def wat_source(
    name: str, *, mode: str = "normal", world: str = "airlock", poll_ms: int = 0, methods: tuple[str, ...] = ("POST",)
) -> str:
    """Return the core-module WAT for a channel guest named ``name`` (its webhook accepts ``methods``)."""
    pkg, version, _ = WORLDS[world]
    host = f"{pkg}/channel-host@{version}"
    exp = f"{pkg}/channel@{version}"
    path = f"/webhook/{name}".encode()
    s = STATIC
    data = "".join(
        [
            _data(s["name"], name.encode()),
            _data(s["endpoints"], struct.pack("<IIIIB", s["path"], len(path), s["methods"], len(methods), 0)),
            _data(s["path"], path),
            _methods_data(methods),
            _data(s["ok"], b"ok"),
            _data(s["empty_json"], b"{}"),
            _data(s["user"], b"u1"),
            _data(s["poll_msg"], b"poll"),
            _data(s["last_key"], b"last-reply"),
        ]
    )
    if mode == "attach":
        data += _data(s["att_id"], b"f1") + _data(s["att_mime"], b"application/pdf") + _data(
            s["att_record"], _attachment_record())
    poll = "(i32.store8 (i32.const 2068) (i32.const 0))"
    if poll_ms:
        poll = (
            "(i32.store8 (i32.const 2068) (i32.const 1)) "
            f"(i32.store (i32.const 2072) (i32.const {poll_ms})) (i32.store8 (i32.const 2076) (i32.const 1))"
        )
    spin = _spin_or_grow(mode)
    i32x = lambda n: " ".join(["i32"] * n)  # noqa: E731
    attach = mode == "attach"
    store_import = (f'  (import "{host}" "store-attachment-data" (func $store (param i32 i32 i32 i32 i32)))\n'
                    if attach else "")
    store = (f'(call $store (i32.const {s["att_id"]}) (i32.const 2) (local.get 8) (local.get 9) '
             f'(i32.const {s["import_ret"]}))') if attach else ""
    attachments = f'(i32.const {s["att_record"]}) (i32.const 1)' if attach else "(i32.const 0) (i32.const 0)"
    # agent-response: message-id, content, thread-id (3), metadata-json, attachments (locals 9, 10); an attachment
    # is {filename, mime-type, data}: 24 bytes, data at +16
    reply_text = ("(if (local.get 10) (then (local.set 2 (i32.load offset=16 (local.get 9))) "
                  "(local.set 3 (i32.load offset=20 (local.get 9)))))") if attach else ""
    return f"""(module
  (import "{host}" "log" (func $log (param i32 i32 i32)))
  (import "{host}" "emit-message" (func $emit (param {i32x(14)})))
  (import "{host}" "workspace-write" (func $ws_write (param i32 i32 i32 i32 i32)))
{store_import}  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
{data}
{CABI_REALLOC}  (func (export "{exp}#on-start") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.store (i32.const 2052) (i32.const {s["name"]}))
    (i32.store (i32.const 2056) (i32.const {len(name.encode())}))
    (i32.store (i32.const 2060) (i32.const {s["endpoints"]}))
    (i32.store (i32.const 2064) (i32.const 1))
    {poll}
    (i32.const 2048))
  (func (export "{exp}#on-http-request") (param {i32x(11)}) (result i32)
    {spin}
    (call $log (i32.const 2) (local.get 2) (local.get 3))
    {store}
    (call $emit (i32.const {s["user"]}) (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 0)
      (local.get 8) (local.get 9) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const {s["empty_json"]}) (i32.const 2) {attachments})
    (i32.store16 (i32.const 2048) (i32.const 200))
    (i32.store (i32.const 2052) (i32.const {s["empty_json"]}))
    (i32.store (i32.const 2056) (i32.const 2))
    (i32.store (i32.const 2060) (i32.const {s["ok"]}))
    (i32.store (i32.const 2064) (i32.const 2))
    (i32.const 2048))
  (func (export "{exp}#on-poll")
    {spin}
    (call $log (i32.const 2) (i32.const {s["poll_msg"]}) (i32.const 4)))
  (func (export "{exp}#on-respond") (param {i32x(11)}) (result i32)
    {reply_text}
    (call $ws_write (i32.const {s["last_key"]}) (i32.const 10) (local.get 2) (local.get 3)
      (i32.const {s["import_ret"]}))
    (i32.const {s["import_ret"]}))
  (func (export "{exp}#on-status") (param {i32x(5)}))
  (func (export "{exp}#on-broadcast") (param {i32x(13)}) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.const 2048))
  (func (export "{exp}#on-shutdown"))
)
"""


def _wit_dir_for(world: str, tmp: Path) -> Path:
    if world != "near-0.3.0":
        return WIT_DIR
    # near:agent@0.3.0 has the same shape as 0.3.1; only the version differs.
    src = (WIT_DIR / "deps" / "near-agent" / "channel.wit").read_text()
    out = tmp / "wit-near-0.3.0"
    out.mkdir(parents=True, exist_ok=True)
    (out / "channel.wit").write_text(src.replace("near:agent@0.3.1", "near:agent@0.3.0"))
    return out


def build_component(
    tmp: Path, name: str = "minimal", *, mode: str = "normal", world: str = "airlock", poll_ms: int = 0,
    methods: tuple[str, ...] = ("POST",),
) -> Path:
    """Build the guest into ``tmp`` and return the component's path. Raises CalledProcessError."""
    tmp.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{mode}-{world}-{poll_ms}" + ("" if methods == ("POST",) else "-" + "-".join(methods))
    out = tmp / f"{stem}.wasm"
    if out.exists():
        return out
    wat = tmp / f"{stem}.wat"
    wat.write_text(wat_source(name, mode=mode, world=world, poll_ms=poll_ms, methods=methods))
    core = tmp / f"{stem}.core.wasm"
    tool = _wasm_tools()
    wit = _wit_dir_for(world, tmp)
    subprocess.run(
        [tool, "component", "embed", str(wit), "--world", WORLDS[world][2], str(wat), "-o", str(core)],
        check=True,
        capture_output=True,
    )
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out
