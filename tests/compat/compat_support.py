"""Shared pieces of the near:agent conformance tests (a plain module, not a conftest, so it never shadows
tests/conftest.py): the compat test guest, IronClaw's own capabilities files, and a host started on them.

The guest (``tests/guests/compat``, Python, world ``near:agent/sandboxed-channel@0.3.1``) behaves like IronClaw's
public channels on the points under test; the capabilities files are the real ones IronClaw ships
(``shared/testdata/ironclaw-capabilities``), installed under their own names.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from conftest import REPO, SHARED, InstallFn
from servers import free_port

from airlock.agents.delivery import Delivery
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore
from airlock_demo.telegram import SECRET_TOKEN_HEADER, FakeTelegram

__all__ = ["COMPAT_WASM", "IRONCLAW", "free_port", "ironclaw_caps", "next_message", "probe", "running",
           "start_config_of", "telegram_host", "webhook"]

COMPAT_WASM = REPO / "build" / "test-guests" / "compat.wasm"
IRONCLAW = SHARED / "testdata" / "ironclaw-capabilities"
MESSAGE_TIMEOUT_S = 20.0
"""Longest wait for an emitted message (a CPython guest callback is tens of ms; only a failure waits this out)."""


def ironclaw_caps(name: str, **config: Any) -> dict[str, Any]:
    """IronClaw's capabilities file for ``name``, with ``config`` keys added (``compat_name`` = ``name``)."""
    doc: dict[str, Any] = json.loads((IRONCLAW / f"{name}.capabilities.json").read_text())
    doc.setdefault("config", {}).update({"compat_name": name, **config})
    return doc


@asynccontextmanager
async def running(home: Path, install: InstallFn, caps: dict[str, Any], *, secrets: dict[str, str],
                  upstream: dict[str, str], **host_config: Any) -> AsyncIterator[AirlockHost]:
    """A started host (127.0.0.1, free port unless given) with the compat guest installed under ``caps``."""
    install(COMPAT_WASM, caps)
    store = SecretStore.open(home)
    for name, value in secrets.items():
        store.set(name, value)
    config = HostConfig.build(home=home, **{"listen_port": 0, "upstream_overrides": upstream, **host_config})
    async with AirlockHost(config, secrets=store) as host:
        yield host


async def next_message(host: AirlockHost, timeout: float = MESSAGE_TIMEOUT_S) -> Delivery:
    return await asyncio.wait_for(host.next_message(), timeout)


def start_config_of(host: AirlockHost, channel: str) -> dict[str, Any]:
    """The config the guest's on-start received (it stores it in its workspace)."""
    raw = host.manager.slots[channel].channel.workspace.get("state/start_config")
    assert raw is not None, "on-start did not run"
    value: dict[str, Any] = json.loads(raw)
    return value


@asynccontextmanager
async def telegram_host(home: Path, install: InstallFn, *, secrets: dict[str, str] | None = None,
                        config: dict[str, Any] | None = None,
                        **host_config: Any) -> AsyncIterator[tuple[AirlockHost, FakeTelegram]]:
    """The compat guest under IronClaw's telegram file (``dm_policy: open`` unless ``config`` says otherwise),
    with a FakeTelegram on loopback behind ``api.telegram.org`` and its token stored (plus ``secrets``);
    ``host_config``: HostConfig fields."""
    async with FakeTelegram() as tg, running(
            home, install, ironclaw_caps("telegram", **{"dm_policy": "open", **(config or {})}),
            secrets={"telegram_bot_token": tg.token, **(secrets or {})},
            upstream={"api.telegram.org": tg.base_url}, **host_config) as host:
        yield host, tg


async def webhook(host: AirlockHost, body: dict[str, Any], channel: str = "telegram") -> int:
    """POST ``body`` to the channel's webhook with the secret header its file names (Telegram's); the status."""
    secret = host.secrets.get(f"{channel}_webhook_secret") or ""
    async with aiohttp.ClientSession() as http, http.post(
            f"{host.base_url}/webhook/{channel}", json=body, headers={SECRET_TOKEN_HEADER: secret}) as resp:
        return resp.status


async def probe(host: AirlockHost, kind: str, **spec: Any) -> tuple[list[Any], Delivery]:
    """Have the compat guest run probe ``kind`` (``tests/guests/compat/compat_probes.py``) in on-http-request;
    returns what each host call answered and the message that carried the answers."""
    assert await webhook(host, {"probe": {"kind": kind, **spec}}) == 200
    got = await next_message(host)
    assert got.user_id == "probe" and got.metadata == {"probe": kind}
    answers: list[Any] = json.loads(got.content)
    return answers, got
