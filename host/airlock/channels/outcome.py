"""What one callback did (``CallOutcome``) and a message on its way to the agent (``InboundMessage``); split out
of ``channels.channel`` to keep that module small, and re-exported there."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AirlockError
from ..runtime.values import EmittedMessage

if TYPE_CHECKING:
    from ..messages.model import NewEntry
    from ..runtime.instance import CallStats
    from .callstate import CallState


@dataclass(frozen=True)
class InboundMessage:
    """A message on its way to the agent: what the guest emitted plus the channel and attachment bytes."""

    channel: str
    message: EmittedMessage
    attachment_data: dict[str, bytes] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)
    id: str | None = None
    """The message log entry's id (None when the channel runs without a log, e.g. ``airlock invoke``)."""
    agent: str | None = None
    """The agent the log entry is routed to (None without a log)."""

    @property
    def metadata_json(self) -> str:
        return self.message.metadata_json


@dataclass
class CallOutcome:
    """What one callback did. ``error`` is None on success; ``value`` is the converted WIT result."""

    callback: str
    value: Any = None
    error: AirlockError | None = None
    messages: list[InboundMessage] = field(default_factory=list)
    state: CallState | None = None
    stats: CallStats | None = None
    attempts: int = 1
    elapsed_s: float = 0.0
    """Wall seconds of the whole call (every attempt; with ``settle``, the wait until durable)."""
    cpu_s: float = 0.0
    """CPU seconds the calling thread spent in the call (``time.thread_time``): unlike ``elapsed_s``, not
    inflated when the process is preempted, so it says what the callback costs the thread it runs on."""
    abandoned: str | None = None
    """Inline attempts only: why the attempt was dropped (the host function that needs a worker, or
    ``INLINE_DEADLINE``). Nothing was applied or logged; run the callback again on a worker."""
    pending: bool = False
    """Inline attempts only: the guest succeeded but its durable workspace writes are not applied yet
    (``Channel.complete``, on a worker thread)."""
    args: tuple[Any, ...] = ()
    """The WIT arguments of a ``pending`` outcome (a conflicting commit re-runs the callback with them)."""
    durable: Future[list[NewEntry]] | None = None
    """A staged commit not yet known durable (module docstring); ``Channel.settle``/``settled`` resolve it."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.abandoned is None and not self.pending
