"""Helpers for the agent API tests: a started host (no channels, or with some), registered agents, and messages
committed to the real log the way a callback commits them (``MessageLog.commit`` + ``Inbox.appended``).

Also the fixtures most of these tests share: ``host`` (a started host with no channel and a 30 s lease), ``tokens``
(agents ``alpha`` and ``beta``) and ``s`` (an HTTP client session). Not in a ``conftest.py``: test modules import
``conftest`` (tests/conftest.py) by name, which a second conftest would shadow. A test module imports
``host_fixture``, ``tokens_fixture`` and ``session_fixture`` (registered under the names ``host``, ``tokens`` and
``s``, so a test's parameters do not shadow the imports)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.messages.model import AttachmentRef, NewEntry, Route

Tokens = dict[str, str]
"""Agent name -> its API token."""


@asynccontextmanager
async def started_host(home: Path, **config: Any) -> AsyncIterator[AirlockHost]:
    values: dict[str, Any] = {"home": home, "listen_port": 0}
    values.update(config)
    host = AirlockHost(HostConfig.build(**values))
    try:
        await host.start()  # a failed start is stopped too: what it opened is closed
        yield host
    finally:
        await host.stop()


def api(host: AirlockHost) -> str:
    return f"http://127.0.0.1:{host.agent_api_port}"


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def inject(host: AirlockHost, agent: str, content: str, *, chat: str = "1", instance: str = "telegram",
           attachments: tuple[AttachmentRef, ...] = ()) -> str:
    """Commit one message routed to ``agent`` (as a channel callback would) and wake the pollers; its id."""
    entry = NewEntry(instance=instance, user_id=chat, user_name="alice", thread_id=None, content=content,
                     metadata_json=f'{{"chat_id": {chat}}}', attachments=attachments,
                     route=Route(agent=agent, session_key=f"agent:{agent}:{instance}:{chat}",
                                 conversation=f"{instance}:{chat}"))
    host.log.commit(instance, {}, [entry], time.time())
    host.bus.appended(1)
    return entry.id


async def poll(s: aiohttp.ClientSession, host: AirlockHost, token: str, wait: float = 0,
               limit: int = 10) -> list[dict[str, Any]]:
    r = await s.get(f"{api(host)}/v1/messages", params={"wait": str(wait), "limit": str(limit)},
                    headers=auth(token))
    assert r.status == 200, await r.text()
    messages: list[dict[str, Any]] = (await r.json())["messages"]
    return messages


@pytest.fixture(name="host")
async def host_fixture(airlock_home: Path) -> AsyncIterator[AirlockHost]:
    """A started host with no channel; an agent's lease on a message lasts 30 s."""
    async with started_host(airlock_home, agent_visibility_timeout_s=30.0) as h:
        yield h


@pytest.fixture(name="tokens")
def tokens_fixture(host: AirlockHost) -> Tokens:
    """Two registered agents, ``alpha`` and ``beta``, and their tokens."""
    return {name: host.agents.add(name, None)[0] for name in ("alpha", "beta")}


@pytest.fixture(name="s")
async def session_fixture() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
