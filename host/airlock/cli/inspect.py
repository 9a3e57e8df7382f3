"""``airlock inspect WASM``: what a component is and whether Airlock can run it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ComponentError
from ..runtime.engine import Runtime
from . import report
from .app import app, config_from, friendly_errors
from .common import component_problem, require_file, runtime_for
from .output import JsonOption, show_doc

__all__ = ["inspect"]


def _raw_interfaces(runtime: Runtime, wasm: bytes) -> tuple[list[str], list[str]] | None:
    """Imports and exports of a component Airlock does not run, or ``None`` if it does not compile."""
    import wasmtime
    from wasmtime.component import Component

    try:
        ctype = Component(runtime.engine, wasm).type
        return sorted(ctype.imports(runtime.engine).keys()), sorted(ctype.exports(runtime.engine).keys())
    except wasmtime.WasmtimeError:
        return None


def _inspect_doc(runtime: Runtime, path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        return report.component_doc(runtime.load(path))
    except ComponentError as exc:
        reason = component_problem(path, str(exc).removeprefix(f"{path.name}: "))
    elapsed = (time.perf_counter() - start) * 1000
    data = path.read_bytes()
    raw = _raw_interfaces(runtime, data)
    return report.unsupported_doc(
        str(path), reason, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), load_ms=elapsed,
        imports=raw[0] if raw else None, exports=raw[1] if raw else None,
    )


@app.command()
@friendly_errors
def inspect(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="A .wasm file.")],
    as_json: JsonOption = False,
) -> None:
    """Describe a component: world, imports, exports, size, load time, and whether Airlock can run it.

    Exit status 1 (with "unsupported: <reason>") for a file that is not a component of a supported world.
    """
    require_file(wasm, "component")
    config = config_from(ctx)
    with runtime_for(config) as runtime:
        doc = _inspect_doc(runtime, wasm)
    show_doc(doc, as_json=as_json, render=report.render_inspect)
    if not doc["supported"]:
        if not as_json:
            typer.echo(f"unsupported: {report.safe(str(doc['reason']))}")
        raise typer.Exit(1)
