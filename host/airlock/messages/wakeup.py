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

Payload: JSON ``{"agent name": count, ...}``; :data:`EVERYONE` (wake every waiter) when that would exceed
:data:`MAX_PAYLOAD_BYTES` (PostgreSQL refuses payloads of 8000 bytes or more: NOTIFY's documentation).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..state.postgres import APPENDED_CHANNEL

__all__ = ["EVERYONE", "MAX_PAYLOAD_BYTES", "notify_appended", "parse", "payload"]

MAX_PAYLOAD_BYTES = 7900
"""Largest payload sent (bytes of UTF-8): under PostgreSQL's limit of 8000 bytes, with room to spare."""
EVERYONE = "*"
"""The payload that wakes every waiter of every agent (too many agents to name)."""


def payload(agents: Iterable[str]) -> str:
    """The payload for entries routed to ``agents`` (one name per entry): counts per agent, or :data:`EVERYONE`."""
    text = json.dumps(dict(Counter(agents)), separators=(",", ":"))
    return text if len(text.encode()) <= MAX_PAYLOAD_BYTES else EVERYONE


def notify_appended(conn: Any, agents: Iterable[str]) -> None:
    """Inside the transaction that makes the entries visible: tell every node (sent when it commits). ``conn``: a
    psycopg connection; nothing is sent for no entries."""
    names = list(agents)
    if names:
        conn.execute("SELECT pg_notify(%s, %s)", (APPENDED_CHANNEL, payload(names)))


def parse(text: str) -> dict[str, int] | None:
    """``{agent: count}`` from a payload; None means wake every waiter (:data:`EVERYONE`, or a payload this version
    does not understand: a spurious wake-up costs one look, a missed one a second)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    counts = {str(k): v for k, v in doc.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0}
    return counts if len(counts) == len(doc) else None
