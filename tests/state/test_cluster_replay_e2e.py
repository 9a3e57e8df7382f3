"""Two gateways (in-process hosts, homes of their own) on one PostgreSQL state database, a Slack-signed webhook
channel (a WAT component) on each: a signed request accepted by the first is refused as a replay by the second
(the shared replay cache, ``state.replay``), while a fresh signature is accepted by either; the signing secret
is stored once, encrypted in PostgreSQL, and both nodes read it."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
import watguest
from conftest import minimal_caps

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.state.postgres import PgDb
from airlock.stores.secrets_pg import PostgresSecretStore

pytestmark = pytest.mark.e2e

SECRET = "slack-signing-secret-for-two-nodes"


@pytest.fixture
async def two_nodes(tmp_path: Path, wat_dir: Path, compile_cache: Path, pg_url: str,
                    master_key: str) -> AsyncIterator[list[AirlockHost]]:
    db = PgDb(pg_url)
    try:
        PostgresSecretStore(db, bytes.fromhex(master_key)).set("slack_signing_secret", SECRET)
    finally:
        db.close()
    wasm = watguest.build_component(wat_dir, "slk")
    caps = minimal_caps("slk", webhook={"hmac_secret_name": "slack_signing_secret"}, allow_polling=False)
    async with AsyncExitStack() as stack:
        hosts = []
        for node in ("a", "b"):
            home = tmp_path / node
            (home / "channels").mkdir(parents=True)
            (home / "cache").symlink_to(compile_cache, target_is_directory=True)
            shutil.copy(wasm, home / "channels" / "slk.wasm")
            (home / "channels" / "slk.capabilities.json").write_text(json.dumps(caps))
            config = HostConfig.build(home=home, listen_port=0, state=pg_url, pooling=False, agent_api_enabled=False)
            hosts.append(await stack.enter_async_context(AirlockHost(config)))
        yield hosts


def slack_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Slack's request signing: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret."""
    mac = hmac.new(secret.encode(), b"v0:%d:" % timestamp + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={mac}",
            "Content-Type": "application/json"}


async def post(host: AirlockHost, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as s, s.post(f"{host.base_url}/webhook/slk", data=body,
                                                     headers=headers) as r:
        return r.status


async def test_a_request_accepted_by_one_node_is_a_replay_on_the_other(two_nodes: list[AirlockHost]) -> None:
    a, b = two_nodes
    body = json.dumps({"type": "event_callback", "event": {"type": "message", "text": "hi"}}).encode()
    signed = slack_headers(SECRET, body, int(time.time()))
    assert await post(a, body, signed) == 200
    assert await post(b, body, signed) == 403  # replayed to the other node
    assert await post(a, body, signed) == 403
    fresh = slack_headers(SECRET, body + b" ", int(time.time()))
    assert await post(b, body + b" ", fresh) == 200
    assert a.log.backlog() == 2  # one log for both nodes: the two accepted requests
