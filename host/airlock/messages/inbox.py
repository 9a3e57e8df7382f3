"""``Inbox``: the agents' side of the message log on an event loop: leases with waiting, acks, backpressure.

Every agent (the in-process one behind ``host.messages()``, HTTP agents, push agents) takes messages through
``lease``: entries routed to it, oldest first, each leased for the visibility timeout; an entry not acknowledged
in time is offered again (at-least-once). Waiting: each waiting lease is a future in its agent's list; entries
appended for an agent wake as many of that agent's waiters as there are entries (not every waiter of every agent:
with 8 waiting agents, waking all made 8 leases, 8 thread hops and 8 SQLite transactions per message), a released
lease wakes every waiter, and a timer looks again for leases that expired. Entries appended on another node of a
cluster wake the waiters the same way when that node's NOTIFY arrives (``wake``, ``messages.wakeup``). An
acknowledgement makes nothing ready (``lease`` does not hold back a conversation behind an unacknowledged entry), so
it wakes no one. A generation count per agent closes the gap between an empty lease and the wait: an append in
between makes the lease look again at once instead of sleeping through it.

Backpressure: ``has_room()`` is false once ``capacity`` entries are unacknowledged; webhooks then answer 503 with
Retry-After and pollers wait (``wait_for_room``). The count is kept in memory (+ on append, - on ack) and
refreshed from the log every :data:`REFRESH_S` seconds in a worker thread, so a webhook never pays for a COUNT query
and the event loop never waits on the database. While the log is unreachable (``errors.StateUnavailable``:
PostgreSQL down), ``has_room()`` is false: webhooks get 503 and pollers wait, until a refresh succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import StateUnavailable
from .log import MessageLog
from .model import Entry

RETRY_AFTER_S = 5
"""Retry-After (seconds) of a webhook refused for backpressure."""
REFRESH_S = 1.0
"""Seconds between refreshes of the backlog count from the log (other processes' appends and acks)."""
MAX_LEASE_BATCH = 100


class Inbox:
    """Async access to the log for agents. Create on the event loop that uses it."""

    def __init__(self, log: MessageLog, capacity: int = 1000, *, visibility_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError("inbox capacity must be at least 1")
        self.log = log
        self.capacity = capacity
        self.visibility_s = visibility_s
        self._clock = clock
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._generation: Counter[str] = Counter()
        self._released = 0
        self._backlog = log.backlog()
        self._refreshed = time.monotonic()
        self._refreshing: asyncio.Task[None] | None = None
        self.available = True
        """False from a refresh that found the log unreachable until one that reached it."""
        self.delivered = 0

    # ---- backpressure ----------------------------------------------------------------------------------------------
    def has_room(self) -> bool:
        """False when ``capacity`` or more entries are unacknowledged, or the log was unreachable at the last
        refresh. Never blocks: a stale count starts a refresh in a worker thread (module docstring)."""
        if time.monotonic() - self._refreshed > REFRESH_S and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh(), name="airlock-inbox-refresh")
        return self.available and self._backlog < self.capacity

    def unavailable(self) -> None:
        """A write to the log found it unreachable: refuse at once (``has_room`` false) until a refresh, at most
        :data:`REFRESH_S` from now, reaches it again; the next webhooks need not each wait for a connection."""
        self.available = False
        self._refreshed = time.monotonic()

    async def _refresh(self) -> None:
        try:
            self._backlog = await asyncio.to_thread(self.log.backlog)
            self.available = True
        except StateUnavailable:
            self.available = False
        finally:
            self._refreshed = time.monotonic()

    def qsize(self) -> int:
        """Entries waiting to be handed out (neither leased nor acknowledged), read from the log."""
        return self.log.waiting()

    def unacknowledged(self) -> int:
        """Entries not yet acknowledged (the backpressure count), read from the log."""
        self._backlog = self.log.backlog()
        self._refreshed = time.monotonic()
        return self._backlog

    async def wait_for_room(self, poll_s: float = 0.2) -> None:
        while not self.has_room():
            await asyncio.sleep(poll_s)

    # ---- producers -------------------------------------------------------------------------------------------------
    def appended(self, count: int, agents: Sequence[str] | None = None) -> None:
        """A callback committed ``count`` entries routed to ``agents`` (one name per entry): count them and wake as
        many waiters of each agent. ``agents`` None (not known): wake every waiter. Call on the event loop."""
        if count <= 0:
            return
        self._backlog += count
        self.wake(None if agents is None else Counter(agents))

    def wake(self, agents: Mapping[str, int] | None) -> None:
        """Entries were appended for ``agents`` (name -> count): wake as many waiters of each (None: every waiter).
        Counts nothing in the backlog: ``appended`` does for this process's appends; another node's appends, told
        over NOTIFY (``messages.wakeup``), are counted by the next refresh from the log. Call on the event loop."""
        if agents is None:
            self._wake_all()
            return
        for agent, n in agents.items():
            self._generation[agent] += 1
            waiters = self._waiters.get(agent, [])
            while waiters and n > 0:
                fut = waiters.pop(0)
                if not fut.done():
                    fut.set_result(None)
                    n -= 1

    def _wake_all(self) -> None:
        self._released += 1
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            waiters.clear()

    # ---- agents ----------------------------------------------------------------------------------------------------
    async def lease(self, agent: str, limit: int = 1, wait_s: float = 0.0,
                    visibility_s: float | None = None) -> list[Entry]:
        """Up to ``limit`` (1..100) entries for ``agent``, waiting up to ``wait_s`` seconds for the first one.

        Raises ValueError for a limit out of range."""
        if not 1 <= limit <= MAX_LEASE_BATCH:
            raise ValueError(f"limit must be 1..{MAX_LEASE_BATCH}")
        vis = self.visibility_s if visibility_s is None else visibility_s
        deadline = time.monotonic() + wait_s
        while True:
            seen = (self._generation[agent], self._released)
            entries: list[Entry] | None = self._nowait("try_lease", agent, limit, vis, self._clock())
            if entries is None:
                entries = await asyncio.to_thread(self.log.lease, agent, limit, vis, self._clock())
            elif entries:
                await asyncio.sleep(0)  # an agent that never waits must still let the loop run between messages
            remaining = deadline - time.monotonic()
            if entries or remaining <= 0:
                self.delivered += len(entries)
                return entries
            if (self._generation[agent], self._released) != seen:
                continue  # appended (or released) while the lease looked: look again now
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[agent].append(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    # leases of others expire without a wake-up: look again at least every second
                    async with asyncio.timeout(min(remaining, 1.0)):
                        await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters[agent].remove(waiter)

    async def get(self, agent: str) -> Entry:
        """The next entry for ``agent``, waiting as long as it takes."""
        while True:
            entries = await self.lease(agent, 1, wait_s=30.0)
            if entries:
                return entries[0]

    async def ack(self, entry_id: str, lease_token: str | None = None) -> bool:
        """Acknowledge an entry (False when unknown, acked already, or leased under another token)."""
        done = self._nowait("try_ack", entry_id, lease_token, self._clock())
        if done is None:
            done = await asyncio.to_thread(self.log.ack, entry_id, lease_token, self._clock())
        if done:
            self._backlog = max(0, self._backlog - 1)
        return bool(done)

    async def ack_many(self, items: Sequence[tuple[str, str | None]]) -> list[bool]:
        """Acknowledge a batch in one transaction (``MessageLog.ack_many``): one result per ``(entry_id,
        lease_token)``, in order, each as ``ack``'s."""
        done = self._nowait("try_ack_many", items, self._clock())
        if done is None:
            done = await asyncio.to_thread(self.log.ack_many, items, self._clock())
        self._backlog = max(0, self._backlog - sum(done))
        return list(done)

    def _nowait(self, name: str, *args: Any) -> Any:
        """The log's call that never waits (``SqliteMessageLog.try_lease`` / ``try_ack`` / ``try_ack_many``: on this
        thread, no hand-off to a worker thread and back), or None: the log has none, or it would have had to wait."""
        fn = getattr(self.log, name, None)
        return fn(*args) if fn is not None else None

    async def release(self, entry_id: str, lease_token: str | None = None) -> bool:
        """Give a lease back so the entry is offered again at once."""
        done = await asyncio.to_thread(self.log.release, entry_id, lease_token)
        if done:
            self._wake_all()  # its agent is not known here; releases are rare
        return done

    def acked(self) -> None:
        """An entry was acknowledged elsewhere (with a reply, ``MessageLog.ack_and_append``)."""
        self._backlog = max(0, self._backlog - 1)
