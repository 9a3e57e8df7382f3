"""The http adapter composed in front of a component at load (``runtime.adapter``, issue 13 defect 4).

Loading composes once (cached next to the compile cache by the original's sha256 and the adapter version); what
the runtime reports stays the original's; the composed component imports every host function the original does
but ``http-request``, which it takes from ``airlock:adapter/http-chunks`` instead. Without wasm-tools the original
loads, with a warning. What crosses through the adapter is tested in tests/capabilities/test_guest_bytes.py.
"""

from __future__ import annotations

import hashlib
import logging
import stat
from pathlib import Path

import fetchguest
import fuzzguest
import pytest
import watguest
from wasmtime.component._types import FuncType

from airlock.errors import ComponentError
from airlock.runtime import adapter, pooling
from airlock.runtime.adapter_wat import DummyFormatError, instance_types
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.instance import Limits, Sandbox
from airlock.runtime.pooling import PoolingSettings


def _load(cache: Path, wasm: Path, *, adapt: bool = True) -> LoadedComponent:
    runtime = Runtime(cache, adapt=adapt)
    try:
        return runtime.load(wasm)
    finally:
        runtime.close()


def _host_functions(loaded: LoadedComponent, runtime: Runtime, interface: str) -> set[str]:
    """Names of the functions ``loaded``'s component imports from ``interface``."""
    item = loaded.component.type.imports(runtime.engine).get(interface)
    if item is None:
        return set()
    return {name for name, e in item.ty.exports(runtime.engine).items() if isinstance(e.ty, FuncType)}


def test_a_component_is_composed_once_and_reported_as_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wasm = fuzzguest.build_component(tmp_path / "guest")
    cache = tmp_path / "cache"
    original = _load(cache, wasm, adapt=False)
    loaded = _load(cache, wasm)
    assert loaded.adapted and not original.adapted
    data = wasm.read_bytes()
    assert (loaded.sha256, loaded.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (loaded.world, loaded.imports, set(loaded.exports)) == (original.world, original.imports,
                                                                   set(original.exports))
    composed = adapter.composed_path(cache, loaded.sha256)
    assert stat.S_IMODE(composed.stat().st_mode) == 0o600
    # Composed once: a later load needs no wasm-tools, and compiles nothing.
    monkeypatch.setattr(adapter, "wasm_tools", lambda: None)
    again = _load(cache, wasm)
    assert again.adapted and again.from_cache


def test_the_composed_component_takes_http_request_from_the_chunks_interface(tmp_path: Path) -> None:
    wasm = fuzzguest.build_component(tmp_path / "guest")  # imports every channel-host function
    runtime, unadapted = Runtime(tmp_path / "cache"), Runtime(tmp_path / "cache", adapt=False)
    try:
        loaded, plain = runtime.load(wasm), unadapted.load(wasm)
        host = loaded.world.host_interface
        every = _host_functions(plain, runtime, host)
        assert len(every) == 12 and "http-request" in every
        assert _host_functions(loaded, runtime, host) == every - {"http-request"}
        assert _host_functions(loaded, runtime, adapter.CHUNKS_INTERFACE) == {"http-begin", "http-read"}
    finally:
        runtime.close()
        unadapted.close()


@pytest.mark.parametrize("world", ["near-0.3.1", "near-0.3.0"])
def test_near_agent_components_are_composed(tmp_path: Path, world: str) -> None:
    loaded = _load(tmp_path / "cache", fetchguest.build_component(tmp_path / "guest", world="near-0.3.1")
                   if world == "near-0.3.1" else _near_030_fetch(tmp_path))
    assert loaded.adapted
    assert loaded.world.host_interface == f"near:agent/channel-host@{world.removeprefix('near-')}"


def _near_030_fetch(tmp: Path) -> Path:
    # The fetch guest's WAT names its imports by version; 0.3.0 has 0.3.1's shape (watguest._wit_dir_for).
    import subprocess

    wat = tmp / "fetch-030.wat"
    wat.write_text(fetchguest.wat_source("fetch", "near-0.3.1").replace("@0.3.1", "@0.3.0"))
    core, out = tmp / "fetch-030.core.wasm", tmp / "fetch-030.wasm"
    tool = watguest._wasm_tools()
    wit = watguest._wit_dir_for("near-0.3.0", tmp)
    subprocess.run([tool, "component", "embed", str(wit), "--world", watguest.WORLDS["near-0.3.0"][2], str(wat),
                    "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


def test_a_component_without_http_request_is_not_composed(tmp_path: Path) -> None:
    wasm = watguest.build_component(tmp_path / "guest")  # log, emit-message, workspace-write only
    cache = tmp_path / "cache"
    loaded = _load(cache, wasm)
    assert not loaded.adapted
    assert adapter.composed_path(cache, loaded.sha256).with_suffix(".none").is_file()  # asked once


def test_without_wasm_tools_the_original_loads_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(adapter, "wasm_tools", lambda: None)
    with caplog.at_level(logging.WARNING, logger="airlock.runtime"):
        loaded = _load(tmp_path / "cache", fetchguest.build_component(tmp_path / "guest"))
    assert not loaded.adapted
    assert "loaded without the http adapter (wasm-tools not found" in caplog.text


def test_a_file_that_is_no_component_gets_the_usual_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x0d\0\x01\0garbage")
    with pytest.raises(Exception, match="not a loadable WebAssembly component"):
        _load(tmp_path / "cache", bad)


def test_an_unknown_dummy_layout_is_refused() -> None:
    with pytest.raises(DummyFormatError):
        instance_types("(component\n  (type (;0;) (instance))\n)\n", "a:b/c@1.0.0", adapter.CHUNKS_INTERFACE)


class _NoCalls:
    """on-start of the fetch guest calls no host function."""

    host_bug: str | None = None


def test_the_instance_pool_has_room_for_the_adapters_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A composed component has two memories (the guest's and the adapter's): the pool admits it and runs it. A pool
    with one memory per component refuses the composed form; the original then loads, with a warning."""
    wasm = fetchguest.build_component(tmp_path / "guest")
    runtime = Runtime(tmp_path / "cache", pooling=PoolingSettings(slots=2, max_memory_bytes=8 * 1024 * 1024))
    try:
        assert runtime.pooling is not None
        loaded = runtime.load(wasm)
        assert loaded.adapted
        result, _ = Sandbox(runtime).call(loaded, "on-start", ("{}",), _NoCalls(), Limits())  # type: ignore[arg-type]
        assert getattr(result, "display-name") == "fetch"
    finally:
        runtime.close()
    monkeypatch.setattr(pooling, "MEMORIES_PER_COMPONENT", 1)
    one = Runtime(tmp_path / "cache1", pooling=PoolingSettings(slots=2, max_memory_bytes=8 * 1024 * 1024))
    try:
        with caplog.at_level(logging.WARNING, logger="airlock.runtime"):
            assert not one.load(wasm).adapted
        assert "the composed component does not load (does not fit the instance pool" in caplog.text
        assert "; loading the original" in caplog.text
    finally:
        one.close()


def _chunks_importing_guest(tmp: Path) -> Path:
    """The fetch guest, also importing http-chunks' http-read itself (a guest reaching for the adapter's interface)."""
    import subprocess

    wit = tmp / "wit"
    (wit / "deps" / "channel").mkdir(parents=True)
    (wit / "deps" / "adapter").mkdir(parents=True)
    (wit / "deps" / "channel" / "channel.wit").write_text((watguest.WIT_DIR / "channel.wit").read_text())
    (wit / "deps" / "adapter" / "adapter.wit").write_text(f"package {adapter.CHUNKS_PACKAGE};\n{adapter.CHUNKS_WIT}")
    (wit / "evil.wit").write_text(
        "package test:evil;\nworld evil {\n  import airlock:channel/channel-host@0.1.0;\n"
        f"  import {adapter.CHUNKS_INTERFACE};\n  export airlock:channel/channel@0.1.0;\n}}\n")
    source = fetchguest.wat_source("fetch").replace(
        "(module\n", f'(module\n  (import "{adapter.CHUNKS_INTERFACE}" "http-read" (func (param i32 i32)))\n', 1)
    wat, core, out = tmp / "evil.wat", tmp / "evil.core.wasm", tmp / "evil.wasm"
    wat.write_text(source)
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(wit), "--world", "test:evil/evil", str(wat), "-o", str(core)],
                   check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


def test_a_guest_that_imports_the_chunks_interface_itself_is_refused(tmp_path: Path) -> None:
    """Only the adapter may call http-begin and http-read: a guest importing them is not composed, and the runtime
    refuses the interface as one it does not provide."""
    wasm = _chunks_importing_guest(tmp_path)
    refused = f"imports interfaces Airlock does not provide: {adapter.CHUNKS_INTERFACE}"
    with pytest.raises(ComponentError, match=refused):
        _load(tmp_path / "cache", wasm)
