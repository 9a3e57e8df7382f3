"""``/metrics`` on the admin listener, read back with prometheus-client's own parser, after real traffic through
a real host: WAT channels (ok, panic, refused webhooks, busy), the Rust template channel (a refused egress), a
poller, and a channel disabled from the API."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import watguest
from conftest import BUILT_CHANNELS, InstallFn, minimal_caps
from prometheus_client.parser import text_string_to_metric_families

from airlock.observability.metrics import OUTCOMES
from airlock.stores import SecretStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "admin"))
import admin_helpers

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(api: admin_helpers.Api) -> Samples:
    status, text = await api.get("/metrics")
    assert status == 200 and isinstance(text, str)
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_callbacks_host_calls_refusals_messages_and_gauges(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    h = admin_helpers
    h.install_wat(install_channel, wat_dir, "alpha", poll_ms=5)
    h.install_wat(install_channel, wat_dir, "boom", mode="grow")
    h.install_wat(install_channel, wat_dir, "guarded", secret=True)
    h.install_wat(install_channel, wat_dir, "limited", emit_rate_limit={"messages_per_minute": 1,
                                                                       "messages_per_hour": 100})
    SecretStore.open(airlock_home).set(h.HOOK_SECRET_NAME, "the-hook-secret")
    async with h.admin_host(airlock_home, bus_capacity=3, min_poll_interval_override_ms=50) as api:
        host = api.host
        assert [await h.post_webhook(host, "alpha") for _ in range(3)] == [200, 200, 200]
        assert await h.post_webhook(host, "alpha") == 503  # the bus is full: the guest does not run
        assert await h.post_webhook(host, "boom") == 503
        for _ in range(3):
            await host.ack(await host.next_message())  # room on the bus again
        assert await h.post_webhook(host, "boom") == 500
        assert await h.post_webhook(host, "guarded") == 401
        assert await h.post_webhook(host, "guarded", headers={h.HOOK_HEADER: "wrong"}) == 403
        assert await h.post_webhook(host, "guarded", headers={h.HOOK_HEADER: "the-hook-secret"}) == 200
        assert [await h.post_webhook(host, "limited") for _ in range(2)] == [200, 429]
        await asyncio.sleep(0.3)
        m = await scrape(api)

    cb = "airlock_callbacks_total"
    assert value(m, cb, channel="alpha", callback="on-http-request", outcome="ok") == 3
    assert value(m, cb, channel="alpha", callback="on-http-request", outcome="busy") == 1
    assert value(m, cb, channel="alpha", callback="on-start", outcome="ok") == 1
    assert value(m, cb, channel="alpha", callback="on-poll", outcome="ok") >= 1
    assert value(m, cb, channel="boom", callback="on-http-request", outcome="panic") == 1
    assert value(m, cb, channel="boom", callback="on-http-request", outcome="busy") == 1
    assert value(m, cb, channel="guarded", callback="on-http-request", outcome="ok") == 1
    assert {dict(k[1]).get("outcome") for k in m if k[0] == cb} <= set(OUTCOMES)
    hist = "airlock_callback_duration_seconds_count"
    assert value(m, hist, channel="alpha", callback="on-http-request") == 3
    assert value(m, "airlock_callback_fuel_count", channel="alpha", callback="on-http-request") == 3
    assert value(m, "airlock_callback_fuel_sum", channel="alpha", callback="on-http-request") > 0
    calls = "airlock_host_calls_total"
    assert value(m, calls, channel="alpha", function="emit-message", outcome="ok") == 3
    assert value(m, calls, channel="alpha", function="log", outcome="ok") >= 4  # 3 webhooks + polls
    refused = "airlock_webhook_refused_total"
    assert value(m, refused, channel="guarded", scheme="header", reason="missing") == 1
    assert value(m, refused, channel="guarded", scheme="header", reason="wrong") == 1
    assert value(m, "airlock_messages_emitted_total", channel="alpha") == 3
    assert value(m, "airlock_messages_emitted_total", channel="guarded") == 1
    assert value(m, cb, channel="limited", callback="on-http-request", outcome="rate_limited") == 1
    assert value(m, "airlock_messages_dropped_total", channel="limited", reason="rate_limit") == 1
    assert value(m, "airlock_channel_active", channel="alpha") == 1
    assert value(m, "airlock_pool_slots") == (host.runtime.pooling.slots if host.runtime.pooling else 0)
    assert value(m, "airlock_pool_slots_in_use") == 0  # nothing runs between callbacks


async def test_refused_egress_and_dm_policy_drops_are_counted(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    name = "template-rust"
    wasm, caps = BUILT_CHANNELS / f"{name}.wasm", BUILT_CHANNELS / f"{name}.capabilities.json"
    # Replies go to a host outside the channel's allow-list: the host refuses the guest's http-request.
    install_channel(wasm, caps, dm_policy="allowlist", allow_from=["u1"],
                    reply_url="https://not-allowed.example.net/airlock/reply")
    # The WAT guest emits every body as a DM from "u1"; the host's dm_policy check refuses it.
    install_channel(watguest.build_component(wat_dir, "strict"), minimal_caps("strict"), dm_policy="allowlist")
    async with admin_helpers.admin_host(airlock_home) as api:
        host = api.host
        secret = host.secrets.get("template_rust_webhook_secret") or ""
        headers = {"X-Airlock-Webhook-Secret": secret, "Content-Type": "application/json"}
        assert await admin_helpers.post_webhook(host, name, b'{"user": "u1", "text": "hello"}', headers) == 200
        msg = await asyncio.wait_for(host.next_message(), 10)
        out = await host.respond(msg, "a reply that cannot leave")
        assert not out.ok
        assert await admin_helpers.post_webhook(host, "strict") == 200
        m = await scrape(api)
        assert host.bus.qsize() == 0  # the refused DM never reached the log
    calls = "airlock_host_calls_total"
    assert value(m, calls, channel=name, function="http-request", outcome="error") == 1
    assert value(m, "airlock_egress_refusals_total", channel=name, reason="allowlist") == 1
    # template-rust exports world 0.2.0's delivery interface: its on-respond is counted under that interface's name
    assert value(m, "airlock_callbacks_total", channel=name, callback="delivery.on-respond", outcome="guest_error") == 1
    assert value(m, "airlock_messages_emitted_total", channel="strict") == 1
    assert value(m, "airlock_messages_dropped_total", channel="strict", reason="not_admitted") == 1


async def test_metrics_off_means_no_observer_and_a_404(airlock_home: Path, install_channel: InstallFn,
                                                        wat_dir: Path) -> None:
    admin_helpers.install_wat(install_channel, wat_dir, "alpha")
    async with admin_helpers.admin_host(airlock_home, metrics=False) as api:
        assert api.host.observer is None
        assert await admin_helpers.post_webhook(api.host, "alpha") == 200
        assert (await api.get("/metrics"))[0] == 404
        calls = (await api.get("/api/channels/alpha/calls"))[1]
        assert calls == {"channel": "alpha", "recording": False, "successes_since": None, "calls": []}

