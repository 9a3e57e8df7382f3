"""The agent API's operations on the message log, shared by the HTTP routes, the WebSocket stream and push mode.

Every operation checks that the message is routed to the calling agent (404 otherwise: another agent's messages
do not exist for it) and, when a lease token is given, that the message is leased under it (409 otherwise).
Replies, broadcasts, status updates and edits of replies (streamed replies: ``messages.streaming``) are appended to
the outbox and the call returns at once with the outbox id (202): delivery, with its retries, is the outbox sender's
job (``GET /v1/outbox/{id}`` shows how it went). A reply acknowledges its message in the same transaction
(``MessageLog.ack_and_append``).

Outbox entries made here carry ``payload["agent"]``, so ``GET /v1/outbox/{id}`` shows an agent only its own, and
an Idempotency-Key becomes the outbox's own ``idempotency_key`` as ``<agent>:<key>``: a retried POST never
queues a second reply, even if the process died between the log commit and the stored HTTP answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..agents.api import reaction
from ..errors import ConfigError
from ..messages.model import Entry, OutboxEntry
from ..messages.outbox import Outbound
from ..messages.reply_files import ReplyFile, ReplyFileError, check_totals
from ..messages.streaming import StreamError
from ..runtime.values import StatusUpdate
from .auth import ApiError
from .models import (
    BroadcastBody,
    EditBody,
    ReactBody,
    ReplyBody,
    StatusBody,
    attachment_url,
    message_json,
    outbox_json,
)

if TYPE_CHECKING:
    from ..host import AirlockHost
    from ..stores.agents import AgentRegistry

#: Longest long-poll wait, seconds (``wait`` above it is cut to it).
MAX_WAIT_S = 60.0


class AgentService:
    """Operations for one host (module docstring). Event-loop only; blocking calls go to worker threads."""

    def __init__(self, host: AirlockHost, registry: AgentRegistry) -> None:
        self.host = host
        self.registry = registry

    async def lease(self, agent: str, limit: int, wait_s: float) -> list[dict[str, Any]]:
        """Up to ``limit`` messages for ``agent``, waiting up to ``wait_s`` (capped at :data:`MAX_WAIT_S`)."""
        entries = await self.host.bus.lease(agent, limit, min(max(wait_s, 0.0), MAX_WAIT_S))
        return await self.hand_out(agent, entries)

    async def hand_out(self, agent: str, entries: list[Entry]) -> list[dict[str, Any]]:
        """The JSON of leased entries; their attachment blobs become downloadable by ``agent``."""
        digests = [a.sha256 for e in entries for a in e.attachments if a.sha256]
        await asyncio.to_thread(self.registry.grant, agent, digests)
        return [message_json(e) for e in entries]

    async def release(self, entries: list[dict[str, Any]]) -> None:
        """Give back leases that could not be handed over (the client went away)."""
        for m in entries:
            await self.host.bus.release(str(m["id"]), str(m["lease_token"]))

    async def _own(self, agent: str, message_id: str) -> Entry:
        entry = await asyncio.to_thread(self.host.log.get, message_id)
        if entry is None or entry.route.agent != agent:
            raise ApiError(404, _no_message(agent, message_id))
        return entry

    async def ack(self, agent: str, message_id: str, lease_token: str) -> dict[str, Any]:
        entry = await self._own(agent, message_id)
        if entry.state == "acked":
            return {"id": message_id, "state": "acked"}
        if not await self.host.bus.ack(message_id, lease_token):
            again = await self._own(agent, message_id)
            if again.state != "acked":
                raise ApiError(409, _not_leased(message_id))
        return {"id": message_id, "state": "acked"}

    async def ack_many(self, agent: str, items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """Acknowledge a batch (``POST /v1/messages/ack``): one result per ``(id, lease_token)``, in order, each
        ``{"id", "state": "acked"}`` or ``{"id", "error": {"status", "message"}}`` with ``ack``'s rules and messages
        (404 not this agent's or unknown, 409 leased under another token; acked already is success). One ownership
        read and one log transaction for the batch (``MessageLog.get_many`` / ``ack_many``), plus one more read
        only for the items whose ack failed (acknowledged meanwhile is success, as in ``ack``)."""
        owned = await asyncio.to_thread(self.host.log.get_many, [mid for mid, _token in items])
        answers, todo = _triage(agent, items, owned)
        done = await self.host.bus.ack_many([(mid, token) for _i, mid, token in todo]) if todo else []
        failed = [mid for (_i, mid, _token), ok in zip(todo, done, strict=True) if not ok]
        again = await asyncio.to_thread(self.host.log.get_many, failed) if failed else {}
        for (i, mid, _token), ok in zip(todo, done, strict=True):
            entry = again.get(mid)
            acked = ok or (entry is not None and entry.state == "acked")
            answers[i] = {"id": mid, "state": "acked"} if acked else _item_error(mid, 409, _not_leased(mid))
        return [a for a in answers if a is not None]

    async def reply(self, agent: str, message_id: str, body: ReplyBody, idem: str | None) -> dict[str, Any]:
        entry = await self._own(agent, message_id)
        payload: dict[str, Any] = {"content": body.text, "thread_id": body.thread or entry.thread_id,
                                   "metadata_json": entry.metadata_json, "agent": agent}
        if body.attachments:
            if body.stream:
                raise ApiError(422, "attachments: a streamed reply carries text only; send files in a reply "
                                    "without stream")
            payload["attachments"] = [f.as_dict() for f in await self._reply_files(agent, body)]
        out = Outbound(instance=entry.instance, conversation=entry.route.conversation, kind="respond",
                       payload=payload, in_reply_to=entry.id, idempotency_key=_key(agent, idem))
        if body.stream:
            out = self.host.streams.head(out)
        was_open = entry.state != "acked"
        try:
            stored = await self.host.durable(self.host.log.ack_and_append, entry.id, body.lease_token, [out],
                                             time.time())
        except PermissionError:
            raise ApiError(409, f"message {message_id} is leased under another lease token") from None
        except KeyError:
            raise ApiError(404, f"no message {message_id} for agent {agent}") from None
        if was_open:
            self.host.bus.acked()
        if body.stream:
            self.host.streams.opened(stored[0])
        self.host.outbox.wake()
        return _accepted(stored[0])

    async def _reply_files(self, agent: str, body: ReplyBody) -> list[ReplyFile]:
        """The reply's files as references, checked: each blob stored and usable by ``agent`` (404 otherwise),
        limits kept (422)."""
        files = []
        for i, a in enumerate(body.attachments):
            granted = await asyncio.to_thread(self.registry.granted, agent, a.sha256)
            size = await asyncio.to_thread(self.host.blobs.size, a.sha256) if granted else None
            if size is None:
                # 404, as GET /v1/attachments/{sha256} answers for the same blob: it does not exist for this agent
                raise ApiError(404, f"attachments.{i}: no attachment {a.sha256} for agent {agent} (upload it first "
                                    "with POST /v1/attachments)")
            files.append(ReplyFile(a.sha256, a.filename, a.mime_type, size))
        try:
            check_totals(files)
        except ReplyFileError as exc:
            raise ApiError(422, f"attachments: {exc}") from None
        return files

    async def upload(self, agent: str, data: bytes) -> dict[str, Any]:
        """Store a file for a later reply (``POST /v1/attachments``); ``agent`` may then name it by its SHA-256."""
        digest = await asyncio.to_thread(self.host.blobs.put, data)
        await asyncio.to_thread(self.registry.grant, agent, [digest])
        return {"sha256": digest, "size": len(data), "url": attachment_url(digest)}

    async def edit(self, agent: str, outbox_id: str, body: EditBody) -> dict[str, Any]:
        """The next text of a streamed reply, or a one-off edit of a sent one (``messages.streaming``)."""
        reply = await asyncio.to_thread(self.host.log.get_outbox, outbox_id)
        if reply is None or reply.kind != "respond" or reply.payload.get("agent") != agent:
            raise ApiError(404, f"no reply {outbox_id} for agent {agent}")
        try:
            entry = await self.host.streams.edit(outbox_id, body.text, final=body.final, extra={"agent": agent})
        except StreamError as exc:
            raise ApiError(409, str(exc)) from None
        return _accepted(entry)

    async def react(self, agent: str, outbox_id: str, body: ReactBody, idem: str | None) -> dict[str, Any]:
        """A reaction on a sent reply of this agent (``POST /v1/outbox/{id}/react``): 404 for no such reply of
        this agent, 409 when its channel cannot react (no on-react, or not running)."""
        reply = await asyncio.to_thread(self.host.log.get_outbox, outbox_id)
        if reply is None or reply.kind != "respond" or reply.payload.get("agent") != agent:
            raise ApiError(404, f"no reply {outbox_id} for agent {agent}")
        try:
            out = reaction(reply, body.emoji, body.remove, self.host._can_react(reply.instance), {"agent": agent},
                           _key(agent, idem))
        except StreamError as exc:
            raise ApiError(409, str(exc)) from None
        stored = await self.host.durable(self.host.log.append_outbox, [out], time.time())
        self.host.outbox.wake()
        return _accepted(stored[0])

    async def status(self, agent: str, message_id: str, body: StatusBody, idem: str | None) -> dict[str, Any]:
        entry = await self._own(agent, message_id)
        self._active(entry.instance)
        payload = {"status": body.status, "message": body.message, "metadata_json": entry.metadata_json,
                   "agent": agent}
        out = Outbound(instance=entry.instance, conversation=entry.route.conversation, kind="status",
                       payload=payload, in_reply_to=entry.id, idempotency_key=_key(agent, idem))
        stored = await self.host.durable(self.host.log.append_outbox, [out], time.time())
        self.host.outbox.wake()
        update = StatusUpdate(body.status, body.message, entry.metadata_json)
        self.host.manager.follow_status(entry.id, entry.instance, update)
        return _accepted(stored[0])

    async def broadcast(self, agent: str, body: BroadcastBody, idem: str | None) -> dict[str, Any]:
        self._active(body.channel)
        out = Outbound(instance=body.channel, conversation=f"{body.channel}:broadcast:{body.user_id}",
                       kind="broadcast", payload={"content": body.content, "user_id": body.user_id, "agent": agent},
                       idempotency_key=_key(agent, idem))
        stored = await self.host.durable(self.host.log.append_outbox, [out], time.time())
        self.host.outbox.wake()
        return _accepted(stored[0])

    def _active(self, instance: str) -> None:
        """404 for a channel instance that is not installed, 409 for one that is not running (now)."""
        if instance not in self.host.manager.slots:
            raise ApiError(404, f"no channel {instance!r}")
        try:
            self.host.manager.slot_for(instance)
        except ConfigError as exc:
            raise ApiError(409, str(exc)) from None

    async def outbox(self, agent: str, outbox_id: str) -> dict[str, Any]:
        entry = await asyncio.to_thread(self.host.log.get_outbox, outbox_id)
        if entry is None or entry.payload.get("agent") != agent:
            raise ApiError(404, f"no outbox entry {outbox_id} for agent {agent}")
        return outbox_json(entry)

    async def attachment(self, agent: str, sha256: str) -> bytes:
        granted = await asyncio.to_thread(self.registry.granted, agent, sha256)
        data = await asyncio.to_thread(self.host.blobs.get, sha256) if granted else None
        if data is None:
            raise ApiError(404, "no such attachment for this agent")
        return data


def _no_message(agent: str, message_id: str) -> str:
    return f"no message {message_id} for agent {agent}"


def _not_leased(message_id: str) -> str:
    return (f"message {message_id} is not leased under this lease token (the lease expired and was handed out "
            "again, or was never taken)")


def _triage(agent: str, items: Sequence[tuple[str, str]],
            owned: dict[str, Entry]) -> tuple[list[dict[str, Any] | None], list[tuple[int, str, str]]]:
    """The answers a batch has before any ack (404: not ``agent``'s or unknown; acked already), None where the log
    must try; and those items, ``(position, id, lease_token)``."""
    answers: list[dict[str, Any] | None] = []
    todo: list[tuple[int, str, str]] = []
    for i, (mid, token) in enumerate(items):
        entry = owned.get(mid)
        if entry is None or entry.route.agent != agent:
            answers.append(_item_error(mid, 404, _no_message(agent, mid)))
        elif entry.state == "acked":
            answers.append({"id": mid, "state": "acked"})
        else:
            answers.append(None)
            todo.append((i, mid, token))
    return answers, todo


def _item_error(message_id: str, status: int, message: str) -> dict[str, Any]:
    """A failed item of a batch (schema ``AckItemError``): what the single call would have answered."""
    return {"id": message_id, "error": {"status": status, "message": message}}


def _key(agent: str, idem: str | None) -> str | None:
    return f"{agent}:{idem}" if idem else None


def _accepted(entry: OutboxEntry) -> dict[str, Any]:
    return {"outbox_id": entry.id, "state": entry.state}
