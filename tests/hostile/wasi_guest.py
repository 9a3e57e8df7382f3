"""Hostile components that reach past the channel world: WASI sockets, filesystem and environment directly, a
WASI interface the host does not provide at all, and a memory declared above the host's limit.

``build_wasi_prober(tmp, name)``: a channel (webhook ``/webhook/<name>``, as ``hostile_guest``) whose
on-http-request, given a body of one little-endian u16 port, asks WASI for

- the environment (``wasi:cli/environment.get-environment``),
- the preopened directories (``wasi:filesystem/preopens.get-directories``),
- a TCP connection to 127.0.0.1:port (``wasi:sockets/tcp-create-socket`` + ``tcp-socket.start-connect`` on the
  ``instance-network``),
- a name lookup of ``localhost`` (``wasi:sockets/ip-name-lookup.resolve-addresses``),

and answers 200 with 14 bytes (``decode_wasi``). ``build_unprovided_import(tmp, name)``: the hostile guest plus
an import of ``wasi:http/outgoing-handler``, which Airlock does not link. ``build_oversized_memory(tmp, name,
pages)``: the hostile guest with an initial memory of ``pages`` 64 KiB pages.

The WASI interfaces are declared here with only the functions used; the component model matches an import
against the host's definition structurally (names of functions, cases and fields, and types), so these
declarations must agree with WASI 0.2 (wasi:sockets ``network.error-code`` lists its cases in this order).
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from hostile_guest import EXPORT, HEAP, HOST, IRET, RET, _static, componentize, i32s, wat_source
from watguest import CABI_REALLOC, WIT_DIR

WASI = "0.2.0"
SOCKET_ERRORS = (
    "unknown", "access-denied", "not-supported", "invalid-argument", "out-of-memory", "timeout",
    "concurrency-conflict", "not-in-progress", "would-block", "invalid-state", "new-socket-limit",
    "address-not-bindable", "address-in-use", "remote-unreachable", "connection-refused", "connection-reset",
    "connection-aborted", "datagram-too-large", "name-unresolvable", "temporary-resolver-failure",
    "permanent-resolver-failure",
)

_SOCKETS = f"""package wasi:sockets@{WASI};

interface network {{
    resource network;
    enum error-code {{ {", ".join(SOCKET_ERRORS)} }}
    enum ip-address-family {{ ipv4, ipv6 }}
    type ipv4-address = tuple<u8, u8, u8, u8>;
    type ipv6-address = tuple<u16, u16, u16, u16, u16, u16, u16, u16>;
    record ipv4-socket-address {{ port: u16, address: ipv4-address }}
    record ipv6-socket-address {{ port: u16, flow-info: u32, address: ipv6-address, scope-id: u32 }}
    variant ip-socket-address {{ ipv4(ipv4-socket-address), ipv6(ipv6-socket-address) }}
}}

interface instance-network {{
    use network.{{network}};
    instance-network: func() -> network;
}}

interface tcp {{
    use network.{{network, error-code, ip-socket-address}};
    resource tcp-socket {{
        start-connect: func(network: borrow<network>, remote-address: ip-socket-address) -> result<_, error-code>;
    }}
}}

interface tcp-create-socket {{
    use network.{{error-code, ip-address-family}};
    use tcp.{{tcp-socket}};
    create-tcp-socket: func(address-family: ip-address-family) -> result<tcp-socket, error-code>;
}}

interface ip-name-lookup {{
    use network.{{network, error-code}};
    resource resolve-address-stream;
    resolve-addresses: func(network: borrow<network>, name: string) -> result<resolve-address-stream, error-code>;
}}
"""

_FILESYSTEM = f"""package wasi:filesystem@{WASI};

interface types {{
    resource descriptor;
}}

interface preopens {{
    use types.{{descriptor}};
    get-directories: func() -> list<tuple<descriptor, string>>;
}}
"""

_CLI = f"""package wasi:cli@{WASI};

interface environment {{
    get-environment: func() -> list<tuple<string, string>>;
}}
"""

_HTTP = f"""package wasi:http@{WASI};

interface outgoing-handler {{
    handle: func(request: u32) -> u32;
}}
"""


def _world(name: str, imports: list[str]) -> str:
    lines = "".join(f"    import {i};\n" for i in imports)
    include = "    include airlock:channel/sandboxed-channel@0.1.0;\n"
    return f"package hostile:{name}@0.1.0;\n\nworld {name} {{\n{lines}{include}}}\n"


def _wit_dir(tmp: Path, name: str, packages: dict[str, str], imports: list[str]) -> Path:
    wit = tmp / f"wit-{name}"
    shutil.rmtree(wit, ignore_errors=True)
    for pkg, text in {**packages, "airlock": (WIT_DIR / "channel.wit").read_text()}.items():
        (wit / "deps" / pkg).mkdir(parents=True)
        (wit / "deps" / pkg / f"{pkg}.wit").write_text(text)
    (wit / "world.wit").write_text(_world(name, imports))
    return wit


@dataclass(frozen=True)
class WasiSeen:
    """What the WASI prober got: counts of environment variables and preopens, and for each socket call whether
    it succeeded and the ``SOCKET_ERRORS`` name when it did not."""

    env_vars: int
    preopens: int
    create_ok: bool
    create_error: str | None
    connect_ok: bool | None
    connect_error: str | None
    lookup_ok: bool
    lookup_error: str | None


def decode_wasi(body: bytes) -> WasiSeen:
    env, dirs, c_tag, c_err, k_tag, k_err, l_tag, l_err = struct.unpack("<II6B", body[:14])

    def err(tag: int, code: int) -> str | None:
        return SOCKET_ERRORS[code] if tag == 1 else None

    connected = None if k_tag == 2 else k_tag == 0  # 2: not attempted (no socket)
    return WasiSeen(env, dirs, c_tag == 0, err(c_tag, c_err), connected, err(k_tag, k_err), l_tag == 0,
                    err(l_tag, l_err))


def _prober_wat(name: str) -> str:
    table, data = _static(name)
    sockets = f"wasi:sockets/{{}}@{WASI}"
    return f"""(module
  (import "{HOST}" "log" (func $log (param i32 i32 i32)))
  (import "wasi:cli/environment@{WASI}" "get-environment" (func $env (param i32)))
  (import "wasi:filesystem/preopens@{WASI}" "get-directories" (func $dirs (param i32)))
  (import "{sockets.format("instance-network")}" "instance-network" (func $net (result i32)))
  (import "{sockets.format("tcp-create-socket")}" "create-tcp-socket" (func $tcp (param i32 i32)))
  (import "{sockets.format("tcp")}" "[method]tcp-socket.start-connect" (func $connect (param {i32s(15)})))
  (import "{sockets.format("ip-name-lookup")}" "resolve-addresses" (func $lookup (param {i32s(4)})))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const {HEAP}))
{data}  (data (i32.const 4000) "localhost")
{CABI_REALLOC}
  (func (export "{EXPORT}#on-start") (param i32 i32) (result i32)
    (i32.store8 (i32.const {RET}) (i32.const 0))
    (i32.store (i32.const {RET + 4}) (i32.const {table["name"]}))
    (i32.store (i32.const {RET + 8}) (i32.const {table["name_len"]}))
    (i32.store (i32.const {RET + 12}) (i32.const {table["endpoint"]}))
    (i32.store (i32.const {RET + 16}) (i32.const 1))
    (i32.store8 (i32.const {RET + 20}) (i32.const 0))
    (i32.const {RET}))
  (func (export "{EXPORT}#on-http-request") (param {i32s(11)}) (result i32)
    (local $out i32) (local $net i32)
    (local.set $out (i32.const 5000))
    (call $log (i32.const 2) (i32.const 4000) (i32.const 9))
    (call $env (i32.const {IRET})) (i32.store (local.get $out) (i32.load (i32.const {IRET + 4})))
    (call $dirs (i32.const {IRET})) (i32.store offset=4 (local.get $out) (i32.load (i32.const {IRET + 4})))
    (local.set $net (call $net))
    (call $tcp (i32.const 0) (i32.const {IRET}))
    (i32.store8 offset=8 (local.get $out) (i32.load8_u (i32.const {IRET})))
    (i32.store8 offset=9 (local.get $out) (i32.load8_u (i32.const {IRET + 4})))
    (i32.store8 offset=10 (local.get $out) (i32.const 2))
    (if (i32.eqz (i32.load8_u (i32.const {IRET}))) (then
      (call $connect (i32.load (i32.const {IRET + 4})) (local.get $net) (i32.const 0)
        (i32.load16_u (local.get 8)) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const {IRET}))
      (i32.store8 offset=10 (local.get $out) (i32.load8_u (i32.const {IRET})))
      (i32.store8 offset=11 (local.get $out) (i32.load8_u (i32.const {IRET + 1})))))
    (call $lookup (local.get $net) (i32.const 4000) (i32.const 9) (i32.const {IRET}))
    (i32.store8 offset=12 (local.get $out) (i32.load8_u (i32.const {IRET})))
    (i32.store8 offset=13 (local.get $out) (i32.load8_u (i32.const {IRET + 4})))
    (i32.store16 (i32.const {RET}) (i32.const 200))
    (i32.store (i32.const {RET + 4}) (i32.const {table["json"]})) (i32.store (i32.const {RET + 8}) (i32.const 2))
    (i32.store (i32.const {RET + 12}) (local.get $out)) (i32.store (i32.const {RET + 16}) (i32.const 14))
    (i32.const {RET}))
  (func (export "{EXPORT}#on-poll"))
  (func (export "{EXPORT}#on-respond") (param {i32s(11)}) (result i32)
    (i32.store8 (i32.const {RET}) (i32.const 0)) (i32.const {RET}))
  (func (export "{EXPORT}#on-status") (param {i32s(5)}))
  (func (export "{EXPORT}#on-broadcast") (param {i32s(13)}) (result i32)
    (i32.store8 (i32.const {RET}) (i32.const 0)) (i32.const {RET}))
  (func (export "{EXPORT}#on-shutdown"))
)
"""


def build_wasi_prober(tmp: Path, name: str = "wasiprobe") -> Path:
    imports = [f"wasi:cli/environment@{WASI}", f"wasi:filesystem/preopens@{WASI}",
               f"wasi:sockets/instance-network@{WASI}", f"wasi:sockets/tcp-create-socket@{WASI}",
               f"wasi:sockets/tcp@{WASI}", f"wasi:sockets/ip-name-lookup@{WASI}"]
    wit = _wit_dir(tmp, name, {"sockets": _SOCKETS, "filesystem": _FILESYSTEM, "cli": _CLI}, imports)
    return componentize(tmp, name, _prober_wat(name), wit, f"hostile:{name}/{name}")


def build_unprovided_import(tmp: Path, name: str = "wasihttp") -> Path:
    handle = f'(import "wasi:http/outgoing-handler@{WASI}" "handle" (func $handle (param i32) (result i32)))'
    wat = wat_source(name).replace("(memory (export", f"{handle}\n  (memory (export", 1)
    wit = _wit_dir(tmp, name, {"http": _HTTP}, [f"wasi:http/outgoing-handler@{WASI}"])
    return componentize(tmp, name, wat, wit, f"hostile:{name}/{name}")


def build_oversized_memory(tmp: Path, name: str, pages: int) -> Path:
    wat = wat_source(name).replace('(memory (export "memory") 2)', f'(memory (export "memory") {pages})', 1)
    return componentize(tmp, f"{name}-{pages}", wat, WIT_DIR, "airlock:channel/sandboxed-channel")
