"""Wake agents waiting on other nodes: which agents got new entries, told over PostgreSQL's LISTEN/NOTIFY.

An agent waiting in ``Inbox.lease`` is woken by its own process's appends (``Inbox.appended``); an entry appended on
another node of the cluster would reach it only at its next look (every second). So the transaction that makes new
entries visible to leases also sends ``NOTIFY airlock_appended`` (``state.postgres.APPENDED_CHANNEL``): the
commit of ``PostgresMessageLog``, or, with the Redis bus, the publisher's transaction that records the entries as
added to their streams (``messages.redisbus``: a lease reads the stream, so a wake-up before the XADD would find
nothing). PostgreSQL delivers a notification when its transaction commits, never for one rolled back. Every node
listens (``state.cluster.ClusterSync``, on its change-listening connection) and wakes that many waiters of each
agent (``Inbox.wake``). A notification lost (the listening connection dropped) costs the old latency: waiters still
look again every second.

Payload: ``"{sender} {body}"`` from a commit. ``sender`` is :data:`SENDER`, this process's random id: the process
that committed has woken its own waiters already (``Inbox.appended``), so its listener skips its own notifications
(:func:`from_here`) rather than waking them again for a lease that finds nothing (one more transaction per commit
under load). The Redis bus's publisher sends ``body`` alone: it may publish entries other processes committed
(a sweep after a node died), whose waiters here nobody woke. ``body``: JSON ``{"agent name": count, ...}``;
:data:`EVERYONE` (wake every waiter) when that would exceed :data:`MAX_PAYLOAD_BYTES` (PostgreSQL refuses payloads
of 8000 bytes or more: NOTIFY's documentation). A payload without a sender (an older node of a rolling upgrade) is
understood as before, or wakes everyone.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..state.postgres import APPENDED_CHANNEL

__all__ = ["EVERYONE", "MAX_PAYLOAD_BYTES", "SENDER", "from_here", "notify_appended", "parse", "payload"]

MAX_PAYLOAD_BYTES = 7900
"""Largest payload sent (bytes of UTF-8): under PostgreSQL's limit of 8000 bytes, with room to spare."""
EVERYONE = "*"
"""The payload body that wakes every waiter of every agent (too many agents to name)."""
SENDER = secrets.token_hex(8)
"""This process's id at the head of its payloads (16 hex digits, new at every start)."""
_SENDER_LEN = len(SENDER)


def payload(agents: Iterable[str], *, signed: bool = True) -> str:
    """The payload for entries routed to ``agents`` (one name per entry): :data:`SENDER` (when ``signed``), then
    counts per agent or :data:`EVERYONE`; at most :data:`MAX_PAYLOAD_BYTES`."""
    head = f"{SENDER} " if signed else ""
    text = head + json.dumps(dict(Counter(agents)), separators=(",", ":"))
    return text if len(text.encode()) <= MAX_PAYLOAD_BYTES else head + EVERYONE


def notify_appended(conn: Any, agents: Iterable[str], *, signed: bool = True) -> None:
    """Inside the transaction that makes the entries visible: tell every node (sent when it commits). ``conn``: a
    psycopg connection; nothing is sent for no entries. ``signed``: this process woke the entries' waiters here
    itself, so its own listener may skip the notification (module docstring)."""
    names = list(agents)
    if names:
        conn.execute("SELECT pg_notify(%s, %s)", (APPENDED_CHANNEL, payload(names, signed=signed)))


def _split(text: str) -> tuple[str | None, str]:
    head, sep, body = text.partition(" ")
    if sep and len(head) == _SENDER_LEN and all(c in "0123456789abcdef" for c in head):
        return head, body
    return None, text  # no sender: an older node's payload


def from_here(text: str) -> bool:
    """Whether this process sent the payload (its waiters were woken when it appended)."""
    return _split(text)[0] == SENDER


def parse(text: str) -> dict[str, int] | None:
    """``{agent: count}`` from a payload; None means wake every waiter (:data:`EVERYONE`, or a payload this version
    does not understand: a spurious wake-up costs one look, a missed one a second)."""
    try:
        doc = json.loads(_split(text)[1])
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    counts = {str(k): v for k, v in doc.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0}
    return counts if len(counts) == len(doc) else None
