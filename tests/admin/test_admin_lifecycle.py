"""The admin API's channel lifecycle routes (upgrade, rollback, remove) and secrets that start and stop channels
at once: the same operations as the CLI's control socket (``channels.operations``), on a real host with WAT
channels, real webhooks and the installed-channel store on disk."""

from __future__ import annotations

import json
from pathlib import Path

import watguest
from admin_helpers import HOOK_SECRET_NAME, admin_host, install_wat, post_webhook
from conftest import InstallFn, minimal_caps

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore


async def test_upgrade_rollback_and_remove_through_the_admin_api(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    store = ChannelStore(airlock_home / "channels")
    v2_wasm = watguest.build_component(wat_dir, "alpha", methods=("POST", "PUT")).read_bytes()
    async with admin_host(airlock_home) as api:
        first = (await api.get("/api/channels/alpha"))[1]["version"]
        v2 = stage(store, v2_wasm, json.dumps(minimal_caps("alpha") | {"version": "0.2.0"}).encode(), source="v2",
                   upgrade=True).version
        status, doc = await api.post("/api/channels/alpha/upgrade", {"version": v2})
        assert status == 200 and (doc["version"], doc["active"], doc["previous"]) == (v2, True, first), doc
        assert await post_webhook(api.host, "alpha") == 200
        assert store.get("alpha").active == v2

        broken = minimal_caps("alpha") | {"version": "0.3.0",
                                          "setup": {"required_secrets": [{"name": "alpha_token"}]}}
        v3 = stage(store, v2_wasm, json.dumps(broken).encode(), source="v3", upgrade=True).version
        status, doc = await api.post("/api/channels/alpha/upgrade", {"version": v3})
        assert status == 409 and "did not start (missing secrets alpha_token" in doc["error"], doc
        assert (await api.get("/api/channels/alpha"))[1]["version"] == v2 and store.get("alpha").active == v2
        assert await post_webhook(api.host, "alpha") == 200

        status, doc = await api.post("/api/channels/alpha/rollback")
        assert status == 200 and doc["version"] == first and store.get("alpha").active == first
        for body, code in (({}, 400), ({"version": "9.9"}, 404), ({"version": 3}, 400)):
            before = (airlock_home / "channels" / "alpha" / "instance.json").read_bytes()
            assert (await api.post("/api/channels/alpha/upgrade", body))[0] == code, body
            assert (airlock_home / "channels" / "alpha" / "instance.json").read_bytes() == before
        assert (await api.post("/api/channels/alpha/explode"))[0] == 404

        status, doc = await api.post("/api/channels/alpha/remove")
        assert status == 200 and doc == {"name": "alpha", "removed": True}
        assert await post_webhook(api.host, "alpha") == 404
        assert (await api.get("/api/channels/alpha"))[0] == 404
        assert not (airlock_home / "channels" / "alpha").exists()


async def test_storing_a_secret_starts_the_channel_and_removing_it_stops_it(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "locked", secret=True)
    async with admin_host(airlock_home) as api:
        assert not (await api.get("/api/channels/locked"))[1]["active"]
        assert (await api.call("PUT", f"/api/secrets/{HOOK_SECRET_NAME}", {"value": "s3cret"}))[0] == 200
        doc = (await api.get("/api/channels/locked"))[1]
        assert doc["active"] and doc["status"] == "active", doc
        assert await post_webhook(api.host, "locked", headers={"X-Alpha-Secret": "s3cret"}) == 200
        assert (await api.call("DELETE", f"/api/secrets/{HOOK_SECRET_NAME}"))[0] == 200
        doc = (await api.get("/api/channels/locked"))[1]
        assert not doc["active"] and doc["status"].startswith("inactive: missing secrets"), doc
        assert await post_webhook(api.host, "locked", headers={"X-Alpha-Secret": "s3cret"}) == 404
