"""Replace a running channel by another version of itself without a restart (upgrade, rollback, new settings).

:func:`replace`, in this order:

1. the new component is loaded (compiled, or read from the compile cache) while the old version keeps serving; a
   component that does not load changes nothing;
2. a *swap* is opened for the channel: a webhook for one of its paths that finds no active channel waits for the
   swap to end (at most :data:`SWAP_HOLD_S`), then goes to whichever version is running; past that bound it is
   answered 503 with ``Retry-After`` (the documented retry; platforms redeliver);
3. the old version stops as a disable does (``lifecycle.stop_slot``): its websocket and poller stop, webhooks already
   queued for it are handed to the new version once it runs (``inbound.server``), callbacks in flight finish
   (bounded by :data:`SWAP_DRAIN_S`), then its on-shutdown;
4. the new version starts as at load (secrets check, on-start, webhooks, poller, websocket);
5. if the old version was active and the new one is not (its on-start failed, a secret it needs is missing, the
   host cannot run it), the old version is started again at once: an automatic rollback, with the reason.

Workspace, pairings, secrets, messages and health history belong to the instance, not the version: the new
version finds them as the old one left them. A channel the operator disabled is replaced but stays disabled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..manifest import CapabilitiesFile
from .channel import Channel
from .lifecycle import DISABLED, stop_slot

if TYPE_CHECKING:
    from ..runtime.values import HttpEndpoint
    from .manager import ChannelManager
    from .slot import ChannelSlot

__all__ = ["SWAP_DRAIN_S", "SWAP_HOLD_S", "Swap", "SwapResult", "SwapTimeout", "replace", "wait_route"]

log = logging.getLogger("airlock.channels")

SWAP_DRAIN_S = 10.0
"""Seconds a swap waits for the old version's callbacks in flight (a long poll, a slow webhook) before going on."""
SWAP_HOLD_S = 15.0
"""Seconds a webhook for a channel being swapped waits for the new version before it is answered 503."""


class SwapTimeout(Exception):
    """A webhook waited :data:`SWAP_HOLD_S` for a swap that had not ended."""


@dataclass
class Swap:
    """An open swap: ``done`` is set when it ends; ``paths`` are the webhook paths the old version served."""

    done: asyncio.Event
    paths: frozenset[str]


@dataclass
class SwapResult:
    """``started``: the new version runs (or stays disabled, as the old one was); else ``reason`` says why it did
    not start and ``slot`` is the old version, started again."""

    started: bool
    slot: ChannelSlot
    reason: str | None = None


async def replace(manager: ChannelManager, name: str, wasm: Path, caps: CapabilitiesFile, *,
                  version: str) -> SwapResult:
    """Replace loaded channel ``name`` by ``wasm`` + ``caps`` (module docstring). Raises ComponentError when the
    component does not load (nothing changed), ConfigError for an unknown channel or one being swapped."""
    from ..errors import ConfigError

    old = manager.slots.get(name)
    if old is None:
        raise ConfigError(f"no channel named {name!r} is loaded")
    if name in manager.swaps:
        raise ConfigError(f"channel {name!r} is being replaced already")
    loaded = await asyncio.to_thread(manager.runtime.load, wasm)
    channel = Channel(caps, loaded, manager.services, instance=name, version=version)
    swap = Swap(asyncio.Event(), frozenset(old.endpoints))
    manager.swaps[name] = swap
    try:
        return await _swap(manager, name, old, channel)
    finally:
        del manager.swaps[name]
        swap.done.set()


async def _swap(manager: ChannelManager, name: str, old: ChannelSlot, channel: Channel) -> SwapResult:
    async with old.lifecycle:
        was_active, was_disabled = old.active, old.disabled
        if was_disabled:
            new = manager.new_slot(channel)
            new.disabled, new.reason = True, DISABLED
            manager.slots[name] = new
            return SwapResult(True, new)
        await stop_slot(manager, old, final_reason=f"replaced by version {channel.version}", bound_s=SWAP_DRAIN_S)
    new = manager.new_slot(channel)
    manager.slots[name] = new
    await _start(manager, new)
    if new.active or not was_active:
        log.info("channel %s: version %s running (was %s)", name, channel.version, old.channel.version)
        return SwapResult(True, new)
    reason = new.reason.removeprefix("inactive: ")
    log.error("channel %s: version %s did not start (%s); rolling back to %s", name, channel.version, reason,
              old.channel.version)
    back = manager.new_slot(old.channel)
    manager.slots[name] = back
    await _start(manager, back)
    return SwapResult(False, back, reason)


async def _start(manager: ChannelManager, slot: ChannelSlot) -> None:
    try:
        await manager._activate(slot)
    except Exception as exc:  # a start that breaks in the host (a socket that cannot open) is a failed start
        log.exception("channel %s: start failed", slot.channel.name)
        slot.active, slot.reason = False, f"inactive: start failed: {type(exc).__name__}"


async def wait_route(manager: ChannelManager, path: str) -> tuple[ChannelSlot, HttpEndpoint] | None:
    """For a webhook path no active channel serves: if a swap holds it, wait for the swap to end and route again
    (None when the new version does not serve the path); None at once when no swap holds it. Raises SwapTimeout
    after :data:`SWAP_HOLD_S`."""
    for swap in list(manager.swaps.values()):
        if path in swap.paths:
            try:
                await asyncio.wait_for(swap.done.wait(), SWAP_HOLD_S)
            except TimeoutError:
                raise SwapTimeout(path) from None
            return manager.route(path)
    return None


async def wait_replaced(manager: ChannelManager, slot: ChannelSlot) -> ChannelSlot | None:
    """The slot that replaced ``slot`` once its swap ends (None if it was not swapped, or nothing replaced it).
    Raises SwapTimeout after :data:`SWAP_HOLD_S`."""
    name = slot.channel.name
    swap = manager.swaps.get(name)
    if swap is not None:
        try:
            await asyncio.wait_for(swap.done.wait(), SWAP_HOLD_S)
        except TimeoutError:
            raise SwapTimeout(name) from None
    current = manager.slots.get(name)
    return current if current is not None and current is not slot and current.active else None
