"""The agent-side Python API of ``AirlockHost``: lease, acknowledge and reply through the message log.

``AgentSideApi`` is a mixin of :class:`airlock.host.AirlockHost` (kept apart so the host module holds start-up,
serving and shutdown only). Every method writes through the log first (``messages``); replies, statuses and
broadcasts go out through the outbox (``messages.outbox``) and return the outcome of their first delivery attempt.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from ..channels.channel import CallOutcome
from ..errors import GuestError
from ..messages.model import OutboxEntry
from ..messages.outbox import Outbound
from ..messages.reply_files import ReplyFileError, load_files, store_files
from ..messages.streaming import StreamError
from ..runtime.values import Attachment, StatusUpdate
from .delivery import Delivery

if TYPE_CHECKING:
    from ..channels.manager import ChannelManager
    from ..host_config import HostConfig
    from ..messages.blobs import Blobs
    from ..messages.inbox import Inbox
    from ..messages.log import MessageLog
    from ..messages.outbox import OutboxSender
    from ..messages.streaming import StreamService

__all__ = ["DURABLE_WAITERS", "AgentSideApi", "ReplyStream", "reaction"]

T = TypeVar("T")

DURABLE_WAITERS = 32
"""Threads for the agents' durable log writes (a reply, a status, a broadcast: each waits for its group's fsync,
``messages.group_commit``). Apart from the event loop's default executor (a handful of threads), so leases, acks and
the outbox's reads never queue behind writes waiting for the disk."""


class AgentSideApi:
    """The in-process agent API (module docstring); the host sets the attributes below."""

    config: HostConfig
    bus: Inbox
    blobs: Blobs
    log: MessageLog
    manager: ChannelManager
    streams: StreamService
    outbox: OutboxSender
    _durable_pool: ThreadPoolExecutor

    async def messages(self, agent: str | None = None) -> AsyncIterator[Delivery]:
        """Yield every message routed to ``agent`` (default: ``config.default_agent``), oldest first, forever.
        Each is leased until it is acknowledged (``ack``, or a ``respond``)."""
        while True:
            yield await self.next_message(agent)

    async def next_message(self, agent: str | None = None) -> Delivery:
        """Wait for the next message routed to ``agent``; it stays leased (visibility timeout) until acked."""
        entry = await self.bus.get(agent or self.config.default_agent)
        data = {a.id: blob for a in entry.attachments if a.sha256 and (blob := self.blobs.get(a.sha256)) is not None}
        return Delivery.from_entry(entry, data)

    async def ack(self, message: Delivery) -> bool:
        """Acknowledge a message without replying (False when it was acknowledged already)."""
        return await self.bus.ack(message.id)

    async def respond(self, message: Delivery, reply: str, *, thread_id: str | None = None,
                      idempotency_key: str | None = None, attachments: Sequence[Attachment] = ()) -> CallOutcome:
        """Acknowledge ``message`` and put ``reply`` in the outbox in one transaction; return the outcome of the
        first delivery attempt (on-respond with the original metadata). A failed attempt is retried in the
        background by its error class (``messages.retry``).

        ``attachments``: files sent with the reply (``runtime.values.Attachment``: filename, mime_type, bytes), kept
        in the blob store and referenced by the outbox entry; limits in ``messages.reply_files``.

        Raises:
            ReplyFileError: the files break a limit (nothing is stored, ``message`` stays unacknowledged).
        """
        payload: dict[str, Any] = {"content": reply, "thread_id": thread_id or message.thread_id,
                                   "metadata_json": message.inbound.message.metadata_json}
        if attachments:
            files = await asyncio.to_thread(store_files, self.blobs, attachments)
            payload["attachments"] = [f.as_dict() for f in files]
        out = Outbound(instance=message.channel, conversation=message.conversation, kind="respond", payload=payload,
                       in_reply_to=message.id, idempotency_key=idempotency_key)
        result = await self._submit(out, self.log.ack_and_append, message.id, None, [out], time.time())
        self.bus.acked()
        return result

    @overload
    async def reply(self, message: Delivery, text: str, *, stream: Literal[False] = False,
                    thread_id: str | None = None, idempotency_key: str | None = None,
                    attachments: Sequence[Attachment] = ()) -> CallOutcome: ...

    @overload
    async def reply(self, message: Delivery, text: str, *, stream: Literal[True],
                    thread_id: str | None = None, idempotency_key: str | None = None) -> ReplyStream: ...

    async def reply(self, message: Delivery, text: str, *, stream: bool = False, thread_id: str | None = None,
                    idempotency_key: str | None = None,
                    attachments: Sequence[Attachment] = ()) -> CallOutcome | ReplyStream:
        """``respond`` (``stream`` false), or open a streamed reply whose first text is ``text``: returns a
        :class:`ReplyStream` at once (``update`` with each newer text, ``finish`` with the final one). On a channel
        that exports on-edit the first text is sent now and the later ones become edits, at most one per second per
        conversation (``messages.streaming.EDIT_INTERVAL_S``), the final text last; on any other channel the user gets
        the final text as one message. ``message`` is acknowledged when the stream opens. ``attachments``: as for
        ``respond``; a streamed reply takes none (ReplyFileError)."""
        if not stream:
            return await self.respond(message, text, thread_id=thread_id, idempotency_key=idempotency_key,
                                      attachments=attachments)
        if attachments:
            raise ReplyFileError("a streamed reply carries text only; send files in a reply without stream")
        payload = {"content": text, "thread_id": thread_id or message.thread_id,
                   "metadata_json": message.inbound.message.metadata_json}
        out = self.streams.head(Outbound(instance=message.channel, conversation=message.conversation, kind="respond",
                                         payload=payload, in_reply_to=message.id, idempotency_key=idempotency_key))
        entries = await self.durable(self.log.ack_and_append, message.id, None, [out], time.time())
        self.bus.acked()
        self.streams.opened(entries[0])
        self.outbox.wake()
        return ReplyStream(self, entries[0].id)

    async def edit(self, reply_id: str, text: str) -> CallOutcome:
        """Replace the text of the sent reply ``reply_id`` (the outbox id ``respond``/``reply`` made; on-edit with its
        platform message id), paced like a stream's edits. Returns the outcome of the first delivery attempt.

        Raises:
            StreamError: no such reply, or its channel does not export on-edit.
        """
        entry = await self.streams.edit(reply_id, text)
        return await self._first_attempt(entry.id)

    async def react(self, reply_id: str, emoji: str, *, remove: bool = False) -> CallOutcome:
        """Add (or ``remove``) a reaction on the sent reply ``reply_id`` (on-react, world 0.2.0 ``reactions``, with
        the reply's platform message id), in order with its conversation. Returns the first attempt's outcome.

        Raises:
            StreamError: no such reply, or its channel does not export on-react.
        """
        reply = await asyncio.to_thread(self.log.get_outbox, reply_id)
        if reply is None or reply.kind != "respond":
            raise StreamError(f"no reply {reply_id} to react to")
        out = reaction(reply, emoji, remove, self._can_react(reply.instance))
        return await self._submit(out, self.log.append_outbox, [out], time.time())

    def _can_react(self, instance: str) -> bool:
        slot = self.manager.slots.get(instance)
        return slot is not None and slot.active and slot.channel.can_react

    async def _first_attempt(self, entry_id: str) -> CallOutcome:
        """The outcome of the entry's next attempt, or of its last one when it is done (the waiter is registered
        before the state is read, so an attempt that ends in between is not missed)."""
        waiter = self.outbox.wait_first_attempt(entry_id)
        entry = await asyncio.to_thread(self.log.get_outbox, entry_id)
        if entry is not None and entry.state != "pending":
            self.outbox.forget(entry_id)
            return CallOutcome(callback=entry.kind,
                               error=None if entry.state == "sent" else GuestError(entry.last_error or ""))
        return await waiter

    async def _deliver(self, entry: OutboxEntry) -> CallOutcome:
        """``manager.deliver`` with the reply's files read from the blob store (``messages.reply_files``); a file
        that is gone fails the entry for good (an error with no platform answer is permanent)."""
        try:
            files = await asyncio.to_thread(load_files, self.blobs, entry.payload)
        except ReplyFileError as exc:
            return CallOutcome(callback=entry.kind, error=exc)
        return await self.manager.deliver(entry, files)

    def _can_edit(self, instance: str) -> bool:
        slot = self.manager.slots.get(instance)
        return slot is not None and slot.active and slot.channel.can_edit

    def _wake_outbox(self) -> None:
        self.outbox.wake()

    async def broadcast(self, channel: str, user_id: str, content: str, *,
                        idempotency_key: str | None = None) -> CallOutcome:
        """A proactive message to ``user_id`` on ``channel`` (on-broadcast), through the outbox."""
        self.manager.slot_for(channel)  # ConfigError at once for a channel that is not active
        out = Outbound(instance=channel, conversation=f"{channel}:broadcast:{user_id}", kind="broadcast",
                       payload={"content": content, "user_id": user_id}, idempotency_key=idempotency_key)
        return await self._submit(out, self.log.append_outbox, [out], time.time())

    async def send_status(self, message: Delivery, status: str, text: str = "") -> CallOutcome:
        """on-status through the outbox (one try); "thinking" is refreshed every 4 s until the reply or a status
        that ends it (``ChannelManager.follow_status``)."""
        metadata = message.inbound.message.metadata_json
        out = Outbound(instance=message.channel, conversation=message.conversation, kind="status",
                       payload={"status": status, "message": text, "metadata_json": metadata},
                       in_reply_to=message.id)
        result = await self._submit(out, self.log.append_outbox, [out], time.time())
        self.manager.follow_status(message.id, message.channel, StatusUpdate(status, text, metadata))
        return result

    async def durable(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a blocking durable write to the log, on the threads kept for those
        (:data:`DURABLE_WAITERS`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._durable_pool, contextvars.copy_context().run, fn, *args)

    async def _submit(self, out: Outbound, append: Callable[..., list[OutboxEntry]], *args: Any) -> CallOutcome:
        """Append ``out`` (with ``append(*args)``) and return the outcome of its first delivery attempt. The waiter
        is registered before the append, so a sender that picks the entry up at once cannot be missed."""
        waiter = self.outbox.wait_first_attempt(out.id)
        try:
            entries = await self.durable(append, *args)
        except BaseException:
            self.outbox.forget(out.id)
            raise
        stored = entries[0]
        if stored.id != out.id:  # an idempotent repeat: the first submission's entry
            self.outbox.forget(out.id)
            if stored.state != "pending":
                return CallOutcome(callback=stored.kind,
                                   error=None if stored.state == "sent" else GuestError(stored.last_error or ""))
            waiter = self.outbox.wait_first_attempt(stored.id)
        self.outbox.wake()
        return await waiter


def reaction(reply: OutboxEntry, emoji: str, remove: bool, can_react: bool,
             extra: dict[str, Any] | None = None, idempotency_key: str | None = None) -> Outbound:
    """The outbox entry of a reaction on the sent reply ``reply`` (kind ``react``; ``channels.changes`` delivers it
    with the reply's platform message id), with ``extra`` in its payload (the agent API's ``agent``).

    Raises:
        StreamError: ``can_react`` is false (the channel does not export on-react, or is not running).
    """
    if not can_react:
        raise StreamError(f"channel {reply.instance} cannot react (no on-react, or not running)")
    payload = {"content": "", "target": reply.id, "emoji": emoji, "remove": remove,
               "metadata_json": reply.payload.get("metadata_json") or "{}",
               "thread_id": reply.payload.get("thread_id"), **(extra or {})}
    return Outbound(instance=reply.instance, conversation=reply.conversation, kind="react", payload=payload,
                    in_reply_to=reply.id, idempotency_key=idempotency_key)


class ReplyStream:
    """A streamed reply (``AirlockHost.reply(..., stream=True)``). ``id`` is its outbox id (``edit`` takes it too)."""

    def __init__(self, host: AgentSideApi, reply_id: str) -> None:
        self.host = host
        self.id = reply_id

    async def update(self, text: str) -> None:
        """The reply's text so far (the whole text, not the new part); coalesced, paced edits. Raises StreamError
        after ``finish``."""
        await self.host.streams.edit(self.id, text)

    async def finish(self, text: str) -> CallOutcome:
        """The final text, sent last; returns the outcome of its first delivery attempt (retries go on in the
        background). Raises StreamError when the stream was finished already."""
        entry = await self.host.streams.edit(self.id, text, final=True)
        return await self.host._first_attempt(entry.id)
