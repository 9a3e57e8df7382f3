"""Streamed replies and edits: one send, then the text replaced in place, paced, the final text last.

An agent streams a reply as a series of partial texts (``AirlockHost.reply(..., stream=True)``, or
``POST /v1/messages/{id}/reply`` with ``"stream": true`` then ``POST /v1/outbox/{id}/edit``). Everything goes
through the outbox, so a stream is ordered with the rest of its conversation and survives a restart:

- **The head** is an ordinary ``respond`` entry with the first text and ``payload["stream"] = True``.
- **A channel that exports on-edit** (world 0.2.0 ``edits``): the head is sent at once; each later text becomes an
  ``edit`` entry naming the head (``payload["target"]``). Edits of one conversation are paced
  :data:`EDIT_INTERVAL_S` apart (``EditPacer``: an edit entry is not due before its slot). A newer text replaces
  the text of the stream's edit that is still waiting for its slot (``MessageLog.replace_pending``), so a fast
  stream costs at most one edit per second, and every edit carries the newest text. The final text is the last
  entry of the stream (``payload["final"] = True``). The head's platform message id, recorded when it was sent,
  is looked up when an edit is delivered (``StreamService.deliver``).
- **A channel without on-edit** gets one message: the head is held (not due) while texts replace its payload, and
  released with the final text. A stream nobody finishes is sent as it stands after :data:`STREAM_HOLD_S`.

``edit`` on a reply that was not streamed is a one-off edit, paced the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from ..channels.channel import CallOutcome
from ..errors import ConfigError
from .log import MessageLog
from .model import OutboxEntry
from .outbox import EDIT_INTERVAL_S as OUTBOX_EDIT_INTERVAL_S
from .outbox import Outbound

EDIT_INTERVAL_S = OUTBOX_EDIT_INTERVAL_S
"""Edits of one conversation are at least this far apart (seconds): Telegram allows about one message per second
per chat (edits count), Slack's chat.update is Tier 3 (about 50 per minute), Discord 5 per 5 s per channel. The
outbox sender holds the same spacing at send time (``messages.outbox.EDIT_INTERVAL_S``)."""
STREAM_HOLD_S = 300.0
"""A stream on a channel without on-edit is held until its final text, at most this long (seconds); then the text it
has is sent, and a later final text goes as a message of its own."""

Clock = Callable[[], float]


class StreamError(ConfigError):
    """An edit the host refuses: unknown reply, a finished stream, or a channel that cannot edit."""


class EditPacer:
    """When the next edit of each conversation may go: slots :data:`EDIT_INTERVAL_S` apart (``interval_s``).
    ``reserve(conversation)`` returns the earliest slot at or after now and takes it."""

    def __init__(self, interval_s: float = EDIT_INTERVAL_S, clock: Clock = time.time) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, conversation: str) -> float:
        slot = max(self._clock(), self._next.get(conversation, 0.0))
        self._next[conversation] = slot + self.interval_s
        return slot


@dataclass(frozen=True)
class _Stream:
    head: str
    instance: str
    conversation: str
    metadata_json: str
    thread_id: str | None
    can_edit: bool
    streamed: bool
    """The head was opened as a stream (else: edits are one-off edits of a sent reply)."""
    pending: str | None = None
    """The stream's newest edit entry, which may still take a newer text (``MessageLog.replace_pending``)."""
    finished: bool = False
    last_text: str | None = None
    """The newest text given (the head's first one to start with); the same text again is not sent again."""
    last_entry: str | None = None
    """The entry that carries ``last_text``."""


class StreamService:
    """Streams and edits on top of the outbox (module docstring). Event-loop only; the log is called in threads.

    Args:
        log: the message log.
        can_edit: whether a channel instance exports on-edit (``Channel.can_edit``; False when it is not active).
        wake: tells the outbox sender that entries were appended.
        clock: Unix seconds (tests inject one; the outbox's due times use the same clock).
        interval_s: the pacing of edits per conversation.
        write: runs a blocking log write (``AirlockHost.durable``: the threads kept for agents' writes); default
            ``asyncio.to_thread``.
    """

    def __init__(self, log: MessageLog, can_edit: Callable[[str], bool], wake: Callable[[], None], *,
                 clock: Clock = time.time, interval_s: float = EDIT_INTERVAL_S,
                 write: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.log = log
        self._write: Callable[..., Awaitable[Any]] = write or asyncio.to_thread
        self._can_edit = can_edit
        self._wake = wake
        self._clock = clock
        self.pacer = EditPacer(interval_s, clock)
        self._streams: dict[str, _Stream] = {}

    def head(self, out: Outbound) -> Outbound:
        """The head entry of a new stream: ``out`` (a respond) marked as a stream, held when the channel cannot
        edit. Remember it with ``opened`` once it is appended."""
        payload = {**out.payload, "stream": True}
        if self._can_edit(out.instance):
            return replace(out, payload=payload)
        return replace(out, payload=payload, not_before=self._clock() + STREAM_HOLD_S)

    def opened(self, head: OutboxEntry) -> None:
        if head.id not in self._streams:
            self._streams[head.id] = self._from_entry(head)

    def _from_entry(self, head: OutboxEntry) -> _Stream:
        p = head.payload
        return _Stream(head=head.id, instance=head.instance, conversation=head.conversation,
                       last_text=str(p.get("content") or ""), last_entry=head.id,
                       metadata_json=str(p.get("metadata_json") or "{}"), thread_id=p.get("thread_id"),
                       can_edit=self._can_edit(head.instance), streamed=bool(p.get("stream")))

    async def edit(self, head_id: str, text: str, *, final: bool = False,
                   extra: dict[str, Any] | None = None) -> OutboxEntry:
        """Replace the text of reply ``head_id`` (an outbox id): the next text of a stream (``final`` ends it), or a
        one-off edit of a reply that was not streamed. Returns the outbox entry that carries ``text``. ``extra``
        goes into the entry's payload (the agent API's ``agent``).

        Raises:
            StreamError: no such reply, a finished stream, or (a reply not streamed) a channel without on-edit.
        """
        stream = self._streams.get(head_id)
        if stream is None:
            head = await asyncio.to_thread(self.log.get_outbox, head_id)
            if head is None or head.kind != "respond":
                raise StreamError(f"no reply {head_id} to edit")
            stream = self._from_entry(head)
        if stream.finished:
            raise StreamError(f"the stream of reply {head_id} is finished")
        if not stream.can_edit and not stream.streamed:
            raise StreamError(f"channel {stream.instance} cannot edit messages (no on-edit export, or not active)")
        if not final and text == stream.last_text and stream.last_entry is not None:
            same = await asyncio.to_thread(self.log.get_outbox, stream.last_entry)
            if same is not None:  # an unchanged text: nothing to send (edits cost platform quota)
                return same
        payload = {"content": text, "thread_id": stream.thread_id, "metadata_json": stream.metadata_json,
                   "target": head_id, **({"final": True} if final and stream.streamed else {}),
                   **({"stream_part": True} if stream.streamed and not final else {}), **(extra or {})}
        entry = await (self._edit(stream, payload) if stream.can_edit else self._hold(stream, payload, final))
        self._streams[head_id] = replace(stream, pending=entry.id if stream.can_edit else None,
                                         finished=stream.streamed and final, last_text=text, last_entry=entry.id)
        self._wake()
        return entry

    async def _edit(self, stream: _Stream, payload: dict[str, Any]) -> OutboxEntry:
        """Give the newest text to the stream's waiting edit, or append a paced edit entry."""
        now = self._clock()
        if stream.pending is not None and await self._write(self.log.replace_pending, stream.pending, payload,
                                                                  now, None):
            entry = await asyncio.to_thread(self.log.get_outbox, stream.pending)
            if entry is not None:
                return entry
        out = Outbound(instance=stream.instance, conversation=stream.conversation, kind="edit", payload=payload,
                       in_reply_to=stream.head, not_before=self.pacer.reserve(stream.conversation))
        appended: list[OutboxEntry] = await self._write(self.log.append_outbox, [out], now)
        return appended[0]

    async def _hold(self, stream: _Stream, payload: dict[str, Any], final: bool) -> OutboxEntry:
        """No on-edit: the held head takes the text (released when ``final``); a head already sent gets the final
        text as a message of its own."""
        now = self._clock()
        # the head's own payload (with the caller's extra keys, e.g. the agent API's "agent"), not an edit's
        head_payload = {**{k: v for k, v in payload.items() if k not in ("target", "final", "stream_part")},
                        "stream": True}
        release = now if final else None
        if await self._write(self.log.replace_pending, stream.head, head_payload, now, release):
            entry = await asyncio.to_thread(self.log.get_outbox, stream.head)
            if entry is not None:
                return entry
        if not final:
            raise StreamError(f"reply {stream.head} was sent already (held longer than {STREAM_HOLD_S:g} s)")
        out = Outbound(instance=stream.instance, conversation=stream.conversation, kind="respond",
                       payload={k: v for k, v in head_payload.items() if k != "stream"}, in_reply_to=stream.head)
        appended: list[OutboxEntry] = await self._write(self.log.append_outbox, [out], now)
        return appended[0]

    def deliverer(self, deliver: Callable[[OutboxEntry], Awaitable[CallOutcome]]
                  ) -> Callable[[OutboxEntry], Awaitable[CallOutcome]]:
        """Wrap the channel manager's ``deliver``: an edit or reaction gets its target reply's platform message id
        (``payload["platform_message_id"]``) first."""

        async def run(entry: OutboxEntry) -> CallOutcome:
            target = entry.payload.get("target")
            if entry.kind in ("edit", "react") and isinstance(target, str) and "platform_message_id" not in \
                    entry.payload:
                head = await asyncio.to_thread(self.log.get_outbox, target)
                if head is not None and head.platform_message_id is not None:
                    entry = replace(entry, payload={**entry.payload, "platform_message_id": head.platform_message_id})
            return await deliver(entry)

        return run
