"""``airlock serve --workers 2``, all real, on worker 0's admin listener: ``/metrics`` counts the callbacks and
messages of every worker (prometheus-client's multiprocess mode, ``observability.multiproc``), keeps a killed
worker's counts, and reports its restart; a disable from the admin API reaches every worker
(``workers.admin_ops``).

Guest: the WAT test component (each webhook is one on-http-request callback that emits one message).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port
from test_workers_live import by_worker, caps_doc
from watguest import build_component
from workers_harness import Gateway, cli, env_for, start

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore

pytestmark = pytest.mark.e2e

NAME = "minimal"
FIRST, SECOND = 40, 10
"""Webhooks before and after worker 1 is killed."""
CALLBACK = {"channel": NAME, "callback": "on-http-request"}


async def send(gw: Gateway, count: int) -> Counter[str]:
    """``count`` webhooks on fresh connections (spread over both workers); answers by worker index."""
    by: Counter[str] = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for n in range(count):
            async with s.post(f"{gw.base}/webhook/{NAME}", data=f"m-{n}".encode()) as r:
                assert r.status == 200, await r.text()
                by[r.headers["X-Airlock-Worker"]] += 1
    return by


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(doc: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return doc.get((name, frozenset(labels.items())))


async def wait_totals(url: str, token: str, want: int, gw: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]],
                                                                             float]:
    """``/metrics`` once its totals reach ``want`` webhooks (other workers' copies are up to a second behind)."""
    deadline, doc = time.monotonic() + 20, {}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        while time.monotonic() < deadline:
            async with s.get(url) as r:
                assert r.status == 200, await r.text()
                doc = samples(await r.text())
            if value(doc, "airlock_callbacks_total", **CALLBACK, outcome="ok") == want:
                return doc
            await asyncio.sleep(0.2)
    got = value(doc, "airlock_callbacks_total", **CALLBACK, outcome="ok")
    raise AssertionError(f"/metrics counted {got} callbacks, not {want}: {gw.log()[-2000:]}")


async def test_metrics_count_every_worker_and_the_console_reaches_every_worker(airlock_home: Path, wat_dir: Path,
                                                                          tmp_path: Path) -> None:
    stage(ChannelStore(airlock_home / "channels"), build_component(wat_dir, NAME).read_bytes(), caps_doc("0.1.0"),
          source=NAME)
    (airlock_home / "airlock.toml").write_text("bus_capacity = 100000\n")
    (airlock_home / "run" / "metrics").mkdir(parents=True)
    (airlock_home / "run" / "metrics" / "counter_1.db").write_bytes(b"left by an earlier start")
    token = json.loads(await cli(env_for(airlock_home), "admin", "token", "--json"))["token"]
    admin_port = free_port()
    gw = await start(airlock_home, tmp_path / "serve.log", "--admin", "--admin-port", str(admin_port))
    url = f"http://127.0.0.1:{admin_port}/metrics"
    try:
        by = await send(gw, FIRST)
        assert set(by) == {"0", "1"}, by
        doc = await wait_totals(url, token, FIRST, gw)
        assert value(doc, "airlock_messages_emitted_total", channel=NAME) == FIRST
        assert value(doc, "airlock_callback_duration_seconds_count", **CALLBACK) == FIRST
        assert value(doc, "airlock_callback_duration_seconds_bucket", **CALLBACK, le="+Inf") == FIRST
        assert value(doc, "airlock_channel_active", channel=NAME) == 1
        assert value(doc, "airlock_workers", state="ready") == 2
        slots = value(doc, "airlock_pool_slots")
        assert slots is not None and slots > 0  # both workers' pools, summed

        os.kill(gw.workers()[1]["pid"], signal.SIGKILL)
        await gw.wait_workers(lambda ws: ws[1]["restarts"] == 1 and ws[1]["state"] == "ready", 60,
                              "worker 1 restarted")
        by = await send(gw, SECOND)
        doc = await wait_totals(url, token, FIRST + SECOND, gw)
        assert value(doc, "airlock_messages_emitted_total", channel=NAME) == FIRST + SECOND
        assert value(doc, "airlock_worker_restarts_total", worker="1") == 1
        assert value(doc, "airlock_worker_restarts_total", worker="0") == 0
        assert value(doc, "airlock_pool_slots") == slots  # the dead worker's live gauges are gone

        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=auth) as s:
            async with s.post(f"http://127.0.0.1:{admin_port}/api/channels/{NAME}/disable") as r:
                assert r.status == 200, await r.text()
            assert await by_worker(gw) == {"0": {404}, "1": {404}}
            async with s.post(f"http://127.0.0.1:{admin_port}/api/channels/{NAME}/enable") as r:
                assert r.status == 200, await r.text()
            assert await by_worker(gw) == {"0": {200}, "1": {200}}
    finally:
        assert await gw.stop() == 0, gw.log()[-3000:]
