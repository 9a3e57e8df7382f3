"""Delivering an outbox edit or reaction (world 0.2.0 ``edits.on-edit`` / ``reactions.on-react``) through a channel,
and what happens when it cannot be done.

The entry's payload carries the target reply's platform message id (``platform_message_id``, filled in by
``messages.streaming.StreamService.deliverer``). Rules, so that a streamed reply's final text always reaches the user:

- an edit with that id on a channel that exports on-edit calls it;
- when the id is missing (the reply failed, or its channel returned none), the channel cannot edit, or the guest
  refuses the edit for good (a typed ``permanent`` error: a platform's edit limit, a message too old): a stream's
  final text (``payload["final"]``) is sent as a new message, a partial text (``payload["stream_part"]``) is
  skipped (success, logged), and a one-off edit fails for good (``NothingToChange``);
- a reaction without an id fails for good.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import GuestReturnedError, NothingToChange
from ..messages.model import OutboxEntry
from ..runtime.values import AgentResponse, MessageEdit, Reaction
from .channel import CallOutcome

if TYPE_CHECKING:
    from .slot import ChannelSlot

log = logging.getLogger("airlock.channels")

RunMain = Callable[..., Awaitable[CallOutcome]]
"""``ChannelManager.run_main``: ``(slot, callback, *args) -> outcome`` on the channel's main lane."""


async def deliver(run_main: RunMain, slot: ChannelSlot, entry: OutboxEntry, response: AgentResponse) -> CallOutcome:
    """Deliver the edit or reaction ``entry`` (module docstring); ``response`` is its text with the answered
    message's metadata and thread."""
    p = entry.payload
    target = p.get("platform_message_id")
    if entry.kind == "react":
        if not isinstance(target, str):
            return CallOutcome(callback="react", error=NothingToChange("the message has no platform id"))
        reaction = Reaction(target, str(p.get("emoji") or ""), bool(p.get("remove")), response.metadata_json)
        return await run_main(slot, slot.channel.react, reaction)
    if isinstance(target, str) and slot.channel.can_edit:
        edit = MessageEdit(target, response.content, response.thread_id, response.metadata_json)
        out = await run_main(slot, slot.channel.edit, edit)
        if not _refused_for_good(out):
            return out
        return await _cannot_edit(run_main, slot, entry, response, str(out.error), out)
    return await _cannot_edit(run_main, slot, entry, response, "the reply has no platform message id", None)


async def _cannot_edit(run_main: RunMain, slot: ChannelSlot, entry: OutboxEntry, response: AgentResponse,
                       why: str, refused: CallOutcome | None) -> CallOutcome:
    p: dict[str, Any] = entry.payload
    if p.get("final"):
        log.info("[%s] edit %s not possible (%s): the final text goes as a new message", entry.instance, entry.id,
                 why)
        return await run_main(slot, slot.channel.respond, response)
    if p.get("stream_part"):  # a partial text: the final one will carry the whole reply
        log.info("[%s] edit %s skipped: %s", entry.instance, entry.id, why)
        return CallOutcome(callback="edit")
    return refused or CallOutcome(callback="edit", error=NothingToChange(f"{why} to edit"))


def _refused_for_good(out: CallOutcome) -> bool:
    """The guest said the edit can never succeed (a typed ``permanent`` send error)."""
    return isinstance(out.error, GuestReturnedError) and out.error.send_class == "permanent"
