"""A hand-written WAT channel guest (world ``airlock:channel@0.1.0`` or ``near:agent@0.3.1``) that moves big
``list<u8>`` values through ``http-request``, for the memory and size-limit tests of issue 13 (defect 4).

- on-start: ok({display-name: <name>, http-endpoints: [{path: "/webhook/<name>", methods: ["POST"]}], poll: none})
- on-poll: ``http-request("GET", URL, "{}", none, none)`` ``polls`` times (``build_component``), each response
  crossing into the guest and dropped (what the host spends to hand it over is what the RSS test measures); the
  guest's heap starts again before each, and an error traps (the callback fails: nothing is silently refused).
- on-http-request: ``http-request("POST", URL, "{}", some(<the webhook's own body>), none)``; answers 200 with the
  upstream's response body when the request succeeded, else 502 with the host's error text as the body.

``URL`` is ``https://fetch.example.com/body``: tests point ``fetch.example.com`` at a 127.0.0.1 server with
``upstream_overrides``. The canonical-ABI layout used (``CanonicalABI.md``): http-request's 11 flat
parameters plus a return pointer; ``result<http-response, string>`` is a tag byte at 0 and the payload at 4
(``http-response``: status u16 at 4, headers (ptr, len) at 8, body (ptr, len) at 16; error: (ptr, len) at 4).
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from watguest import CABI_REALLOC, STATIC, WIT_DIR, WORLDS, _data, _methods_data, _wasm_tools

HOST_NAME = "fetch.example.com"
URL = f"https://{HOST_NAME}/body"
_RET = 4096  # return area of the http-request import (24 bytes)
_STR = {"get": 3000, "post": 3004, "url": 3100, "json": 3200, "ok": 3300}


def _http_call(method: str, body: str) -> str:
    """WAT calling http-request(METHOD, URL, "{}", <body: 3 flat values>, none) with the return area _RET."""
    return (f"(call $http (i32.const {_STR[method]}) (i32.const {len(method)}) (i32.const {_STR['url']}) "
            f"(i32.const {len(URL)}) (i32.const {_STR['json']}) (i32.const 2) {body} (i32.const 0) "
            f"(i32.const 0) (i32.const {_RET}))")


def wat_source(name: str, world: str = "airlock", polls: int = 1) -> str:
    """The guest's core module for ``world`` (a key of ``watguest.WORLDS``: the worlds share the ABI)."""
    pkg, version, _ = WORLDS[world]
    host = f"{pkg}/channel-host@{version}"
    exp = f"{pkg}/channel@{version}"
    path = f"/webhook/{name}".encode()
    s = STATIC
    data = "".join([
        _data(s["name"], name.encode()),
        _data(s["endpoints"], struct.pack("<IIIIB", s["path"], len(path), s["methods"], 1, 0)),
        _data(s["path"], path),
        _methods_data(("POST",)),
        _data(_STR["get"], b"GET"),
        _data(_STR["post"], b"POST"),
        _data(_STR["url"], URL.encode()),
        _data(_STR["json"], b"{}"),
        _data(_STR["ok"], b"ok"),
    ])
    i32x = lambda n: " ".join(["i32"] * n)  # noqa: E731
    get = _http_call("get", "(i32.const 0) (i32.const 0) (i32.const 0)")  # body: none
    post = _http_call("post", "(i32.const 1) (local.get 8) (local.get 9)")  # body: some(the webhook body)
    return f"""(module
  (import "{host}" "http-request" (func $http (param {i32x(12)})))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
{data}
{CABI_REALLOC}  (func (export "{exp}#on-start") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.store (i32.const 2052) (i32.const {s["name"]}))
    (i32.store (i32.const 2056) (i32.const {len(name.encode())}))
    (i32.store (i32.const 2060) (i32.const {s["endpoints"]}))
    (i32.store (i32.const 2064) (i32.const 1))
    (i32.store8 (i32.const 2068) (i32.const 0))
    (i32.const 2048))
  (func (export "{exp}#on-http-request") (param {i32x(11)}) (result i32)
    {post}
    (i32.store (i32.const 2052) (i32.const {_STR["json"]}))
    (i32.store (i32.const 2056) (i32.const 2))
    (if (i32.load8_u (i32.const {_RET}))
      (then
        (i32.store16 (i32.const 2048) (i32.const 502))
        (i32.store (i32.const 2060) (i32.load (i32.const {_RET + 4})))
        (i32.store (i32.const 2064) (i32.load (i32.const {_RET + 8}))))
      (else
        (i32.store16 (i32.const 2048) (i32.const 200))
        (i32.store (i32.const 2060) (i32.load (i32.const {_RET + 16})))
        (i32.store (i32.const 2064) (i32.load (i32.const {_RET + 20})))))
    (i32.const 2048))
  (func (export "{exp}#on-poll") (local $i i32)
    (loop $again
      (global.set $heap (i32.const 65536))  ;; the last body is dropped: the next one reuses its room
      {get}
      (if (i32.load8_u (i32.const {_RET})) (then unreachable))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {polls})))))
  (func (export "{exp}#on-respond") (param {i32x(11)}) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.const 2048))
  (func (export "{exp}#on-status") (param {i32x(5)}))
  (func (export "{exp}#on-broadcast") (param {i32x(13)}) (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.const 2048))
  (func (export "{exp}#on-shutdown"))
)
"""


def capabilities(name: str, **http: object) -> dict[str, object]:
    """A capabilities file granting the guest ``fetch.example.com`` (``http`` overrides the section's keys)."""
    return {
        "name": name, "version": "0.1.0", "wit_version": "0.1.0",
        "capabilities": {
            "http": {"allowlist": [{"host": HOST_NAME, "path_prefix": "/"}], **http},
            "channel": {"allowed_paths": [f"/webhook/{name}"], "allow_polling": True},
        },
        "config": {"dm_policy": "open"},
    }


def build_component(tmp: Path, name: str = "fetch", world: str = "airlock", polls: int = 1) -> Path:
    """Build the guest for ``world`` (``airlock`` or ``near-0.3.1``) with on-poll fetching ``polls`` times into
    ``tmp`` (once) and return the component's path. Raises CalledProcessError."""
    tmp.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-fetch-{world}-{polls}"
    out = tmp / f"{stem}.wasm"
    if out.exists():
        return out
    wat = tmp / f"{stem}.wat"
    wat.write_text(wat_source(name, world, polls))
    core = tmp / f"{stem}.core.wasm"
    tool = _wasm_tools()
    subprocess.run([tool, "component", "embed", str(WIT_DIR), "--world", WORLDS[world][2], str(wat),
                    "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out
