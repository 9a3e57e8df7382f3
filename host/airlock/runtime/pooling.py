"""The pooling instance allocator, switched on through wasmtime's C API.

wasmtime-py's ``Config`` does not expose the pooling allocator, but the bundled ``libwasmtime`` exports
``wasmtime_pooling_allocation_config_new/_delete/*_set`` and ``wasmtime_pooling_allocation_strategy_set``
(``wasmtime.h``, ``wasmtime/config.h``). The pool pre-reserves slots for component instances, core instances,
linear memories and tables, so a fresh store per callback reuses a warm slot instead of mapping and unmapping
memory: about half the cost of instantiate + teardown (wasmtime-py-notes.md, last section).

What the pool limits (numbers below; every one is checked by wasmtime):
- at most ``slots`` component instances live at once (one per callback in flight); the next instantiation
  fails with "maximum concurrent limit of N for component instances reached";
- per component: at most :data:`CORE_INSTANCES_PER_COMPONENT` core instances, :data:`MEMORIES_PER_COMPONENT`
  memories, :data:`TABLES_PER_COMPONENT` tables of at most :data:`TABLE_ELEMENTS` elements, instance state of
  at most :data:`INSTANCE_STATE_BYTES`. A component over any of these is refused when it is LOADED
  (``Component.deserialize_file`` / ``Component(...)`` raise), never halfway through a callback;
- every linear memory: at most ``max_memory_bytes`` (the host's ``memory_limit_bytes``); an initial memory
  above it is also refused at load.

A slot's first :data:`LINEAR_MEMORY_KEEP_RESIDENT` bytes stay resident between instances and are zeroed with
memset (no page faults on reuse); no guest ever sees another instance's data either way.

The allocator does not change compiled code: an artifact serialized by a pooling engine is byte-identical
to one from an on-demand engine (measured, and tested in tests/runtime/test_pooling.py), so the compile cache
key does not include these settings.

If the library lacks a symbol, or the pool's address-space reservation would not fit (``ulimit -v``, or more
than :data:`MAX_POOL_ADDRESS_SPACE`), :func:`configure` raises :class:`PoolingUnavailable` with the reason and
the runtime falls back to on-demand allocation (logged). The check has to come first: wasmtime's C API aborts
the whole process when an engine cannot reserve its pool (``wasm_engine_new_with_config`` unwraps the error).
"""

from __future__ import annotations

import ctypes
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wasmtime
from wasmtime import _ffi

if TYPE_CHECKING:
    from ..host_config import HostConfig

POOL_SLOTS_FLOOR = 32
"""Smallest pool, in concurrent component instances: the manager's 8 callback workers plus room for the CLI,
websocket drivers and tests running callbacks of their own."""

LANES_PER_CHANNEL = 2
"""Callbacks one channel can have in flight at once: its main lane and its poll lane (channels.manager)."""

CORE_INSTANCES_PER_COMPONENT = 32
"""A componentize-py (CPython) guest instantiates 14 core instances; a Rust or WAT guest 1-3; the http adapter
adds 3 (its module and wit-component's two shims)."""

MEMORIES_PER_COMPONENT = 3
"""Every guest toolchain Airlock builds gives one linear memory, the http adapter composed in front of it
(``runtime.adapter``) another; one spare. Each adds a memory slot (``MEMORY_SLOT_RESERVATION`` of address space,
not memory) per instance slot to the pool's reservation (:func:`reservation_bytes`); the memory mappings a pool
costs do not change (measured: 2,005 for 32 slots with 2 or 3 memories per component)."""

TABLES_PER_COMPONENT = 8
"""The CPython guest has 2 tables."""

TABLE_ELEMENTS = 20_000
"""Elements per table; the CPython guest needs between 5,000 and 10,000."""

INSTANCE_STATE_BYTES = 1024 * 1024
"""Per core instance and per component instance, wasmtime's own state (VMContext), not linear memory."""

LINEAR_MEMORY_KEEP_RESIDENT = 2 * 1024 * 1024
"""Bytes of each linear-memory slot kept mapped when its instance ends and zeroed with memset, instead of
wasmtime's default madvise(DONTNEED) + a page fault per touched page on the slot's next use. A Rust guest
touches ~8 pages per callback (stack, heap, arguments); measured on the benchmark guest: 8 minor faults per
fresh callback -> 0, about 5% of a fresh callback. Costs at most this much resident memory per pool slot
that has been used (2 MiB x slots).

The memset covers only the slot's accessible memory (wasmtime zeroes min(keep-resident, memory size)), so its
cost is already proportional to the guest: Rust guests built by scripts/build-rust-guest.sh have a 128 KiB
stack and 3 pages of memory (teardown ~15 us on the benchmark guest, 0 faults per callback), while a component
linked elsewhere with rust-lld's 1 MiB stack has 17 pages (~29 us, also 0 faults). Lowering this constant
would not make small guests cheaper; it would only bring page faults back for bigger ones."""

TABLE_KEEP_RESIDENT = 64 * 1024
"""The same for table slots (bytes)."""

_SYMBOLS: dict[str, tuple[Any, list[Any]]] = {
    "wasmtime_pooling_allocation_config_new": (ctypes.c_void_p, []),
    "wasmtime_pooling_allocation_config_delete": (None, [ctypes.c_void_p]),
    "wasmtime_pooling_allocation_strategy_set": (None, [ctypes.c_void_p, ctypes.c_void_p]),
    "wasmtime_pooling_allocation_config_total_component_instances_set": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_total_core_instances_set": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_total_memories_set": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_total_tables_set": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_max_core_instances_per_component_set": (
        None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_max_memories_per_component_set": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_max_tables_per_component_set": (None, [ctypes.c_void_p, ctypes.c_uint32]),
    "wasmtime_pooling_allocation_config_table_elements_set": (None, [ctypes.c_void_p, ctypes.c_size_t]),
    "wasmtime_pooling_allocation_config_max_memory_size_set": (None, [ctypes.c_void_p, ctypes.c_size_t]),
    "wasmtime_pooling_allocation_config_max_core_instance_size_set": (None, [ctypes.c_void_p, ctypes.c_size_t]),
    "wasmtime_pooling_allocation_config_max_component_instance_size_set": (
        None, [ctypes.c_void_p, ctypes.c_size_t]),
    "wasmtime_pooling_allocation_config_linear_memory_keep_resident_set": (None, [ctypes.c_void_p, ctypes.c_size_t]),
    "wasmtime_pooling_allocation_config_table_keep_resident_set": (None, [ctypes.c_void_p, ctypes.c_size_t]),
}
"""C functions used -> (return type, argument types), from wasmtime/config.h. Declared here rather than taken
from wasmtime-py's generated bindings so that a wasmtime-py without them still gets a clean fallback."""

_U32_MAX = 2**32 - 1

MEMORY_SLOT_RESERVATION = 4 * 1024**3 + 32 * 1024**2
"""Address space wasmtime reserves per linear-memory slot on 64-bit hosts with its default settings (which
Airlock keeps: they let compiled code skip bounds checks): a 4 GiB reservation plus a 32 MiB guard."""

MAX_POOL_ADDRESS_SPACE = 64 * 1024**4
"""Largest pool reservation Airlock asks for: half of x86-64's 128 TiB user address space."""


class PoolingUnavailable(Exception):
    """The pooling allocator cannot be used; the message says why (one line)."""


@dataclass(frozen=True)
class PoolingSettings:
    """How big the pool is.

    Attributes:
        slots: concurrent component instances (callbacks in flight), 1..2**32-1 / CORE_INSTANCES_PER_COMPONENT.
        max_memory_bytes: largest linear memory, in bytes (> 0; the host's per-instance memory limit).
    """

    slots: int
    max_memory_bytes: int

    def __post_init__(self) -> None:
        if not 1 <= self.slots <= _U32_MAX // CORE_INSTANCES_PER_COMPONENT:
            raise ValueError(f"pool slots must be 1..{_U32_MAX // CORE_INSTANCES_PER_COMPONENT}, got {self.slots}")
        if self.max_memory_bytes <= 0:
            raise ValueError(f"pool max_memory_bytes must be > 0, got {self.max_memory_bytes}")


def slots_for(channels: int, *, lanes: int = LANES_PER_CHANNEL, floor: int = POOL_SLOTS_FLOOR) -> int:
    """Pool slots for ``channels`` installed channels: channels x lanes, at least ``floor``."""
    return max(floor, channels * lanes)


def count_installed(channels_dir: Path) -> int:
    """Installed channels in ``channels_dir``: ``<name>.capabilities.json`` files with a ``<name>.wasm``."""
    if not channels_dir.is_dir():
        return 0
    suffix = ".capabilities.json"
    return sum(
        1 for caps in channels_dir.glob(f"*{suffix}")
        if (channels_dir / f"{caps.name[: -len(suffix)]}.wasm").is_file()
    )


def settings_for(
    *, enabled: bool, slots: int | None, channels_dir: Path, max_memory_bytes: int
) -> PoolingSettings | None:
    """The pool a host should run with: ``None`` when disabled; ``slots`` if given, otherwise sized to the
    channels installed in ``channels_dir`` (:func:`slots_for`)."""
    if not enabled:
        return None
    return PoolingSettings(slots=slots if slots is not None else slots_for(count_installed(channels_dir)),
                           max_memory_bytes=max_memory_bytes)


def reservation_bytes(settings: PoolingSettings) -> int:
    """Virtual address space the pool reserves (not memory it uses: slots are committed as they are touched)."""
    memory_slot = max(MEMORY_SLOT_RESERVATION, settings.max_memory_bytes + 32 * 1024**2)
    return (
        settings.slots * MEMORIES_PER_COMPONENT * memory_slot
        + settings.slots * TABLES_PER_COMPONENT * TABLE_ELEMENTS * ctypes.sizeof(ctypes.c_void_p)
        + settings.slots * (CORE_INSTANCES_PER_COMPONENT + 1) * INSTANCE_STATE_BYTES
    )


def for_host(config: HostConfig) -> PoolingSettings | None:
    """The pool for a host with ``config`` (``pooling``, ``pool_slots``, ``channels_dir``,
    ``memory_limit_bytes``)."""
    return settings_for(enabled=config.pooling, slots=config.pool_slots, channels_dir=config.channels_dir,
                        max_memory_bytes=config.memory_limit_bytes)


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


MAPS_PER_SLOT = 80
"""Memory mappings a pool slot costs (measured: a 32-slot pool adds ~2,000 to /proc/self/maps: guard pages split
each stack, memory and table region); with a margin."""
MAPS_MARGIN = 4096
"""Mappings left free for everything else (Python, libraries, sockets) when a pool is created."""


def _maps_in_use() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _max_map_count() -> int | None:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def check_address_space(settings: PoolingSettings) -> None:
    """Raise :class:`PoolingUnavailable` if the pool's reservation would not fit in this process: its address
    space (the cap, ``ulimit -v``) or its memory mappings (``vm.max_map_count``: wasmtime aborts the process when
    it cannot map a pool, so running out must be found before)."""
    need = reservation_bytes(settings)
    gib = 1024**3
    if need > MAX_POOL_ADDRESS_SPACE:
        raise PoolingUnavailable(
            f"{settings.slots} slots need {need // gib} GiB of address space, over the "
            f"{MAX_POOL_ADDRESS_SPACE // gib} GiB cap"
        )
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and _mapped_bytes() + need > soft:
        raise PoolingUnavailable(
            f"{settings.slots} slots need {need // gib} GiB of address space; the address-space limit "
            f"(ulimit -v) is {soft // gib} GiB"
        )
    limit = _max_map_count()
    if limit is not None and _maps_in_use() + settings.slots * MAPS_PER_SLOT + MAPS_MARGIN > limit:
        raise PoolingUnavailable(
            f"{settings.slots} slots need about {settings.slots * MAPS_PER_SLOT} memory mappings; "
            f"{_maps_in_use()} of vm.max_map_count={limit} are in use"
        )


def refusal(message: str) -> str | None:
    """If a wasmtime load error says the component does not fit the pool, a one-line reason; else None."""
    lines = [line.strip() for line in message.splitlines() if "pooling allocator" in line]
    if not lines:
        return None
    return f"does not fit the instance pool (host limits): {lines[-1]}"


def _function(name: str) -> Callable[..., Any]:
    # ``dll[name]`` makes a new function object, so the argtypes set here never change the ones
    # wasmtime-py's own bindings installed on ``dll.<name>``.
    try:
        fn = _ffi.dll[name]
    except AttributeError:
        raise PoolingUnavailable(f"libwasmtime lacks {name}") from None
    restype, argtypes = _SYMBOLS[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def check_symbols() -> None:
    """Raise :class:`PoolingUnavailable` naming the first C function the bundled library lacks."""
    for name in _SYMBOLS:
        _function(name)


def configure(config: wasmtime.Config, settings: PoolingSettings) -> None:
    """Switch ``config`` to the pooling allocator sized by ``settings``.

    Raises:
        PoolingUnavailable: the bundled libwasmtime lacks one of the C functions, or the pool would not fit
            in the address space (:func:`check_address_space`); ``config`` is unchanged.
    """
    check_symbols()
    check_address_space(settings)
    c = {name.removeprefix("wasmtime_pooling_allocation_"): _function(name) for name in _SYMBOLS}
    pool = c["config_new"]()
    if not pool:
        raise PoolingUnavailable("wasmtime_pooling_allocation_config_new returned NULL")
    try:
        slots = settings.slots
        c["config_total_component_instances_set"](pool, slots)
        c["config_total_core_instances_set"](pool, slots * CORE_INSTANCES_PER_COMPONENT)
        c["config_total_memories_set"](pool, slots * MEMORIES_PER_COMPONENT)
        c["config_total_tables_set"](pool, slots * TABLES_PER_COMPONENT)
        c["config_max_core_instances_per_component_set"](pool, CORE_INSTANCES_PER_COMPONENT)
        c["config_max_memories_per_component_set"](pool, MEMORIES_PER_COMPONENT)
        c["config_max_tables_per_component_set"](pool, TABLES_PER_COMPONENT)
        c["config_table_elements_set"](pool, TABLE_ELEMENTS)
        c["config_max_memory_size_set"](pool, settings.max_memory_bytes)
        c["config_max_core_instance_size_set"](pool, INSTANCE_STATE_BYTES)
        c["config_max_component_instance_size_set"](pool, INSTANCE_STATE_BYTES)
        c["config_linear_memory_keep_resident_set"](pool, min(LINEAR_MEMORY_KEEP_RESIDENT, settings.max_memory_bytes))
        c["config_table_keep_resident_set"](pool, TABLE_KEEP_RESIDENT)
        # The strategy copies the pool settings into the Config; the pool object is ours to free.
        c["strategy_set"](ctypes.cast(config.ptr(), ctypes.c_void_p), pool)
    finally:
        c["config_delete"](pool)
