"""Attachment blobs in PostgreSQL (``messages.blobs_pg``) while the database is down: a webhook whose callback
stored an attachment is answered 503 with Retry-After (nothing kept, the platform redelivers), not 500; once the
database is back the redelivery is stored with its blob, which compaction keeps while its message is kept and
collects after the log's retention. A real host on a real PostgreSQL that the test stops."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from conftest import InstallFn, minimal_caps
from servers import PostgresServer
from watguest import build_component

from airlock.host import COMPACT_EVERY_S, AirlockHost
from airlock.host_config import HostConfig
from airlock.state.postgres import CONNECT_WAIT_S, RECONNECT_WINDOW_S

FILE = b"%PDF-1.4 while the database was down"


async def test_a_blob_not_stored_is_503(airlock_home: Path, install_channel: InstallFn, wat_dir: Path,
                                        stoppable_postgres: PostgresServer) -> None:
    url = stoppable_postgres.create_schema()
    install_channel(build_component(wat_dir, "alpha", mode="attach"), minimal_caps("alpha"))
    config = HostConfig.build(home=airlock_home, listen_port=0, state=url, default_agent="bot")
    async with AirlockHost(config) as host, aiohttp.ClientSession() as s:
        hook = f"{host.base_url}/webhook/alpha"
        stoppable_postgres.stop()
        async with s.post(hook, data=FILE) as r:
            assert r.status == 503 and r.headers.get("Retry-After"), await r.text()
        stoppable_postgres.start()
        deadline = time.monotonic() + RECONNECT_WINDOW_S + 3 * CONNECT_WAIT_S
        while True:  # the platform's redelivery
            async with s.post(hook, data=FILE) as r:
                if r.status == 200:
                    break
                assert r.status == 503 and time.monotonic() < deadline, r.status
            await asyncio.sleep(0.5)
        [entry] = host.log.list_inbound()
        [att] = entry.attachments
        assert att.sha256 is not None and host.blobs.get(att.sha256) == FILE
        # garbage collection by the log's retention, as on disk: kept while its message is, collected after
        later = time.time() + 2 * COMPACT_EVERY_S
        host.compact(now=later)
        assert host.blobs.get(att.sha256) == FILE
        assert host.log.ack(entry.id, None, time.time())
        host.compact(now=later + config.retention_s)
        assert host.log.list_inbound() == [] and host.blobs.get(att.sha256) is None
