"""Run a channel's poller and websocket in one process of the deployment: the one holding its lease.

With several workers (``airlock serve --workers N``) or nodes, every process loads every channel and answers its
webhooks, but a channel instance's on-poll loop and its websocket run only where the lease ``poll:<channel>``
(``state.leases``) is held:

- A process tries to take the lease until it gets it (below, how often). On getting it, it
  reloads the channel's durable workspace (``Workspace.reload``): the previous holder advanced the poll cursor in
  the database, and this process's copy in memory is as old as its start (a stale cursor would poll from an old
  offset: the cursor would go backwards).
- The holder renews every ``renew_s``; a renewal that fails (the lease was taken over, or the database was
  unreachable until the lease ran out) means the lease is lost: the poll loop and the websocket stop before the
  next poll (the loop checks ``held()`` before each one), and the process goes back to trying to take it.
- Every commit made by the holder's tasks carries the lease's fencing token (``state.leases.COMMIT_FENCE``, a
  context variable the poll loop and the websocket's tasks inherit; ``Workspace.commit`` passes it to
  ``MessageLog.commit``), which checks it in the commit's own transaction: a poll that was still running when the
  lease was lost cannot commit its cursor (``LeaseLost``), so two processes never both commit one.
- A process waiting for the lease reads when the holder's lease runs out and tries again then (at most every
  ``renew_s``): when the holder dies, its lease expires after at most ``ttl_s`` (its last renewal was before the
  death) and another process takes it as it expires, so the poller resumes within ``ttl_s`` plus one poll (and
  :data:`TAKEOVER_MARGIN_S` and a reload of the workspace). A holder that stops cleanly releases the lease: the
  next process takes it on its next try, within ``renew_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AirlockError, LeaseLost
from ..state.leases import COMMIT_FENCE, DEFAULT_TTL_S, Fence, Lease, Leases

if TYPE_CHECKING:
    from .manager import ChannelManager
    from .slot import ChannelSlot

__all__ = ["MIN_RETRY_S", "TAKEOVER_MARGIN_S", "LeaseHolder", "PollLeasing", "holder_id", "run_leased"]

log = logging.getLogger("airlock.channels")

TAKEOVER_MARGIN_S = 0.05
"""Seconds after the holder's lease runs out (by this process's clock) at which a waiting process tries to take it:
a little later than the expiry, so the try does not come a hair too early and wait a whole ``renew_s`` more."""
MIN_RETRY_S = 0.05
"""Shortest wait between two tries to take a lease (a lease that expired but is not yet taken: one more try soon)."""

def holder_id() -> str:
    """A holder id unique to this process incarnation (``host/pid/random``): a restarted process never finds its
    predecessor's lease "already its own" (``state.leases``)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


@dataclass(frozen=True)
class PollLeasing:
    """How a host leases its pollers: the lease store, this process's holder id, the lease time to live."""

    leases: Leases
    holder: str
    ttl_s: float = DEFAULT_TTL_S

    @property
    def renew_s(self) -> float:
        """Renew (and retry acquiring) every third of the TTL: two renewals may fail before the lease runs out."""
        return self.ttl_s / 3


class LeaseHolder:
    """One channel's lease in this process. Blocking lease calls run in threads; the rest on the event loop."""

    def __init__(self, leasing: PollLeasing, name: str, clock: Callable[[], float] = time.time) -> None:
        self.leasing = leasing
        self.name = name
        self._clock = clock
        self.lease: Lease | None = None
        self.takeovers = 0
        """Times this process took the lease (``/health``)."""

    @property
    def fence(self) -> Fence:
        """The fence commits check; with no lease held, a token no lease ever has (the commit fails)."""
        return self.lease.fence if self.lease is not None else Fence(self.name, -1)

    def held(self) -> bool:
        """Held and, by this process's clock, not expired (checked before each poll)."""
        return self.lease is not None and self.lease.expires_at > self._clock()

    async def acquire(self, halt: asyncio.Event) -> bool:
        """Try every ``renew_s`` until the lease is ours (True) or ``halt`` is set (False)."""
        while not halt.is_set():
            try:
                self.lease = await asyncio.to_thread(self.leasing.leases.acquire, self.name, self.leasing.holder,
                                                     self.leasing.ttl_s, self._clock())
            except AirlockError as exc:  # the database is unreachable: try again later
                log.warning("lease %s: cannot acquire: %s", self.name, exc)
            if self.lease is not None:
                self.takeovers += 1
                log.info("lease %s taken (token %d): polling here", self.name, self.lease.token)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), await self._next_try_s())
        return False

    async def _next_try_s(self) -> float:
        """Seconds until the next try: when the current holder's lease runs out (+ :data:`TAKEOVER_MARGIN_S`), but
        at least :data:`MIN_RETRY_S` and at most ``renew_s``. A live holder renews, so its lease keeps running out
        ``ttl_s`` ahead and this process looks every ``renew_s``; a dead holder's lease stops moving, and this
        process takes it as it expires, not up to ``renew_s`` later (takeover within ``ttl_s`` of the death)."""
        try:
            current = await asyncio.to_thread(self.leasing.leases.get, self.name)
        except AirlockError:  # the database is unreachable: the next try will say so
            return self.leasing.renew_s
        if current is None:  # released and gone meanwhile: try again soon
            return MIN_RETRY_S
        until_free = current.expires_at - self._clock() + TAKEOVER_MARGIN_S
        return min(self.leasing.renew_s, max(MIN_RETRY_S, until_free))

    async def keep(self) -> None:
        """Renew every ``renew_s``; return once the lease is lost (taken over, or expired while unreachable)."""
        while self.lease is not None:
            await asyncio.sleep(self.leasing.renew_s)
            lease = self.lease
            try:
                self.lease = await asyncio.to_thread(self.leasing.leases.renew, lease, self.leasing.ttl_s,
                                                     self._clock())
            except LeaseLost:
                self.lease = None
            except AirlockError as exc:
                log.warning("lease %s: cannot renew: %s", self.name, exc)
                if lease.expires_at <= self._clock():
                    self.lease = None
        log.warning("lease %s lost: polling stops here", self.name)

    def release(self) -> None:
        """Give the lease up at once (shutdown, disable), so another process takes it without waiting for expiry.
        Blocking (one short write)."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            self.leasing.leases.release(lease)
        except AirlockError as exc:  # it expires on its own
            log.warning("lease %s: cannot release: %s", self.name, exc)


async def run_leased(manager: ChannelManager, slot: ChannelSlot, holder: LeaseHolder) -> None:
    """The poller and websocket of ``slot``, run while this process holds its lease (module docstring); the
    manager's ``poll_task`` for the slot (disable and shutdown end it as they end a poll loop)."""
    COMMIT_FENCE.set(holder)  # this task's context: the poll loop, the socket's tasks and their callbacks
    try:
        while await holder.acquire(slot.halt):
            await asyncio.to_thread(slot.channel.workspace.reload)  # the last holder's cursor
            await _run_while_held(manager, slot, holder)
            if slot.halt.is_set():
                break
            if slot.socket is not None:  # a stopped socket runtime does not start again
                slot.socket = manager._socket_for(slot)
    finally:
        holder.release()


async def _run_while_held(manager: ChannelManager, slot: ChannelSlot, holder: LeaseHolder) -> None:
    """Until the lease is lost, the poll loop ends, or the slot halts; then stop the socket and the poll loop (a
    poll under way finishes: its commit is fenced)."""
    poll = (asyncio.create_task(manager._poll_loop(slot, holder), name=f"poll-{slot.channel.name}")
            if slot.poll_interval_s is not None else None)
    await manager._start_socket(slot)
    keep = asyncio.create_task(holder.keep(), name=f"lease-renew-{slot.channel.name}")
    halted = asyncio.create_task(slot.halt.wait())
    try:
        await asyncio.wait({t for t in (poll, keep, halted) if t is not None}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        keep.cancel()
        halted.cancel()
        if slot.socket is not None:
            await slot.socket.stop()
        if slot.event_queue is not None:
            await slot.event_queue.stop()
        if poll is not None:
            if not slot.in_poll:
                poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
