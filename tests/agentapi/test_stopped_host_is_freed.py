"""A stopped host whose agent API and admin listener served requests can be freed: nothing keeps its wasmtime
engine and instance pool (about 2,400 memory mappings each) alive. aiohttp memoizes middleware chains per
application in a module-level cache; ``inbound.listener.forget_stopped_apps`` drops that memo at stop."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import aiohttp
from apihelp import api, auth, started_host

from airlock.host import AirlockHost


async def _serve_and_stop(home: Path) -> weakref.ref[AirlockHost]:
    async with started_host(home, admin=True, admin_port=0, agent_api_port=0) as host:
        token = host.agents.add("bot", None)[0]
        async with aiohttp.ClientSession() as s:
            r = await s.get(f"{api(host)}/v1/messages", params={"wait": "0"}, headers=auth(token))
            assert r.status == 200
            assert host.admin_url is not None
            r = await s.get(f"{host.admin_url}/api/channels")  # refused without the token: still a request
            assert r.status == 401
        return weakref.ref(host)


async def test_a_stopped_host_with_both_listeners_is_freed(tmp_path: Path) -> None:
    ref = await _serve_and_stop(tmp_path / "home")
    gc.collect()
    assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
