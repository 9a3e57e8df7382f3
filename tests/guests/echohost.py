"""The host side of the echo component (``echogen``): functions for ``Sandbox(host_functions=...)``, a
recording host API, and loading the component as a ``LoadedComponent`` (it is not a channel world, so
``Runtime.load`` would refuse it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import echogen
from wasmtime.component import Component, Variant

from airlock.runtime import linker as host_linker
from airlock.runtime.engine import LoadedComponent, Runtime, World


class EchoApi:
    """Records every call; answers with the argument(s) unless an override says otherwise (a wrong value,
    an exception). ``note`` answers ``None`` (it has no result)."""

    def __init__(self, overrides: dict[str, Callable[..., Any]] | None = None) -> None:
        self.host_bug: str | None = None
        self.trace: list[tuple[str, tuple[Any, ...]]] = []
        self.logs: list[tuple[str, str]] = []
        self.overrides = overrides or {}

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def echo(self, name: str, *args: Any) -> Any:
        self.trace.append((name, args))
        override = self.overrides.get(name)
        if override is not None:
            return override(*args)
        if name == "note":
            return None
        return args[0] if len(args) == 1 else tuple(args)


def _echo_impl(name: str) -> Callable[..., Any]:
    return lambda api, *args: api.echo(name, *args)


def _err_mapping(name: str) -> Callable[[str], Any] | None:
    if name == "echo-res-unit-string":
        return lambda message: message  # untagged: a str is the err case
    if name == "echo-res-string-string":
        return lambda message: Variant("err", message)
    return None


ECHO_NAMES = [f"echo-{n}" for n in echogen.ECHOES] + [*echogen.MULTI, "note", "echo-then-boom"]
EXPORTS = [*ECHO_NAMES, "boom", "spin", "grow"]
ECHO_FUNCTIONS: host_linker.HostFunctions = {name: (_echo_impl(name), _err_mapping(name)) for name in ECHO_NAMES}


def load_echo(runtime: Runtime, out_dir: Path) -> LoadedComponent:
    """Build (once) and compile the echo component; exports indexed like a channel's callbacks."""
    path = echogen.build_component(out_dir)
    wasm = path.read_bytes()
    component = Component(runtime.engine, wasm)
    iface = component.get_export_index(echogen.GUEST)
    assert iface is not None
    exports = {}
    for name in EXPORTS:
        idx = component.get_export_index(name, iface)
        assert idx is not None, name
        exports[name] = idx
    return LoadedComponent(
        path=path, component=component, world=World(echogen.HOST, echogen.GUEST), exports=exports,
        imports=(echogen.HOST,), imports_wasi=False, size_bytes=len(wasm), sha256=hashlib.sha256(wasm).hexdigest(),
        load_ms=0.0, from_cache=False,
    )
