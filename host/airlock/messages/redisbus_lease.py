"""The two halves of a lease on the Redis bus (``messages.redisbus``): ``read_stream`` takes entries from an agent's
stream (expired leases, XAUTOCLAIM, XREADGROUP), and ``lease_delivered`` leases what it took in PostgreSQL with the
same conditional UPDATE as ``PostgresMessageLog`` (ready, or leased with an expired lease), so PostgreSQL stays the
judge of every lease.

``attempts`` counts hand-outs. An entry XAUTOCLAIMed from another consumer's pending list was handed out by the
stream before, to a process that never leased it (it died, or lost PostgreSQL, between the read and the lease):
that hand-out counts (``attempts`` at least 2), as a lease whose answer was lost does on every log. Such an entry may
reach the agent after later entries of its conversation; being a redelivery, the log's order rule allows that
(``messages.log``): first deliveries (``attempts`` 1) keep each conversation's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.exceptions import ResponseError

from ..state.postgres import PgConn
from .model import Entry
from .postgres import _NEW_TOKEN
from .rows import entry_from_row as _entry
from .rows import qualified as _qualified

__all__ = ["finished", "lease_delivered", "read_stream"]


def read_stream(r: redis.Redis, key: str, group: str, consumer: str, expired: dict[str, str], limit: int,
                visibility_s: float, *, autoclaim: bool) -> tuple[dict[str, str], set[str], bool]:
    """``entry id -> stream id`` of up to ``limit`` entries of stream ``key`` for ``consumer`` of ``group``:
    ``expired`` (leases expired in PostgreSQL: XCLAIMed to this consumer), then, with ``autoclaim``, entries another
    consumer took from the stream and held longer than ``visibility_s`` without leasing them (XAUTOCLAIM: it died
    between reading and leasing, or a release did not reach Redis), then new ones (XREADGROUP). Also returns the ids
    handed out before (XAUTOCLAIMed, or re-published after a Redis restart), and whether the XAUTOCLAIM took all it
    could (False when it did not run or filled its batch: more may be waiting). No group yet (nothing published to
    this stream in this Redis): only ``expired``. Raises ``redis.RedisError``."""
    out = dict(expired)
    claimed: set[str] = set()
    drained = False
    try:
        if expired:  # this consumer owns them in the group now (idle time restarts)
            r.xclaim(key, group, consumer, 0, list(expired.values()), justid=True)
        messages: list[Any] = []
        if len(out) < limit and autoclaim:
            taken = r.xautoclaim(key, group, consumer, min_idle_time=int(visibility_s * 1000), start_id="0-0",
                                 count=limit - len(out))
            messages.extend(taken[1])
            claimed.update(str(f["id"]) for _x, f in taken[1] if f and "id" in f)
            drained = len(taken[1]) < limit - len(out)
        if len(out) + len(messages) < limit:
            read = cast(list[Any], r.xreadgroup(group, consumer, {key: ">"},
                                                count=limit - len(out) - len(messages)) or [])
            for _stream, fresh in read:
                messages.extend(fresh)
    except ResponseError as exc:
        if "NOGROUP" in str(exc):
            return out, claimed, drained
        raise
    for xid, fields in messages:
        if fields and "id" in fields:
            out.setdefault(str(fields["id"]), str(xid))
            if fields.get("again") == "1":  # re-published: its hand-out in the lost Redis counts too
                claimed.add(str(fields["id"]))
    return out, claimed - set(expired), drained


def lease_delivered(conn: PgConn, agent: str, delivered: dict[str, str], claimed: set[str], visibility_s: float,
                    now: float) -> tuple[list[Entry], list[str]]:
    """Lease ``delivered`` (``entry id -> stream id``, read from ``agent``'s stream) until ``now + visibility_s``;
    ``claimed``: the ids XAUTOCLAIMed (module docstring). Returns the entries leased, oldest first, and the ids found
    acknowledged or gone (to XACK). One statement, atomic on its own. Raises ``StateUnavailable``."""
    ids = list(delivered)
    rows = conn.execute(
        f"UPDATE inbound AS i SET state = 'leased', lease_until = %s, lease_token = {_NEW_TOKEN}, "
        "attempts = CASE WHEN v.claimed THEN greatest(i.attempts + 1, 2) ELSE i.attempts + 1 END, "
        "bus_id = v.xid FROM unnest(%s::text[], %s::text[], %s::bool[]) AS v(id, xid, claimed) "
        "WHERE i.id = v.id AND i.agent = %s AND (i.state = 'ready' OR (i.state = 'leased' "
        f"AND i.lease_until <= %s)) RETURNING {_qualified('i')}",
        (now + visibility_s, ids, [delivered[i] for i in ids], [i in claimed for i in ids], agent, now)).fetchall()
    entries = sorted((_entry(r) for r in rows), key=lambda e: e.seq)
    leased = {e.id for e in entries}
    skipped = [i for i in ids if i not in leased]
    return entries, finished(conn, skipped) if skipped else []


def finished(conn: PgConn, ids: Sequence[str]) -> list[str]:
    """Of ``ids``, those acknowledged or gone from the log (vs leased to another consumer)."""
    if not ids:
        return []
    open_ids = {str(r[0]) for r in conn.execute(
        "SELECT id FROM inbound WHERE id = ANY(%s) AND state <> 'acked'", (list(ids),)).fetchall()}
    return [i for i in ids if i not in open_ids]
