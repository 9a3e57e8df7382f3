"""Operator lifecycle of a loaded channel: disable and enable (the admin API's switches).

Disable, in this order (``ChannelManager`` keeps the state in the channel's ``ChannelSlot``):

1. the slot is marked disabled and inactive, so ``ChannelManager.route`` no longer finds its paths: a new
   webhook answers 404 at once, and a webhook that was routed just before but is still queued for the
   channel's main lane is answered 404 when its turn comes (``manager.run_webhook`` checks again);
2. its websocket is closed (pending frames are dropped and logged) and a ``near:agent`` event queue stops
   driving polls; a "thinking" refresher of one of its messages finds the channel disabled and does nothing;
3. its poll loop ends: at once if it is waiting, after the current on-poll if one is running (a long poll
   may hold it for the platform's long-poll timeout);
4. the main lane is taken once, so every callback queued before the switch has finished; then on-shutdown
   runs if the channel was active, and its endpoints and verifier are forgotten.

Enable runs the same start-up as loading (``ChannelManager._activate``: secrets check, on-start, webhook
registration, poller, a new websocket runtime and event queue). The switch lives in memory: a restarted host
starts every installed channel. Disable and enable of one channel are serialized (``ChannelSlot.lifecycle``).

This is the manager's own lifecycle section in a file of its own: it uses the manager's private helpers
(``_run``, ``_activate``, ``_socket_for``) as the manager's methods do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .manager import ChannelManager
    from .slot import ChannelSlot

log = logging.getLogger("airlock.channels")

__all__ = ["DISABLED", "DISABLING", "disable", "enable", "secrets_changed", "stop_slot"]

DISABLING = "disabling: waiting for callbacks in flight"
"""``ChannelSlot.reason`` while steps 2-4 of a disable run."""
DISABLED = "disabled by the operator"
"""``ChannelSlot.reason`` of a disabled channel."""


def _known(manager: ChannelManager, name: str) -> ChannelSlot:
    slot = manager.slots.get(name)
    if slot is None:
        raise ConfigError(f"no channel named {name!r} is loaded")
    return slot


async def disable(manager: ChannelManager, name: str) -> ChannelSlot:
    """Disable channel ``name`` (module docstring). Idempotent. Raises ConfigError for an unknown name."""
    slot = _known(manager, name)
    async with slot.lifecycle:
        if slot.disabled:
            return slot
        await stop_slot(manager, slot, final_reason=DISABLED)
        log.info("channel %s disabled by the operator", name)
        return slot


async def stop_slot(manager: ChannelManager, slot: ChannelSlot, *, final_reason: str,
                    bound_s: float | None = None) -> bool:
    """Steps 1-4 of a disable (module docstring) for ``slot``; the caller holds ``slot.lifecycle``. With
    ``bound_s``, waiting for the poll in flight and the main lane stops after that many seconds (a callback still
    running then finishes in its worker thread; its effects are committed as usual, and on-shutdown is skipped).
    Returns False when the bound cut the wait short."""
    was_active = slot.active
    slot.disabled, slot.active, slot.reason = True, False, DISABLING
    slot.halt.set()
    finished = True
    try:
        async with asyncio.timeout(bound_s):
            if slot.socket is not None:
                await slot.socket.stop()
            if slot.event_queue is not None:
                await slot.event_queue.stop()
            await _end_poll(slot)
            async with slot.main_lane:
                if was_active:
                    out = await manager._run(slot.channel.shutdown)
                    if not out.ok:
                        log.warning("[%s] on-shutdown failed: %s", slot.channel.name, out.error)
    except TimeoutError:
        finished = False
        log.warning("channel %s: callbacks still running after %.0f s; going on without waiting for them",
                    slot.channel.name, bound_s or 0)
        if slot.poll_task is not None:
            slot.poll_task.cancel()
    slot.endpoints.clear()
    slot.poll_interval_s, slot.verifier, slot.reason = None, None, final_reason
    return finished


async def _end_poll(slot: ChannelSlot) -> None:
    task, slot.poll_task = slot.poll_task, None
    if task is None:
        return
    if not slot.in_poll:  # waiting for its next turn or for room on the bus: nothing to finish
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def enable(manager: ChannelManager, name: str) -> ChannelSlot:
    """Start channel ``name`` again, as at load (module docstring); it stays inactive, with the reason, if a
    secret is still missing or on-start fails. Idempotent. Raises ConfigError for an unknown name."""
    slot = _known(manager, name)
    async with slot.lifecycle:
        if slot.active:
            return slot
        slot.disabled, slot.halt, slot.reason = False, asyncio.Event(), "starting"
        slot.endpoints.clear()
        if slot.socket is not None:  # a stopped socket runtime (and event queue) does not start again
            slot.socket = manager._socket_for(slot)
        await manager._activate(slot)
        log.info("channel %s enabled by the operator: %s", name, slot.reason)
        return slot


async def secrets_changed(manager: ChannelManager) -> list[str]:
    """Start every channel that waited only for secrets now stored, and stop every active channel a required
    secret of which was removed (it waits, inactive, for the secret). Returns the names whose state changed."""
    changed = []
    for name, slot in list(manager.slots.items()):
        if slot.disabled or name in manager.swaps:
            continue
        missing = manager.missing_secrets(slot.channel.caps, name)
        if slot.active and missing:
            async with slot.lifecycle:
                reason = f"inactive: missing secrets {', '.join(missing)} (airlock secrets set NAME)"
                await stop_slot(manager, slot, final_reason=reason)
                slot.disabled = False  # not the operator's switch: the secret's return starts it again
            log.warning("channel %s %s", name, slot.reason)
            changed.append(name)
        elif not slot.active and not missing and slot.reason.startswith("inactive: missing secrets"):
            await enable(manager, name)
            changed.append(name)
    return changed
