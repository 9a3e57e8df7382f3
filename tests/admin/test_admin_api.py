"""The admin JSON API through the real admin listener of a real host running WAT channels: auth, channels,
disable / enable (the webhook 404s while the others answer), secrets (never read back), pairing, recent calls
(redacted)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from admin_helpers import HOOK_HEADER, HOOK_SECRET_NAME, admin_host, install_wat, post_webhook
from conftest import InstallFn

from airlock.admin.api import MAX_BODY_BYTES
from airlock.observability.recent import RECENT_CALLS
from airlock.packages import Provenance, provenance_path, write_provenance
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e


async def test_every_route_needs_the_token_and_the_webhook_port_serves_none(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api:
        host = api.host
        assert host.admin is not None and host.admin.port != host.port
        for path in ("/api/channels", "/api/secrets", "/api/pairing", "/api/channels/alpha/calls", "/metrics"):
            assert (await api.get(path, token=""))[0] == 401, path
            assert (await api.get(path, token="alk_wrong"))[0] == 401, path
            assert (await api.get(path))[0] == 200, path
        assert (await api.post("/api/channels/alpha/disable", token=""))[0] == 401
        assert host.manager.slots["alpha"].active
        async with aiohttp.ClientSession() as s:
            for path in ("/api/channels", "/metrics", "/channels", "/login"):
                async with s.get(f"{host.base_url}{path}") as r:
                    assert r.status == 404, path
            async with s.get(f"{api.base}/channels", allow_redirects=False) as r:  # console: to the login page
                assert r.status == 303 and r.headers["Location"] == "/login"
            async with s.get(f"{api.base}/api/channels", headers={"Authorization": f"Bearer {api.token}"}) as r:
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"


async def test_channels_document_reports_status_counters_and_last_errors(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    install_wat(install_channel, wat_dir, "boom", mode="grow")
    install_wat(install_channel, wat_dir, "locked", secret=True)  # its secret is not stored: inactive
    signed = Provenance(signed=True, publisher="acme", key_id="0123456789abcdef", version="0.1.0",
                        world="w", digests={"boom.wasm": "00" * 32}, source="https://example.com/boom.airlock")
    write_provenance(provenance_path(airlock_home / "channels", "boom"), signed)
    async with admin_host(airlock_home) as api:
        assert [await post_webhook(api.host, "alpha") for _ in range(3)] == [200, 200, 200]
        assert await post_webhook(api.host, "boom") == 500
        status, doc = await api.get("/api/channels")
        assert status == 200
        by_name = {c["name"]: c for c in doc["channels"]}
        assert list(by_name) == ["alpha", "boom", "locked"]
        alpha, boom, locked = by_name["alpha"], by_name["boom"], by_name["locked"]
        assert (alpha["active"], alpha["disabled"], alpha["status"]) == (True, False, "active")
        assert alpha["version"].startswith("0.1.0+") and alpha["versions"] == [alpha["version"]]
        assert alpha["world"] == api.host.manager.slots["alpha"].channel.loaded.world.name
        assert alpha["health"]["endpoints"] == ["/webhook/alpha"]
        assert alpha["counters"]["callbacks"] == {"ok": 4}  # on-start and three webhooks
        assert alpha["last_errors"] == []
        assert boom["counters"]["callbacks"]["panic"] == 1  # grows memory until refused, then aborts
        [err] = boom["last_errors"]
        assert (err["callback"], err["trap"]) == ("on-http-request", "panic")
        assert abs(err["at"] - time.time()) < 30 and len(err["trace_id"]) == 16
        assert not locked["active"] and locked["missing_secrets"] == [HOOK_SECRET_NAME]
        assert (await api.get("/api/channels/boom"))[1] == boom
        assert boom["provenance"] == {**signed.as_dict(), "recorded": True}  # what the install recorded
        assert alpha["provenance"] == {"signed": False, "publisher": "unsigned", "key_id": None, "recorded": False}
        assert (await api.get("/api/channels/nobody"))[0] == 404


async def test_disable_unroutes_only_that_channel_and_enable_brings_it_back(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha", poll_ms=5)
    install_wat(install_channel, wat_dir, "beta")
    async with admin_host(airlock_home, min_poll_interval_override_ms=20) as api:
        host = api.host
        assert await post_webhook(host, "alpha") == 200
        await asyncio.sleep(0.1)
        assert host.manager.slots["alpha"].polls > 0
        status, doc = await api.post("/api/channels/alpha/disable")
        assert status == 200 and doc["disabled"] and not doc["active"] and doc["status"] == "disabled by the operator"
        assert await post_webhook(host, "alpha") == 404
        assert await post_webhook(host, "beta") == 200
        polls = host.manager.slots["alpha"].polls
        await asyncio.sleep(0.2)
        assert host.manager.slots["alpha"].polls == polls  # the poller stopped
        assert (await api.post("/api/channels/alpha/disable"))[0] == 200  # idempotent
        status, doc = await api.post("/api/channels/alpha/enable")
        assert status == 200 and doc["active"] and not doc["disabled"] and doc["status"] == "active"
        assert await post_webhook(host, "alpha") == 200
        await asyncio.sleep(0.2)
        assert host.manager.slots["alpha"].polls > polls
        assert (await api.post("/api/channels/nobody/disable"))[0] == 404


async def test_disable_waits_for_the_callback_in_flight(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "slow", mode="loop", callback_timeout_secs=1)
    install_wat(install_channel, wat_dir, "beta")
    async with admin_host(airlock_home) as api:
        host = api.host
        running = asyncio.create_task(post_webhook(host, "slow"))
        await asyncio.sleep(0.3)  # the guest spins on a worker thread until its 1 s deadline
        queued = asyncio.create_task(post_webhook(host, "slow"))  # routed, waiting for the channel's lane
        await asyncio.sleep(0.1)
        started = time.monotonic()
        status, doc = await api.post("/api/channels/slow/disable")
        assert running.done() and await running == 500  # the callback in flight ended (timeout) first
        assert await queued == 404  # the one behind it never ran
        assert status == 200 and doc["disabled"] and time.monotonic() - started > 0.3
        assert doc["counters"]["callbacks"].get("timeout") == 1
        assert await post_webhook(host, "slow") == 404 and await post_webhook(host, "beta") == 200


async def test_secrets_listed_set_and_removed_but_never_read_back(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "locked", secret=True)
    value = "hunter2-value-that-must-not-leak"
    async with admin_host(airlock_home) as api:
        status, doc = await api.get("/api/secrets")
        assert status == 200
        assert {"name": HOOK_SECRET_NAME, "set": False, "used_by": ["locked"]} in doc["secrets"]
        assert (await api.call("PUT", f"/api/secrets/{HOOK_SECRET_NAME}", {"value": value})) == (
            200, {"name": HOOK_SECRET_NAME, "set": True})
        assert api.host.secrets.get(HOOK_SECRET_NAME) == value
        # The channel can now be started from the API, and its webhook is checked against the new secret.
        assert (await api.post("/api/channels/locked/enable"))[1]["active"] is True
        assert await post_webhook(api.host, "locked", headers={HOOK_HEADER: value}) == 200
        everything = [await api.get(p) for p in ("/api/secrets", "/api/channels", "/api/channels/locked/calls")]
        assert value not in json.dumps(everything)
        bad = [
            await api.call("PUT", "/api/secrets/Bad-Name", {"value": "x"}),
            await api.call("PUT", "/api/secrets/fine", {"value": ""}),
            await api.call("PUT", "/api/secrets/fine", {"nothing": 1}),
            await api.call("PUT", "/api/secrets/fine", [1, 2]),
            await api.call("DELETE", "/api/secrets/never_stored"),
        ]
        assert [s for s, _ in bad] == [400, 400, 400, 400, 404]
        assert all(set(body) == {"error"} for _, body in bad)
        assert "fine" not in SecretStore.open(airlock_home).names()
        async with api.session.put(f"{api.base}/api/secrets/fine", data=b"x" * (MAX_BODY_BYTES + 1),
                                   headers={"Authorization": f"Bearer {api.token}"}) as r:
            assert r.status == 413
        assert (await api.call("DELETE", f"/api/secrets/{HOOK_SECRET_NAME}")) == (
            200, {"name": HOOK_SECRET_NAME, "set": False})
        assert not api.host.secrets.exists(HOOK_SECRET_NAME)


async def test_pairing_list_approve_deny_revoke(airlock_home: Path, install_channel: InstallFn,
                                               wat_dir: Path) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    async with admin_host(airlock_home) as api:
        store = api.host.pairing
        code_a, _ = store.upsert_request("alpha", "user-a", json.dumps({"name": "Ada"}))
        code_b, _ = store.upsert_request("alpha", "user-b", "{}")
        status, doc = await api.get("/api/pairing")
        pending = doc["channels"]["alpha"]["pending"]
        assert status == 200 and [(p["code"], p["external_id"]) for p in pending] == [(code_a, "user-a"),
                                                                                      (code_b, "user-b")]
        assert pending[0]["meta"] == {"name": "Ada"} and 0 < pending[0]["expires_in_s"] <= 900
        assert (await api.post("/api/pairing/alpha/approve", {"code": code_a.lower()}))[1] == {
            "channel": "alpha", "external_id": "user-a", "owner_id": "user-a", "approved": True}
        assert (await api.post("/api/pairing/alpha/deny", {"code": code_b}))[1]["denied"] is True
        assert store.resolve_identity("alpha", "user-a") == "user-a" and store.pending("alpha") == []
        assert store.resolve_identity("alpha", "user-b") is None
        doc = (await api.get("/api/pairing"))[1]["channels"]["alpha"]
        assert doc["pending"] == [] and [p["external_id"] for p in doc["paired"]] == ["user-a"]
        refused = [await api.post("/api/pairing/alpha/approve", {"code": code_b}),
                   await api.post("/api/pairing/alpha/approve", {}),
                   await api.post("/api/pairing/nobody/approve", {"code": code_a}),
                   await api.post("/api/pairing/alpha/revoke", {"external_id": "stranger"}),
                   await api.post("/api/pairing/alpha/explode", {})]
        assert [s for s, _ in refused] == [404, 400, 404, 404, 404]
        assert (await api.post("/api/pairing/alpha/revoke", {"external_id": "user-a"}))[1]["revoked"] is True
        assert store.resolve_identity("alpha", "user-a") is None


async def test_recent_calls_are_invoke_documents_with_secrets_redacted(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_wat(install_channel, wat_dir, "alpha")
    install_wat(install_channel, wat_dir, "boom", mode="grow")
    secret = "sk-live-0123456789abcdef"
    SecretStore.open(airlock_home).set("some_api_key", secret)
    async with admin_host(airlock_home) as api:
        # Successes are recorded once someone watches the channel; failures always are.
        assert await post_webhook(api.host, "alpha") == 200
        assert await post_webhook(api.host, "boom") == 500
        status, doc = await api.get("/api/channels/alpha/calls")
        assert status == 200 and doc["recording"] is True and doc["calls"] == []
        assert abs(doc["successes_since"] - time.time()) < 30
        [failed] = (await api.get("/api/channels/boom/calls"))[1]["calls"]
        assert (failed["ok"], failed["outcome"], failed["error"]["class"]) == (False, "panic", "panic")
        # The WAT guest emits the body as a message: a secret the sender pasted lands in the trace.
        assert await post_webhook(api.host, "alpha", body=f"my key is {secret}".encode()) == 200
        [newest] = (await api.get("/api/channels/alpha/calls"))[1]["calls"]
        assert (newest["callback"], newest["ok"], newest["outcome"]) == ("on-http-request", True, "ok")
        assert [c["function"] for c in newest["host_calls"]] == ["log", "emit-message"]
        assert newest["emitted"][0]["content"] == "my key is [REDACTED:some_api_key]"
        assert newest["value"]["status"] == 200 and newest["fuel_used"] > 0 and len(newest["trace_id"]) == 16
        assert secret not in json.dumps(await api.get("/api/channels/alpha/calls"))
        for _ in range(RECENT_CALLS + 5):
            await post_webhook(api.host, "alpha")
        assert len((await api.get("/api/channels/alpha/calls"))[1]["calls"]) == RECENT_CALLS
        assert len((await api.get("/api/channels/alpha/calls?limit=3"))[1]["calls"]) == 3
        assert (await api.get("/api/channels/alpha/calls?limit=x"))[0] == 400


async def test_disable_answers_202_while_a_long_poll_finishes(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    # on-poll spins until the channel's 3 s deadline: longer than a disable request waits (DISABLE_WAIT_S).
    install_wat(install_channel, wat_dir, "poller", mode="loop", poll_ms=5, callback_timeout_secs=3)
    async with admin_host(airlock_home, min_poll_interval_override_ms=20) as api:
        slot = api.host.manager.slots["poller"]
        for _ in range(50):
            if slot.in_poll:
                break
            await asyncio.sleep(0.02)
        assert slot.in_poll
        status, doc = await api.post("/api/channels/poller/disable")
        assert status == 202 and doc["disabled"] and doc["status"].startswith("disabling")
        for _ in range(100):
            doc = (await api.get("/api/channels/poller"))[1]
            if doc["status"] == "disabled by the operator":
                break
            await asyncio.sleep(0.05)
        assert doc["status"] == "disabled by the operator" and not slot.in_poll
        assert doc["counters"]["callbacks"].get("timeout") == 1  # the poll ran to its end, not cut off
