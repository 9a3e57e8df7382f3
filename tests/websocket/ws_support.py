"""Shared pieces of the websocket tests (a plain module, not a conftest, so it never shadows tests/conftest.py;
test modules import its fixtures by name): a fake Discord, fast (recorded) backoff sleeps, and a SocketRuntime
harness that collects the frames it would hand to a guest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fake_discord import DEFAULT_TOKEN, FakeDiscord

from airlock.capabilities.websocket import WebsocketCapability
from airlock.channels.socket_runtime import SocketRuntime, SocketSettings
from airlock.manifest import WebsocketCapability as WebsocketSpec

DISCORD_WS = {
    "url": "wss://gateway.discord.gg/?v=10&encoding=json",
    "connect_on_start": True,
    "identify_secret_name": "discord_bot_token",
    "identify": {"_intents_doc": "GUILDS(1) + GUILD_MESSAGES(512) + DIRECT_MESSAGES(4096)", "intents": 4609,
                 "properties": {"os": "linux", "browser": "airlock-test", "device": "airlock-test"}},
}


@dataclass
class Sleeps:
    """An injected backoff sleep: records each delay and waits at most ``real_cap_s`` for real."""

    delays: list[float] = field(default_factory=list)
    real_cap_s: float = 0.005

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, self.real_cap_s))


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval_ms=200) as fake:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def fast_settings(overrides: dict[str, str], sleeps: Sleeps, **kw: Any) -> SocketSettings:
    return SocketSettings(upstream_overrides=overrides, sleep=sleeps, rand=kw.pop("rand", lambda: 0.5), **kw)


@dataclass
class Harness:
    """A SocketRuntime whose guest is a list: ``frames`` gets every delivered frame text."""

    runtime: SocketRuntime
    capability: WebsocketCapability
    frames: list[str]

    async def wait_frames(self, n: int, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.frames) < n:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {n} frames, got {len(self.frames)}: {self.frames}")
            await asyncio.sleep(0.01)

    async def wait_state(self, state: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.runtime.status.state != state:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"state {self.runtime.status.state} ({self.runtime.status.reason}), "
                                     f"wanted {state}")
            await asyncio.sleep(0.01)


HarnessFactory = Callable[..., Harness]


@pytest.fixture
async def harness() -> AsyncIterator[HarnessFactory]:
    """harness(spec_dict, settings, secrets={...}, deliver=None) -> Harness (stopped at teardown)."""
    made: list[Harness] = []

    def make(spec: dict[str, Any], settings: SocketSettings, *, secrets: dict[str, str] | None = None,
             deliver: Callable[[str], Any] | None = None) -> Harness:
        frames: list[str] = []
        store = {"discord_bot_token": DEFAULT_TOKEN} if secrets is None else secrets

        async def collect(text: str) -> None:
            if deliver is not None:
                await deliver(text)
            frames.append(text)

        cap = WebsocketCapability("test")
        rt = SocketRuntime("test", WebsocketSpec.model_validate(spec), secret_lookup=store.get, capability=cap,
                           deliver=collect, settings=settings)
        h = Harness(rt, cap, frames)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.runtime.stop()
