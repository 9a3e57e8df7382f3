"""``Operations.sync`` / ``sync_all``: how the other workers of ``serve --workers N`` follow what worker 0 wrote in
the home (``workers.fanout``). A real host with WAT channels and the installed-channel store on disk: the home is
changed the way worker 0 changes it (``ChannelStore``), then sync must make the running channel match it, writing
nothing."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
import watguest
from conftest import minimal_caps

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore
from airlock.channels.operations import LifecycleError
from airlock.host import AirlockHost
from airlock.host_config import HostConfig


async def status(host: AirlockHost, name: str, method: str = "POST") -> int:
    async with aiohttp.ClientSession() as s, s.request(method, f"{host.base_url}/webhook/{name}", data=b"x") as r:
        return r.status


def caps(name: str, version: str = "0.1.0") -> bytes:
    return json.dumps(minimal_caps(name) | {"version": version}).encode()


def snapshot(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted((home / "channels").rglob("*")) if p.is_file()}


async def test_sync_follows_the_home_and_writes_nothing(airlock_home: Path, wat_dir: Path) -> None:
    store = ChannelStore(airlock_home / "channels")
    v1 = stage(store, watguest.build_component(wat_dir, "alpha").read_bytes(), caps("alpha"), source="t").version
    config = HostConfig.build(home=airlock_home, listen_port=0, agent_api_enabled=False)
    async with AirlockHost(config) as host:
        ops = host.operations
        assert await status(host, "alpha") == 200

        store.set_disabled("alpha", True)
        before = snapshot(airlock_home)
        doc = await ops.sync("alpha")
        assert doc["disabled"] and await status(host, "alpha") == 404
        assert snapshot(airlock_home) == before
        store.set_disabled("alpha", False)
        assert (await ops.sync("alpha"))["active"] and await status(host, "alpha") == 200

        v2_wasm = watguest.build_component(wat_dir, "alpha", methods=("POST", "PUT")).read_bytes()
        v2 = stage(store, v2_wasm, caps("alpha", "0.2.0"), source="t", upgrade=True).version
        store.activate("alpha", v2)
        assert await status(host, "alpha", "PUT") == 405  # the home says v2, this host still runs v1
        assert (await ops.sync("alpha"))["version"] == v2 and await status(host, "alpha", "PUT") == 200
        store.activate("alpha", v1)
        store.set_disabled("alpha", True)  # a rollback and a disable at once: both followed
        doc = await ops.sync("alpha")
        assert (doc["version"], doc["disabled"]) == (v1, True) and await status(host, "alpha") == 404
        store.set_disabled("alpha", False)

        stage(store, watguest.build_component(wat_dir, "beta").read_bytes(), caps("beta"), source="t")
        assert await status(host, "beta") == 404
        out = await ops.sync_all()  # a worker that started while the home changed
        assert {d["name"] for d in out["channels"]} == {"alpha", "beta"}
        assert await status(host, "beta") == 200 and await status(host, "alpha") == 200

        slot = host.manager.slots["beta"]
        assert (await ops.sync("beta", restart=True))["active"]  # new operator settings: a fresh start
        assert host.manager.slots["beta"] is not slot

        store.remove("beta")
        assert await ops.sync("beta") == {"name": "beta", "removed": True}
        assert "beta" not in host.manager.slots and await status(host, "beta") == 404


async def test_a_component_that_does_not_load_here_is_one_line(airlock_home: Path, wat_dir: Path) -> None:
    store = ChannelStore(airlock_home / "channels")
    config = HostConfig.build(home=airlock_home, listen_port=0, agent_api_enabled=False)
    async with AirlockHost(config) as host:
        inst = stage(store, watguest.build_component(wat_dir, "gamma").read_bytes(), caps("gamma"), source="t")
        store.component("gamma", inst.version).write_bytes(b"\0asm not a component")
        with pytest.raises(LifecycleError) as err:
            await host.operations.sync("gamma")
        assert err.value.status == 400 and "\n" not in str(err.value) and "Traceback" not in str(err.value)
        assert "gamma" not in host.manager.slots
