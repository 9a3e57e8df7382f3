"""Helpers shared by the end-to-end tests of the bundled channels (Slack, WhatsApp, Discord, Feishu, the Rust
template): start a host with a channel's secrets and fake upstream, wait for messages, spy on the guest.

A plain module rather than a ``conftest.py``: the tests import ``conftest`` (tests/conftest.py) by name, which a
second conftest in this directory would shadow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from airlock.agents.delivery import Delivery
from airlock.channels.callstate import CallState
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.runtime.values import IncomingHttpRequest
from airlock.stores import SecretStore

__all__ = ["GuestHttp", "assert_no_message", "next_message", "record_guest_http", "running_host", "spy_guest"]

GuestHttp = list[tuple[str, str, bytes]]
"""Outbound requests as a guest made them: (url, headers-json, body), before the host adds credentials."""

MESSAGE_TIMEOUT_S = 15.0
"""Longest wait for an emitted message (a callback, maybe an upstream call, the bus); only failures wait it out."""

QUIET_S = 0.5
"""How long "no message" is watched for: several times a local callback's latency."""


@asynccontextmanager
async def running_host(home: Path, channel: str, secrets: dict[str, str],
                       upstream: dict[str, str]) -> AsyncIterator[AirlockHost]:
    """A started host (listening on a free 127.0.0.1 port) with ``secrets`` stored and ``upstream`` overrides
    (platform host -> fake base URL); fails the test unless ``channel`` (installed before) came up active."""
    store = SecretStore.open(home)
    for name, value in secrets.items():
        store.set(name, value)
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides=upstream)
    async with AirlockHost(config, secrets=store) as host:
        slot = host.manager.slots[channel]
        assert slot.active, slot.reason
        yield host


async def next_message(host: AirlockHost, timeout: float = MESSAGE_TIMEOUT_S) -> Delivery:
    """The next message a channel emitted; TimeoutError after ``timeout`` seconds."""
    return await asyncio.wait_for(host.next_message(), timeout)


async def assert_no_message(host: AirlockHost, wait: float = QUIET_S) -> None:
    """Fail if a message is on the bus after ``wait`` seconds."""
    await asyncio.sleep(wait)
    assert host.bus.qsize() == 0


def record_guest_http(monkeypatch: pytest.MonkeyPatch) -> GuestHttp:
    """Record every http-request any guest makes (for the test's duration), as the guest made it."""
    seen: GuestHttp = []
    original = CallState.http_request

    def spy(self: CallState, method: str, url: str, headers_json: str, body: bytes | None,
            timeout_ms: int | None) -> Any:
        seen.append((url, headers_json, body or b""))
        return original(self, method, url, headers_json, body, timeout_ms)

    monkeypatch.setattr(CallState, "http_request", spy)
    return seen


def spy_guest(host: AirlockHost, channel: str, monkeypatch: pytest.MonkeyPatch) -> list[IncomingHttpRequest]:
    """Record each request that reaches ``channel``'s on-http-request (so a test can prove the host refused
    one before the guest saw it)."""
    target = host.manager.slots[channel].channel
    calls: list[IncomingHttpRequest] = []
    original = target.http_request

    def spy(req: IncomingHttpRequest, **kwargs: Any) -> Any:
        # An inline attempt the host abandons is retried with the same request object: count it once.
        if not calls or calls[-1] is not req:
            calls.append(req)
        return original(req, **kwargs)

    monkeypatch.setattr(target, "http_request", spy)
    return calls
