"""The PostgreSQL half of a lease on the Redis bus (``messages.redisbus``): what a lease took from an agent's stream
is leased in PostgreSQL with the same conditional UPDATE as ``PostgresMessageLog`` (ready, or leased with an expired
lease), so PostgreSQL stays the judge of every lease.

``attempts`` counts hand-outs. An entry XAUTOCLAIMed from another consumer's pending list was handed out by the
stream before, to a process that never leased it (it died, or lost PostgreSQL, between the read and the lease):
that hand-out counts (``attempts`` at least 2), as a lease whose answer was lost does on every log. Such an entry may
reach the agent after later entries of its conversation; being a redelivery, the log's order rule allows that
(``messages.log``): first deliveries (``attempts`` 1) keep each conversation's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..state.postgres import PgConn
from .model import Entry
from .postgres import _NEW_TOKEN
from .rows import entry_from_row as _entry
from .rows import qualified as _qualified

__all__ = ["finished", "lease_delivered"]


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
