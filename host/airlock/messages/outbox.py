"""``OutboxSender``: delivers the outbox through the channels, in order per conversation, at the platform's
rate, with retries by error class (``messages.retry``) and dead letters.

Loop: take the due entries (the oldest pending one of each conversation, ``MessageLog.due_outbox``, which on
PostgreSQL claims them for this node), skip a conversation already in flight, take a send-rate token
(``messages.ratelimit``; no token: look again when one is due), and run the channel's callback. Entries taken but not
started are released at once (another node may send them); the claims of running sends are renewed every
``RENEW_S`` so that a slow callback keeps its entry. The outcome is written back: sent; rescheduled after the
verdict's delay; or failed (a dead letter, ``airlock messages list --failed``, ``airlock messages retry ID``).
Status updates get one try: a typing indicator shown late is worse than none.
A reply sent through world 0.2.0's ``delivery`` leaves the platform's message id on its entry
(``OutboxEntry.platform_message_id``), which its edits and reactions use.

``wait_first_attempt(id)`` lets the in-process API (``host.respond``) hand the first attempt's ``CallOutcome`` to
its caller while retries go on in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..channels.channel import CallOutcome
from ..errors import AirlockError, StateUnavailable
from .log import OUTBOX_CLAIM_S, MessageLog
from .model import OutboxEntry, OutboxKind, new_id
from .ratelimit import SendLimiter, SendRate
from .retry import classify

log = logging.getLogger("airlock.outbox")

EDIT_INTERVAL_S = 1.0
"""Edits (``kind == "edit"``) of one conversation go out at least this far apart, in seconds, counted when they are
sent (``messages.streaming`` paces their due times the same way; this holds it whatever delayed a send)."""
IDLE_S = 1.0
"""Longest sleep between looks at the outbox when nothing wakes the sender (other processes' appends)."""
BATCH = 64
RENEW_S = OUTBOX_CLAIM_S / 3
"""Seconds between renewals of the claims of this sender's in-flight sends (a third of the claim: two renewals may
be missed, e.g. to a database blip, before a claim expires under a running send)."""


@dataclass(frozen=True)
class Outbound:
    """A new outbox entry (``MessageLog.append_outbox``)."""

    instance: str
    conversation: str
    kind: OutboxKind
    payload: dict[str, Any]
    in_reply_to: str | None = None
    idempotency_key: str | None = None
    id: str = field(default_factory=new_id)
    not_before: float = 0.0
    """Unix seconds before which the entry is not sent (a streamed reply's paced edit, ``messages.streaming``)."""


Deliver = Callable[[OutboxEntry], Awaitable[CallOutcome]]
"""Runs one outbox entry's callback (``ChannelManager.deliver``)."""


class OutboxSender:
    """The background task delivering the outbox (module docstring). ``start()`` on the event loop; ``stop()``."""

    def __init__(self, log: MessageLog, deliver: Deliver, rate_for: Callable[[str], SendRate], *,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 edit_interval_s: float = EDIT_INTERVAL_S) -> None:
        self.log = log
        self._deliver = deliver
        self._rate_for = rate_for
        self._clock = clock
        self._rng = rng or random.Random()
        self._limiters: dict[str, SendLimiter] = {}
        self._edit_interval_s = edit_interval_s
        self._last_edit: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._sending: dict[str, str] = {}  # conversation -> entry id being sent (its claim is renewed)
        self._first: dict[str, asyncio.Future[CallOutcome]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._renewed_at = clock()
        self.sent = 0
        self.failed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="airlock-outbox")

    async def stop(self) -> None:
        """Stop looking for work and let in-flight sends finish (their outcome is recorded)."""
        # A flag, not Task.cancel(): on Python 3.11 asyncio.wait_for can swallow a cancellation that arrives as its
        # inner wait completes (CPython gh-86296), which left the loop running and stop() waiting forever.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    def wake(self) -> None:
        """New entries were appended (or retried): look at once."""
        self._wake.set()

    def wait_first_attempt(self, entry_id: str) -> asyncio.Future[CallOutcome]:
        """A future resolved with the outcome of the entry's next attempt."""
        fut = self._first.get(entry_id)
        if fut is None:
            fut = self._first[entry_id] = asyncio.get_running_loop().create_future()
        return fut

    def forget(self, entry_id: str) -> None:
        """Drop a waiter registered with ``wait_first_attempt`` that will not be needed."""
        fut = self._first.pop(entry_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    async def _run(self) -> None:
        while not self._stopping:
            next_look = await self._dispatch_due()
            self._wake.clear()
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next_look):
                    await self._wake.wait()

    async def _dispatch_due(self) -> float:
        """Start every due send that may go now; return the seconds until the next look."""
        try:
            due = await asyncio.to_thread(self.log.due_outbox, self._clock(), BATCH)
        except StateUnavailable as exc:  # the database is down: an expected, transient state, one line
            log.warning("outbox: %s", exc)
            return IDLE_S
        except Exception:  # a storage hiccup must not kill the sender; the entries stay pending
            log.exception("outbox: could not read the due entries")
            return IDLE_S
        next_look = IDLE_S
        unsent: list[str] = []
        for entry in due:
            if entry.conversation in self._in_flight:
                unsent.append(entry.id)
                continue
            if entry.kind == "edit":
                gap = self._last_edit.get(entry.conversation, -math.inf) + self._edit_interval_s - self._clock()
                if gap > 0:
                    next_look = min(next_look, gap)
                    unsent.append(entry.id)
                    continue
            wait = self._limiter(entry.instance).acquire(entry.conversation)
            if wait > 0:
                next_look = min(next_look, wait)
                unsent.append(entry.id)
                continue
            if entry.kind == "edit":
                self._last_edit[entry.conversation] = self._clock()
            task = asyncio.get_running_loop().create_task(self._send(entry))
            self._in_flight[entry.conversation] = task
            self._sending[entry.conversation] = entry.id
        await self._hold_claims(unsent)
        return min(next_look, RENEW_S) if self._in_flight else next_look

    async def _hold_claims(self, unsent: list[str]) -> None:
        """Release the claims on entries taken but not started; renew those of running sends when due."""
        try:
            if unsent:
                await asyncio.to_thread(self.log.release_outbox, unsent)
            now = self._clock()
            if self._sending and now - self._renewed_at >= RENEW_S:
                self._renewed_at = now
                await asyncio.to_thread(self.log.renew_outbox, list(self._sending.values()), now + OUTBOX_CLAIM_S)
        except Exception as exc:  # unreleased claims expire on their own; a renewal is retried on the next look
            log.warning("outbox: could not update the claims: %s", exc)

    def _limiter(self, instance: str) -> SendLimiter:
        limiter = self._limiters.get(instance)
        if limiter is None:
            limiter = self._limiters[instance] = SendLimiter(self._rate_for(instance))
        return limiter

    async def _send(self, entry: OutboxEntry) -> None:
        try:
            try:
                out = await self._deliver(entry)
            except AirlockError as exc:  # e.g. the channel is not active
                out = CallOutcome(callback=entry.kind, error=exc)
            await asyncio.to_thread(self._record, entry, out)
            fut = self._first.pop(entry.id, None)
            if fut is not None and not fut.done():
                fut.set_result(out)
        finally:
            self._in_flight.pop(entry.conversation, None)
            self._sending.pop(entry.conversation, None)
            self._wake.set()  # the conversation's next entry may go now

    def _record(self, entry: OutboxEntry, out: CallOutcome) -> None:
        now = self._clock()
        if out.error is None:
            # the platform's id of the message a reply became (world 0.2.0's delivery), for later edits
            platform_id = out.value if entry.kind in ("respond", "broadcast") and isinstance(out.value, str) else None
            self.log.mark_sent(entry.id, now, platform_id)
            self.sent += 1
            return
        answers = out.state.platform_answers() if out.state is not None else []
        tries = entry.attempts + 1
        verdict = classify(out.error, answers, tries, self._rng)
        error = _safe(out.error)
        if entry.kind == "status" or verdict.error_class == "permanent":
            self.log.dead_letter(entry.id, error, now)
            self.failed += 1
            log.warning("[%s] %s %s failed for good after %d tries: %s", entry.instance, entry.kind, entry.id, tries,
                        error)
            return
        self.log.reschedule(entry.id, now + verdict.delay_s, error, now)
        log.info("[%s] %s %s: %s, retry in %.1f s (try %d)", entry.instance, entry.kind, entry.id,
                 verdict.error_class, verdict.delay_s, tries)


def _safe(error: AirlockError) -> str:
    """One line, bounded: the guest's error text is already secret-free (redacted by the http capability)."""
    return " ".join(str(error).split())[:500]
