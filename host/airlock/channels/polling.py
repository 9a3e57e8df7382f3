"""The poll lane of ``ChannelManager``: one on-poll at a time per channel, and the loop that runs it.

``PollSide`` is a mixin of :class:`airlock.channels.manager.ChannelManager` (kept apart so the manager module holds
loading, webhooks and shutdown). The loop stops before its next poll when the channel halts (disable, shutdown) or
when the lease it runs under was lost (``channels.poll_lease``); a poll that waited (a long poll) or found work is
followed at once, an idle one waits the interval, a rate-limited one its Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import EmitRateLimited
from ..messages.inbox import Inbox
from .outcome import CallOutcome
from .poll_lease import LeaseHolder
from .slot import ChannelSlot

__all__ = ["LONG_POLL_WAIT_S", "PRODUCTION_MIN_POLL_MS", "PollSide"]

PRODUCTION_MIN_POLL_MS = 30_000
"""The shortest poll interval a channel gets without ``min_poll_interval_override_ms`` (milliseconds)."""
LONG_POLL_WAIT_S = 1.0
"""A poll whose HTTP request was held at least this long is a long poll: the next one starts at once."""


class PollSide:
    """Polling (module docstring); the manager sets ``bus`` and provides ``_run`` and ``dispatch``."""

    bus: Inbox
    _run: Callable[..., Awaitable[Any]]
    dispatch: Callable[[ChannelSlot, CallOutcome], None]

    async def _poll_once(self, slot: ChannelSlot) -> CallOutcome:
        """One on-poll and the dispatch of what it emitted; the caller holds ``slot.poll_lane``."""
        slot.in_poll = True
        try:
            out: CallOutcome = await self._run(slot.channel.poll)
        finally:
            slot.in_poll = False
        slot.polls += 1
        if not out.ok and not isinstance(out.error, EmitRateLimited):
            slot.failures += 1
        self.dispatch(slot, out)
        return out

    async def _poll_loop(self, slot: ChannelSlot, holder: LeaseHolder | None = None) -> None:
        interval = slot.poll_interval_s or PRODUCTION_MIN_POLL_MS / 1000
        while not slot.halt.is_set():
            await self.bus.wait_for_room()
            if slot.halt.is_set() or (holder is not None and not holder.held()):
                break  # a lost lease stops the poller before its next poll
            async with slot.poll_lane:
                out = await self._poll_once(slot)
            if out.ok and self._poll_again_now(out):
                continue
            rate = out.error.retry_after if isinstance(out.error, EmitRateLimited) else 0
            with contextlib.suppress(TimeoutError):  # slot.halt: shutdown, or the operator disabled the channel
                await asyncio.wait_for(slot.halt.wait(), timeout=max(interval, rate))

    @staticmethod
    def _poll_again_now(out: CallOutcome) -> bool:
        """A poll that waited (a long poll the platform held) or found work (emitted, or advanced its
        workspace cursor) is followed at once; an idle short poll waits the interval."""
        state = out.state
        if state is None:
            return False
        return state.http_wait_s >= LONG_POLL_WAIT_S or bool(out.messages) or bool(state.workspace.writes)
