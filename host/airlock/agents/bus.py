"""``MessageBus``: the bounded queue between channels and the agent.

Capacity is soft-bounded: producers ask ``has_room()`` before running a guest (a webhook answers 503
with Retry-After, a poller waits), and the messages of a callback that already succeeded are always
enqueued (at most 100 per in-flight callback over capacity), so nothing a guest emitted is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..channels.channel import InboundMessage

RETRY_AFTER_S = 5


class MessageBus:
    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError("bus capacity must be at least 1")
        self.capacity = capacity
        self._queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.delivered = 0

    def has_room(self) -> bool:
        return self._queue.qsize() < self.capacity

    def qsize(self) -> int:
        return self._queue.qsize()

    def put(self, message: InboundMessage) -> None:
        self._queue.put_nowait(message)

    async def wait_for_room(self, poll_s: float = 0.2) -> None:
        while not self.has_room():
            await asyncio.sleep(poll_s)

    async def get(self) -> InboundMessage:
        msg = await self._queue.get()
        self.delivered += 1
        return msg

    async def __aiter__(self) -> AsyncIterator[InboundMessage]:
        while True:
            yield await self.get()
