"""The agent side of ``ChannelManager``: outbox entries carried back to their channel (on-respond, on-broadcast,
on-status, on-edit, on-react) and the "thinking" typing refresh.

``ReplySide`` is a mixin of :class:`airlock.channels.manager.ChannelManager` (kept apart so the manager module
holds loading, webhooks, polling and shutdown). Every callback runs on the channel's main lane (``run_main``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..errors import ConfigError
from ..messages.model import OutboxEntry
from ..messages.ratelimit import SendRate, rate_for
from ..runtime.values import AgentResponse, Attachment, StatusUpdate
from . import changes
from .channel import CallOutcome
from .slot import ChannelSlot

__all__ = ["TYPING_MAX_S", "TYPING_REFRESH_S", "TYPING_STOPS", "ReplySide"]

log = logging.getLogger("airlock.channels")

TYPING_REFRESH_S = 4.0
TYPING_MAX_S = 300.0
TYPING_STOPS = frozenset({"done", "interrupted", "approval-needed", "auth-required"})
"""Statuses that end a "thinking" refresh: the agent finished or waits for the user. Progress statuses (tool-*,
job-started, status, auth-completed) leave it running, as IronClaw's host does (``src/channels/wasm/wrapper.rs``,
``WasmChannel::handle_status_update``): a typing indicator must not vanish at the first tool call."""


class ReplySide:
    """Agent-side delivery (module docstring); the manager sets ``slots`` and ``_typing`` and provides
    ``run_main``."""

    slots: dict[str, ChannelSlot]
    _typing: dict[str, asyncio.Task[None]]
    run_main: Callable[..., Awaitable[CallOutcome]]

    def send_rate(self, instance: str) -> SendRate:
        """The outbound send rate of a channel instance (``messages.ratelimit``)."""
        slot = self.slots.get(instance)
        if slot is None:
            return rate_for(instance)
        spec = slot.channel.caps.capabilities.channel.send_rate
        override = SendRate(spec.per_second, spec.burst, spec.per_chat_per_second, spec.chat_burst) if spec else None
        return rate_for(slot.channel.platform, override)

    def slot_for(self, name: str) -> ChannelSlot:
        slot = self.slots.get(name)
        if slot is None or not slot.active:
            raise ConfigError(f"channel {name!r} is not active")
        return slot

    async def deliver(self, entry: OutboxEntry, files: tuple[Attachment, ...] = ()) -> CallOutcome:
        """Run one outbox entry's callback (on-respond, on-broadcast, on-status, on-edit, on-react) on the channel's
        main lane, with the ORIGINAL message's metadata (``payload["metadata_json"]``); ``files``: the reply's
        attachments, read from the blob store by the host (``messages.reply_files``). Raises ConfigError when the
        channel is not active."""
        slot = self.slot_for(entry.instance)
        p = entry.payload
        if entry.kind == "status":
            update = StatusUpdate(status=str(p["status"]), message=str(p.get("message") or ""),
                                  metadata_json=str(p.get("metadata_json") or "{}"))
            return await self.run_main(slot, slot.channel.status, update)
        response = AgentResponse(message_id=entry.in_reply_to or entry.id, content=str(p["content"]),
                                 thread_id=p.get("thread_id"), metadata_json=str(p.get("metadata_json") or "{}"),
                                 attachments=files)
        if entry.kind == "broadcast":
            return await self.run_main(slot, slot.channel.broadcast, str(p["user_id"]), response)
        if entry.kind in ("edit", "react"):
            return await changes.deliver(self.run_main, slot, entry, response)
        if entry.in_reply_to is not None:
            self.stop_typing(entry.in_reply_to)
        out = await self.run_main(slot, slot.channel.respond, response)
        if not out.ok:
            log.warning("[%s] reply %s not delivered: %s", entry.instance, entry.id, out.error)
        return out

    def follow_status(self, key: str, instance: str, update: StatusUpdate) -> None:
        """Keep the typing refresh of the message ``key`` in step with an agent status: "thinking" starts it, a
        :data:`TYPING_STOPS` status stops it, any other leaves it as it is (the reply stops it too: ``deliver``)."""
        if update.status == "thinking":
            self.start_typing(key, instance, update)
        elif update.status in TYPING_STOPS:
            self.stop_typing(key)

    def start_typing(self, key: str, instance: str, update: StatusUpdate) -> None:
        """Refresh a "thinking" status every 4 s (at most 5 minutes) until ``stop_typing(key)`` (the reply)."""
        if key not in self._typing:
            self._typing[key] = asyncio.create_task(self._refresh_typing(self.slot_for(instance), update))

    async def _refresh_typing(self, slot: ChannelSlot, update: StatusUpdate) -> None:
        elapsed = 0.0
        while elapsed < TYPING_MAX_S:
            await asyncio.sleep(TYPING_REFRESH_S)
            elapsed += TYPING_REFRESH_S
            await self.run_main(slot, slot.channel.status, update)

    def stop_typing(self, delivery_id: str) -> None:
        task = self._typing.pop(delivery_id, None)
        if task is not None:
            task.cancel()
