"""``ChannelSlot``: one channel and its runtime state inside the ``ChannelManager`` (lanes, poll task, socket,
lease, operator switch)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..inbound.verifiers import Verifier
from ..runtime.values import HttpEndpoint
from .channel import Channel
from .event_queue import EventQueue
from .inline import InlineGuard
from .poll_lease import LeaseHolder
from .socket_runtime import SocketRuntime

__all__ = ["ChannelSlot"]


@dataclass
class ChannelSlot:
    """A channel and its runtime state inside the manager."""

    channel: Channel
    active: bool = False
    reason: str = "starting"
    endpoints: dict[str, HttpEndpoint] = field(default_factory=dict)
    poll_interval_s: float | None = None
    main_lane: asyncio.Lock = field(default_factory=asyncio.Lock)
    poll_task: asyncio.Task[None] | None = None
    socket: SocketRuntime | None = None
    polls: int = 0
    failures: int = 0
    verifier: Verifier | None = None
    """Webhook check built at registration (``inbound.verifiers``); None until then."""
    inline: InlineGuard = field(default_factory=InlineGuard)
    """Whether webhooks are attempted inline, with counters (module docstring)."""
    poll_lane: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held around every on-poll (timer polls and websocket-driven ones): never two at once."""
    event_queue: EventQueue | None = None
    """The websocket event queue of a ``near:agent`` component (``event_queue``), else None."""
    warnings: list[str] = field(default_factory=list)
    """Problems with the capabilities file that do not stop the channel (``activation.file_warnings``)."""
    disabled: bool = False
    """Disabled by the operator (``ChannelManager.disable``): not routed, no callbacks run."""
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to end the poll loop (disable, shutdown)."""
    in_poll: bool = False
    """True while an on-poll callback runs (disable waits for it instead of cancelling)."""
    lifecycle: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serializes disable and enable of this channel."""
    lease: LeaseHolder | None = None
    """With several workers or nodes: the lease its poller and websocket run under (``poll_lease``)."""
