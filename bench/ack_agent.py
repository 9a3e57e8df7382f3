"""The benchmark's in-process agent for ``airlock serve --agent ack_agent:ack_all``: acknowledges every message
(delivery is part of what an end-to-end request costs), never replies (no platform to reply to)."""

from __future__ import annotations

from typing import Any


async def ack_all(host: Any) -> None:
    async for message in host.messages():
        await host.ack(message)
