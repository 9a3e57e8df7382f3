"""Channels are isolated from each other, and a failed callback applies nothing.

Through ``AirlockHost`` with real WAT components: a channel that spins forever or allocates without bound
costs its own webhook a generic 500 (within its callback timeout) while another channel keeps answering;
a callback that emitted or wrote before failing applies neither. Then the workspace rules underneath:
optimistic commits, durable paths, path and size validation.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import watguest
from conftest import InstallFn, minimal_caps

from airlock.capabilities import workspace as ws
from airlock.capabilities.workspace import Workspace, WorkspaceConflict, WorkspaceTxn, validate_path
from airlock.channels.callstate import CallState
from airlock.errors import GuestTrap
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.messages.sqlite import SqliteMessageLog
from airlock.runtime.linker import GuestFault
from airlock.runtime.values import EmittedMessage

GENERIC_500 = {"error": "internal error"}


def _variant(wat_dir: Path, name: str, old: str, new: str) -> Path:
    """The normal WAT guest ``name`` with one piece of its source replaced, as a component."""
    out = wat_dir / f"variant-{name}.wasm"
    if out.exists():
        return out
    src = watguest.wat_source(name)
    assert src.count(old) == 1, f"watguest changed shape: {old!r}"
    wat, core = wat_dir / f"variant-{name}.wat", wat_dir / f"variant-{name}.core.wasm"
    wat.write_text(src.replace(old, new))
    tool = watguest._wasm_tools()
    subprocess.run([tool, "component", "embed", str(watguest.WIT_DIR), "--world", watguest.WORLDS["airlock"][2],
                    str(wat), "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


SPIN = "(loop $spin (br $spin))"
RET = watguest.STATIC["import_ret"]


def emit_then_spin_guest(wat_dir: Path, name: str) -> Path:
    """on-http-request emits its message, then spins forever."""
    return _variant(wat_dir, name, "(i32.store16 (i32.const 2048) (i32.const 200))",
                    f"{SPIN}\n    (i32.store16 (i32.const 2048) (i32.const 200))")


def write_then_spin_guest(wat_dir: Path, name: str) -> Path:
    """on-respond writes last-reply to the workspace, then spins forever."""
    return _variant(wat_dir, name, f"(i32.const {RET}))\n    (i32.const {RET}))",
                    f"(i32.const {RET}))\n    {SPIN}\n    (i32.const {RET}))")


@asynccontextmanager
async def running_host(home: Path) -> AsyncIterator[tuple[AirlockHost, aiohttp.ClientSession]]:
    async with AirlockHost(HostConfig.build(home=home, listen_port=0)) as host, aiohttp.ClientSession() as http:
        yield host, http


async def post(http: aiohttp.ClientSession, host: AirlockHost, channel: str, body: bytes) -> tuple[int, Any, float]:
    start = time.perf_counter()
    async with http.post(f"{host.base_url}/webhook/{channel}", data=body) as resp:
        payload = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, payload, time.perf_counter() - start


async def _good_keeps_answering(host: AirlockHost, http: aiohttp.ClientSession, bad: str, bad_limit_s: float) -> None:
    """Start a webhook to ``bad``; while it runs, ``good`` answers quickly and its messages arrive."""
    bad_call = asyncio.create_task(post(http, host, bad, b"trouble"))
    await asyncio.sleep(0.15)
    for i in range(5):
        status, body, elapsed = await post(http, host, "good", f"hello {i}".encode())
        assert (status, body) == (200, b"ok")
        assert elapsed < 0.5, elapsed
        delivery = await asyncio.wait_for(host.next_message(), 2)
        assert (delivery.channel, delivery.content, delivery.user_id) == ("good", f"hello {i}", "u1")
    status, body, elapsed = await bad_call
    assert status == 500
    assert body == GENERIC_500  # no trap kind, no backtrace, no channel detail
    assert elapsed < bad_limit_s, elapsed
    assert host.bus.qsize() == 0  # the failed callback delivered nothing

    async with http.get(f"{host.base_url}/health") as resp:
        health = await resp.json()
    assert set(health["channels"]) == {"good", bad}
    assert health["channels"]["good"]["active"] and health["channels"][bad]["active"]
    assert health["channels"]["good"]["failures"] == 0
    assert health["channels"][bad]["failures"] == 1
    # The bad channel still serves: a new callback gets a new sandbox (and fails the same way).
    assert (await post(http, host, bad, b"again"))[:2] == (500, GENERIC_500)


async def test_spinning_channel_does_not_block_another(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir, "good"), minimal_caps("good"))
    install_channel(watguest.build_component(wat_dir, "spinner", mode="loop"),
                    minimal_caps("spinner", callback_timeout_secs=1))
    async with running_host(airlock_home) as (host, http):
        await _good_keeps_answering(host, http, "spinner", bad_limit_s=1.6)


async def test_memory_bomb_channel_is_contained(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir, "good"), minimal_caps("good"))
    install_channel(watguest.build_component(wat_dir, "bomb", mode="grow"), minimal_caps("bomb"))
    async with running_host(airlock_home) as (host, http):
        await _good_keeps_answering(host, http, "bomb", bad_limit_s=1.0)


async def test_failed_callback_applies_nothing(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    durable = {"durable_workspace_paths": ["last-reply"]}
    install_channel(watguest.build_component(wat_dir, "good"), minimal_caps("good", **durable))
    install_channel(write_then_spin_guest(wat_dir, "stuck"), minimal_caps("stuck", callback_timeout_secs=1, **durable))
    install_channel(emit_then_spin_guest(wat_dir, "leaky"), minimal_caps("leaky", callback_timeout_secs=1))
    async with running_host(airlock_home) as (host, http):
        # A webhook that emitted and then timed out: 500, and the emitted message is dropped.
        leaky = asyncio.create_task(post(http, host, "leaky", b"must not arrive"))
        deliveries = {}
        for name in ("good", "stuck"):
            assert (await post(http, host, name, f"to {name}".encode()))[:2] == (200, b"ok")
            delivery = await asyncio.wait_for(host.next_message(), 2)
            deliveries[delivery.channel] = delivery
        assert set(deliveries) == {"good", "stuck"}

        # on-respond that wrote and then timed out: the write is dropped, in memory and on disk.
        good_out, stuck_out = await asyncio.gather(
            host.respond(deliveries["good"], "reply to good"), host.respond(deliveries["stuck"], "reply to stuck"))
        assert good_out.ok
        assert isinstance(stuck_out.error, GuestTrap) and stuck_out.error.kind == "timeout"
        assert stuck_out.state is not None and stuck_out.state.workspace.writes == {"last-reply": "reply to stuck"}
        assert (await leaky)[:2] == (500, GENERIC_500)

        assert host.manager.slots["good"].channel.workspace.get("last-reply") == "reply to good"
        assert host.manager.slots["stuck"].channel.workspace.get("last-reply") is None
        assert host.log.load_workspace("good") == {"last-reply": "reply to good"}
        assert host.log.load_workspace("stuck") == {}
        assert host.bus.qsize() == 0  # nothing from leaky
    # The committed durable value is restored by the next host.
    async with running_host(airlock_home) as (host, _):
        assert host.manager.slots["good"].channel.workspace.get("last-reply") == "reply to good"
        assert host.manager.slots["stuck"].channel.workspace.get("last-reply") is None


async def test_host_bug_mid_callback_drops_what_was_buffered(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host function that fails after the callback buffered a workspace write: the callback fails as a
    host bug (generic 500), and neither the write nor a message is applied."""

    def broken_emit(self: CallState, msg: EmittedMessage) -> None:
        self.workspace.write("state/seen", msg.content)
        self.emits.add(msg)
        raise RuntimeError("emit backend exploded")

    monkeypatch.setattr(CallState, "emit_message", broken_emit)
    install_channel(watguest.build_component(wat_dir, "good"), minimal_caps("good"))
    async with running_host(airlock_home) as (host, http):
        assert (await post(http, host, "good", b"hello"))[:2] == (500, GENERIC_500)
        slot = host.manager.slots["good"]
        assert slot.channel.workspace.get("state/seen") is None
        assert host.bus.qsize() == 0
        assert slot.failures == 1 and slot.active


# ---- workspace commit rules -------------------------------------------------------------------------


def test_read_then_write_conflicts_with_a_concurrent_commit() -> None:
    space = Workspace("c")
    seed = WorkspaceTxn.begin(space)
    seed.write("counter", "0")
    space.commit(seed)

    a, b = WorkspaceTxn.begin(space), WorkspaceTxn.begin(space)
    assert a.read("counter") == "0" and b.read("counter") == "0"
    a.write("counter", "1")
    b.write("counter", "1")
    space.commit(a)
    with pytest.raises(WorkspaceConflict, match="counter"):
        space.commit(b)  # would lose a's increment
    assert space.get("counter") == "1"
    retry = WorkspaceTxn.begin(space)
    retry.write("counter", str(int(retry.read("counter") or "0") + 1))
    space.commit(retry)
    assert space.get("counter") == "2"


def test_read_of_an_absent_key_conflicts_with_its_creation() -> None:
    space = Workspace("c")
    a, b = WorkspaceTxn.begin(space), WorkspaceTxn.begin(space)
    assert a.read("lock") is None
    b.write("lock", "b")
    space.commit(b)
    a.write("lock", "a")
    with pytest.raises(WorkspaceConflict):
        space.commit(a)
    assert space.get("lock") == "b"


def test_blind_writes_never_conflict_and_both_land() -> None:
    space = Workspace("c")
    a, b = WorkspaceTxn.begin(space), WorkspaceTxn.begin(space)
    a.write("x", "from a")
    b.write("y", "from b")
    b.write("x", "from b")
    space.commit(a)
    space.commit(b)
    assert (space.get("x"), space.get("y")) == ("from b", "from b")
    c = WorkspaceTxn.begin(space)
    assert c.read("other") is None  # a read of a key it does not write never blocks the commit
    c.write("x", "from c")
    d = WorkspaceTxn.begin(space)
    d.write("other", "d")
    space.commit(d)
    space.commit(c)
    assert space.get("x") == "from c"


def test_txn_reads_its_own_writes_and_a_stable_snapshot() -> None:
    space = Workspace("c")
    t = WorkspaceTxn.begin(space)
    t.write("k", "mine")
    assert t.read("k") == "mine"
    assert space.get("k") is None  # buffered until commit
    other = WorkspaceTxn.begin(space)
    space.commit(t)
    assert other.read("k") is None  # the snapshot taken before the commit


def test_durable_paths_persist_and_restore(tmp_path: Path) -> None:
    db = tmp_path / "workspace.db"
    with closing(SqliteMessageLog(db)) as store:
        space = Workspace("chan", durable_paths=["state/", "offset"], backend=store)
        t = WorkspaceTxn.begin(space)
        for path in ("state/a", "state/deep/b", "offset", "scratch", "offset2", "statex"):
            t.write(path, f"v-{path}")
        space.commit(t)
        other = Workspace("other-chan", durable_paths=["state/"], backend=store)
        t2 = WorkspaceTxn.begin(other)
        t2.write("state/a", "someone else's")
        other.commit(t2)
    with closing(SqliteMessageLog(db)) as store:
        restored = Workspace("chan", durable_paths=["state/", "offset"], backend=store)
        assert restored.snapshot()[0] == {
            "state/a": "v-state/a", "state/deep/b": "v-state/deep/b", "offset": "v-offset"}
        # Restored keys take part in conflict detection like any other.
        a, b = WorkspaceTxn.begin(restored), WorkspaceTxn.begin(restored)
        assert a.read("offset") == "v-offset"
        b.write("offset", "new")
        restored.commit(b)
        a.write("offset", "stale")
        with pytest.raises(WorkspaceConflict):
            restored.commit(a)
        assert store.load_workspace("chan")["offset"] == "new"


def test_a_conflicting_commit_writes_nothing_durable(tmp_path: Path) -> None:
    with closing(SqliteMessageLog(tmp_path / "w.db")) as store:
        space = Workspace("c", durable_paths=["state/"], backend=store)
        a, b = WorkspaceTxn.begin(space), WorkspaceTxn.begin(space)
        a.read("state/x")
        a.write("state/x", "a")
        a.write("state/y", "a")
        b.write("state/x", "b")
        space.commit(b)
        with pytest.raises(WorkspaceConflict):
            space.commit(a)
        assert store.load_workspace("c") == {"state/x": "b"}
        assert space.get("state/y") is None


# ---- path and size validation -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "", "/etc/passwd", "/", "../escape", "a/../../b", "a/..", "./a", "a/./b", "nul\x00byte", "back\\slash",
    "a//b", "a/", "/a", "C:/windows", "c:relative", "x" * 257, "é" * 129,
])
def test_bad_workspace_paths_are_refused(path: str) -> None:
    with pytest.raises(GuestFault):
        validate_path(path)
    t = WorkspaceTxn.begin(Workspace("c"))
    with pytest.raises(GuestFault):
        t.write(path, "v")
    with pytest.raises(GuestFault):
        t.read(path)
    assert t.writes == {} and t.reads == {}


@pytest.mark.parametrize("path", ["a", "state/offset", "a.b/c-d_e", "x" * 256, "é" * 128, "..a/b..", "key:with:colons"])
def test_good_workspace_paths_are_accepted(path: str) -> None:
    assert validate_path(path) == path


def test_value_size_limit() -> None:
    t = WorkspaceTxn.begin(Workspace("c"))
    t.write("ok", "x" * ws.MAX_VALUE_BYTES)
    with pytest.raises(GuestFault, match="larger than"):
        t.write("big", "x" * (ws.MAX_VALUE_BYTES + 1))
    with pytest.raises(GuestFault):
        t.write("big", "é" * (ws.MAX_VALUE_BYTES // 2 + 1))  # counted in UTF-8 bytes, not characters
    assert set(t.writes) == {"ok"}


def test_writes_per_callback_limit() -> None:
    t = WorkspaceTxn.begin(Workspace("c"))
    for i in range(ws.MAX_WRITES_PER_CALLBACK):
        t.write(f"k{i}", "v")
    t.write("k0", "rewrite")  # rewriting a key already written is not a new write
    with pytest.raises(GuestFault, match="writes"):
        t.write("one-too-many", "v")
