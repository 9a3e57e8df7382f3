"""The pooling instance allocator (runtime/pooling.py), proved by what only a pool does:

- it caps live instances at its slot count ("maximum concurrent limit of N for component instances"), where
  on-demand allocation takes any number, and the real host's webhook path hits that cap too (``SandboxBusy``:
  503 + Retry-After, not a guest trap);
- it refuses at load time a component whose initial memory does not fit a memory slot;
and that the host works (a real webhook round trip) with the pool on and off, that a missing C symbol or a
too-small address space falls back cleanly with the reason logged (no process abort), and that compiled
artifacts are shared between pooling and on-demand engines (so the compile cache key ignores the pool).
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
import wasmtime
import watguest
from conftest import REPO, InstallFn, minimal_caps
from test_sandbox import FakeHostApi, _request

from airlock.errors import ComponentError, ConfigError, GuestError, HostBug, SandboxBusy
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.runtime import pooling
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.instance import Limits, Sandbox
from airlock.runtime.pooling import PoolingSettings

MIB = 1024 * 1024
POOL_FULL = "maximum concurrent limit of 2 for component instances reached"


@contextmanager
def runtime_with(cache: Path, settings: PoolingSettings | None) -> Iterator[Runtime]:
    rt = Runtime(cache, pooling=settings)
    try:
        yield rt
    finally:
        rt.close()


@contextmanager
def live_instances(rt: Runtime, loaded: LoadedComponent, count: int) -> Iterator[list[wasmtime.Store]]:
    """Hold ``count`` instantiated stores of ``loaded`` (each takes one pool slot) until the block ends."""
    linker = Sandbox(rt).linker_for(loaded)
    stores: list[wasmtime.Store] = []
    try:
        for _ in range(count):
            store = wasmtime.Store(rt.engine)
            store.set_fuel(10**9)
            store.set_epoch_deadline(10**6)
            stores.append(store)
            linker.instantiate(store, loaded.component)
        yield stores
    finally:
        for store in stores:
            store.close()


def test_pool_caps_live_instances_at_its_slots(compile_cache: Path, wat_dir: Path) -> None:
    wasm = watguest.build_component(wat_dir, "pool")
    with runtime_with(compile_cache, PoolingSettings(slots=2, max_memory_bytes=50 * MIB)) as rt:
        assert rt.pooling is not None and rt.pooling_unavailable is None
        loaded = rt.load(wasm)
        sandbox = Sandbox(rt)
        with live_instances(rt, loaded, 2):
            store = wasmtime.Store(rt.engine)
            with pytest.raises(wasmtime.WasmtimeError, match=POOL_FULL):
                sandbox.linker_for(loaded).instantiate(store, loaded.component)
            store.close()
            # The callback path meets the same wall, reported as the host being busy, not as a guest trap.
            with pytest.raises(SandboxBusy, match=POOL_FULL) as busy:
                sandbox.call(loaded, "on-poll", (), FakeHostApi(), Limits())
            assert busy.value.retry_after == 1 and not isinstance(busy.value, GuestError | HostBug)
            with pytest.raises(SandboxBusy, match=POOL_FULL), sandbox.reused_instance(loaded, FakeHostApi(), Limits()):
                pass
        # Slots come back when stores close: the next callbacks run.
        for _ in range(5):
            api = FakeHostApi()
            sandbox.call(loaded, "on-poll", (), api, Limits())
            assert api.logs == [("info", "poll")]


def _faults_per_callback(rt: Runtime, loaded: LoadedComponent, calls: int = 300) -> float:
    sandbox = Sandbox(rt)
    body = (_request(b"x" * 2000),)
    for _ in range(50):  # warm: converters, linker, pool slot
        sandbox.call(loaded, "on-http-request", body, FakeHostApi(), Limits())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        sandbox.call(loaded, "on-http-request", body, FakeHostApi(), Limits())
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def test_pool_keeps_memory_slots_resident(compile_cache: Path, wat_dir: Path) -> None:
    """A reused memory slot is zeroed with memset (pooling.LINEAR_MEMORY_KEEP_RESIDENT), not unmapped: fresh
    callbacks take no page faults for guest memory, where on-demand allocation maps new pages every time.
    (The WAT guest copies the body into its memory and emits it.)"""
    wasm = watguest.build_component(wat_dir, "pool")
    with runtime_with(compile_cache, PoolingSettings(slots=4, max_memory_bytes=50 * MIB)) as rt:
        pooled = _faults_per_callback(rt, rt.load(wasm))
    with runtime_with(compile_cache, None) as rt:
        on_demand = _faults_per_callback(rt, rt.load(wasm))
    assert pooled < 0.5 and on_demand >= 1, (pooled, on_demand)


def test_on_demand_allocation_has_no_such_cap(compile_cache: Path, wat_dir: Path) -> None:
    wasm = watguest.build_component(wat_dir, "pool")
    with runtime_with(compile_cache, None) as rt:
        assert rt.pooling is None
        loaded = rt.load(wasm)
        with live_instances(rt, loaded, 5) as stores:
            assert len(stores) == 5


def test_pool_refuses_at_load_a_component_whose_memory_does_not_fit(compile_cache: Path, wat_dir: Path) -> None:
    """The WAT guest declares 2 pages (128 KiB) of initial memory; a 64 KiB memory slot cannot hold it."""
    wasm = watguest.build_component(wat_dir, "pool")
    with runtime_with(compile_cache, PoolingSettings(slots=4, max_memory_bytes=64 * 1024)) as rt:
        assert rt.pooling is not None
        for _ in range(2):  # a compile (cold) and a cache hit both refuse, with one line naming the pool
            with pytest.raises(ComponentError) as info:
                rt.load(wasm)
            text = str(info.value)
            assert text.startswith(f"{wasm.name}: does not fit the instance pool") and "\n" not in text
    with runtime_with(compile_cache, None) as rt:
        rt.load(wasm)  # on-demand allocation has no slot size


def test_compiled_artifacts_are_shared_with_on_demand_engines(tmp_path: Path, wat_dir: Path) -> None:
    """The allocator does not change compiled code: a pooling engine's artifact is byte-identical to an
    on-demand engine's, so one cache entry serves both (and the cache key need not include the pool)."""
    wasm = watguest.build_component(wat_dir, "pool")
    pooled_cache, plain_cache = tmp_path / "pooled", tmp_path / "plain"
    with runtime_with(pooled_cache, PoolingSettings(slots=4, max_memory_bytes=8 * MIB)) as rt:
        assert rt.load(wasm).from_cache is False
        settings_tag = rt.settings_tag
    with runtime_with(plain_cache, None) as rt:
        assert rt.load(wasm).from_cache is False
        assert rt.settings_tag == settings_tag
    [pooled], [plain] = pooled_cache.glob("*.cwasm"), plain_cache.glob("*.cwasm")
    assert pooled.name == plain.name and pooled.read_bytes() == plain.read_bytes()
    with runtime_with(pooled_cache, None) as rt:
        loaded = rt.load(wasm)
        assert loaded.from_cache is True
        Sandbox(rt).call(loaded, "on-poll", (), FakeHostApi(), Limits())


def test_missing_c_symbol_falls_back_with_the_reason_logged(
    compile_cache: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    symbols = dict(pooling._SYMBOLS)
    symbols["wasmtime_pooling_allocation_config_no_such_knob_set"] = (None, [])
    monkeypatch.setattr(pooling, "_SYMBOLS", symbols)
    with caplog.at_level(logging.WARNING, logger="airlock.runtime"), \
            runtime_with(compile_cache, PoolingSettings(slots=2, max_memory_bytes=50 * MIB)) as rt:
        assert rt.pooling is None
        assert rt.pooling_unavailable == "libwasmtime lacks wasmtime_pooling_allocation_config_no_such_knob_set"
        assert any("pooling allocator unavailable" in r.getMessage() and "no_such_knob" in r.getMessage()
                   for r in caplog.records)
        loaded = rt.load(watguest.build_component(wat_dir, "pool"))
        with live_instances(rt, loaded, 3):  # more than the 2 slots asked for: on-demand allocation
            pass
        Sandbox(rt).call(loaded, "on-poll", (), FakeHostApi(), Limits())


def test_address_space_limit_falls_back_instead_of_aborting(tmp_path: Path, wat_dir: Path) -> None:
    """wasmtime's C API aborts the process when an engine cannot reserve its pool; under ``ulimit -v`` the
    runtime must see that coming, log why, and run callbacks with on-demand allocation."""
    wasm = watguest.build_component(wat_dir, "pool")
    script = textwrap.dedent(f"""
        import logging, resource, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        from pathlib import Path
        from airlock.runtime.engine import Runtime
        from airlock.runtime.instance import Limits, Sandbox
        from airlock.runtime.pooling import PoolingSettings
        class Api:  # on-poll only logs
            host_bug = None
            logs = []
            def log(self, level, message): self.logs.append((level, message))
        limit = 6 * 1024**3
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        rt = Runtime(Path({str(tmp_path / "cache")!r}), pooling=PoolingSettings(slots=32, max_memory_bytes=50 << 20))
        api = Api()
        Sandbox(rt).call(rt.load(Path({str(wasm)!r})), "on-poll", (), api, Limits(memory_bytes=1 << 20))
        print("pooling:", rt.pooling, "| logs:", api.logs)
        rt.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pooling allocator unavailable" in done.stdout and "ulimit -v" in done.stdout
    assert "pooling: None | logs: [('info', 'poll')]" in done.stdout


def test_pool_is_sized_to_channels_times_lanes_with_a_floor(tmp_path: Path) -> None:
    assert pooling.slots_for(0) == pooling.POOL_SLOTS_FLOOR == 32
    assert pooling.slots_for(16) == 32 and pooling.slots_for(17) == 34 and pooling.slots_for(50) == 100
    channels = tmp_path / "channels"
    channels.mkdir()
    for i in range(20):
        (channels / f"c{i}.wasm").write_bytes(b"")
        (channels / f"c{i}.capabilities.json").write_text("{}")
    (channels / "orphan.capabilities.json").write_text("{}")  # no component: not installed
    assert pooling.count_installed(channels) == 20
    config = HostConfig.build(home=tmp_path, channels_dir=channels, memory_limit_bytes=20 * MIB)
    assert pooling.for_host(config) == PoolingSettings(slots=40, max_memory_bytes=20 * MIB)
    config = HostConfig.build(home=tmp_path, channels_dir=channels, pool_slots=7)
    assert pooling.for_host(config) == PoolingSettings(slots=7, max_memory_bytes=50 * MIB)
    assert pooling.for_host(HostConfig.build(home=tmp_path, pooling=False)) is None


@pytest.mark.parametrize("slots", [0, -1, 100_001])
def test_pool_slots_out_of_range_is_a_config_error(tmp_path: Path, slots: int) -> None:
    with pytest.raises(ConfigError, match=r"^pool_slots: "):
        HostConfig.build(home=tmp_path, pool_slots=slots)


@pytest.mark.parametrize(("slots", "memory"), [(0, MIB), (2**32, MIB), (4, 0)])
def test_pooling_settings_are_validated(slots: int, memory: int) -> None:
    with pytest.raises(ValueError):
        PoolingSettings(slots=slots, max_memory_bytes=memory)


def test_reservation_over_the_cap_is_refused() -> None:
    with pytest.raises(pooling.PoolingUnavailable, match="over the"):
        pooling.check_address_space(PoolingSettings(slots=50_000, max_memory_bytes=MIB))


def test_refusal_recognises_pool_errors_only() -> None:
    msg = ("failed to load\n\nCaused by:\n    The component transitively contains 14 core module instances, "
           "which exceeds the configured maximum of 8 in the pooling allocator")
    assert pooling.refusal(msg) == ("does not fit the instance pool (host limits): The component transitively "
                                    "contains 14 core module instances, which exceeds the configured maximum "
                                    "of 8 in the pooling allocator")
    assert pooling.refusal("failed to parse WebAssembly module") is None


# ---- the real host, pooling on and off ------------------------------------------------------------------


async def _post_full(url: str, body: bytes) -> tuple[int, str, str | None]:
    async with aiohttp.ClientSession() as s, s.post(url, data=body) as r:
        return r.status, await r.text(), r.headers.get("Retry-After")


async def _post(url: str, body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(url, data=body) as r:
        return r.status, await r.text()


async def _round_trip(host: AirlockHost) -> None:
    """Webhook -> guest emits -> agent reply -> guest on-respond writes the workspace."""
    assert await _post(f"{host.base_url}/webhook/minimal", b"hello pool") == (200, "ok")
    message = await host.next_message()
    assert (message.channel, message.content, message.user_id) == ("minimal", "hello pool", "u1")
    assert (await host.respond(message, "the reply")).ok


@pytest.mark.parametrize("enabled", [True, False])
async def test_host_round_trip_with_pooling_on_and_off(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, enabled: bool
) -> None:
    install_channel(watguest.build_component(wat_dir), minimal_caps())
    config = HostConfig.build(home=airlock_home, listen_port=0, pooling=enabled, pool_slots=2)
    async with AirlockHost(config) as host:
        assert (host.runtime.pooling is not None) is enabled
        await _round_trip(host)
        loaded = host.manager.slots["minimal"].channel.loaded
        with live_instances(host.runtime, loaded, 2):
            status, body, retry = await _post_full(f"{host.base_url}/webhook/minimal", b"while full")
            # A full pool is the host being busy: 503 + Retry-After, the guest not run and not blamed (the
            # platform redelivers). On demand it just runs.
            assert (status, body, retry) == (
                (503, json.dumps({"error": "busy"}), "1") if enabled else (200, "ok", None)
            )
        if not enabled:
            await host.next_message()
        await _round_trip(host)


def test_a_pool_that_would_exhaust_the_memory_mappings_falls_back(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """wasmtime aborts the process when it cannot map a pool; the host checks vm.max_map_count first."""
    from airlock.runtime.engine import Runtime

    monkeypatch.setattr(pooling, "_max_map_count", lambda: pooling._maps_in_use() + 100)
    settings = pooling.for_host(HostConfig.build(home=tmp_path))
    assert settings is not None
    with pytest.raises(pooling.PoolingUnavailable, match="max_map_count"):
        pooling.check_address_space(settings)
    rt = Runtime(tmp_path / "cache", pooling=settings)
    try:
        assert rt.pooling is None and rt.pooling_unavailable is not None and "max_map_count" in rt.pooling_unavailable
    finally:
        rt.close()
