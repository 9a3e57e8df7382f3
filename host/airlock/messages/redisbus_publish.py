"""One publishing round of the Redis bus (``messages.redisbus``, the outbox pattern): under a cluster-wide advisory
lock, the oldest committed entries not yet in Redis's current data set (its epoch) are XADDed to their agents'
streams by a Lua script that first checks the epoch, and recorded as published (epoch, stream id) in the same
PostgreSQL transaction, which also tells every node (``messages.wakeup``).

An entry published in an earlier epoch (a Redis that lost its data) is XADDed marked ``again``: it may have been
handed out in the lost Redis without its lease being recorded, and its next lease counts that hand-out
(``redisbus_lease``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from ..state.postgres import PgDb
from .wakeup import notify_appended

__all__ = ["PUBLISH_BATCH", "PUBLISH_LOCK", "PUBLISH_LUA", "publish_round"]

PUBLISH_BATCH = 500
"""Entries XADDed per publisher transaction."""
PUBLISH_LOCK = 0x41_69_72_42_75_73  # "AirBus": the advisory lock key every publisher takes
"""PostgreSQL advisory lock serialising the publishers of a cluster (commit order = stream order)."""

# Adds ARGV[2..n+1] (entry ids) to KEYS[2..] (their agents' streams) if the epoch is still ARGV[1], each marked
# ``again`` when its flag in ARGV[n+2..2n+1] is "1" (published in an earlier epoch); creates each stream's group
# (named by the last ARGV) first, from id 0: the group sees every entry. Returns the stream ids, or false (the
# epoch changed).
PUBLISH_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local n = #KEYS - 1
local made = {}
local ids = {}
for i = 2, #KEYS do
  if not made[KEYS[i]] then
    redis.pcall('XGROUP', 'CREATE', KEYS[i], ARGV[#ARGV], '0', 'MKSTREAM')
    made[KEYS[i]] = true
  end
  if ARGV[n + i] == '1' then
    ids[i - 1] = redis.call('XADD', KEYS[i], '*', 'id', ARGV[i], 'again', '1')
  else
    ids[i - 1] = redis.call('XADD', KEYS[i], '*', 'id', ARGV[i])
  end
end
return ids
"""


def publish_round(db: PgDb, script: Any, epoch_key: str, stream_key: Callable[[str], str], epoch: str,
                  group: str) -> int | None:
    """Publish up to :data:`PUBLISH_BATCH` entries (module docstring) with ``script`` (:data:`PUBLISH_LUA`,
    registered on the Redis client) under ``epoch``; return how many, or None when Redis's epoch is no longer
    ``epoch`` (nothing added, nothing recorded).

    Raises: ``redis.RedisError`` (Redis unreachable), ``StateUnavailable`` (PostgreSQL); nothing is recorded
    published that was not added."""
    # pipeline mode: BEGIN, the lock and the SELECT go in one round trip, the UPDATE with the COMMIT
    with db.connection() as conn, conn.pipeline(), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK,))
        rows = conn.execute(
            "SELECT id, agent, bus_epoch IS NOT NULL FROM inbound WHERE state <> 'acked' "
            "AND bus_epoch IS DISTINCT FROM %s ORDER BY seq LIMIT %s", (epoch, PUBLISH_BATCH)).fetchall()
        if not rows:
            return 0
        ids = [str(r[0]) for r in rows]
        again = ["1" if r[2] else "0" for r in rows]  # in a Redis that lost it: maybe handed out there
        xids = script(keys=[epoch_key, *(stream_key(str(r[1])) for r in rows)], args=[epoch, *ids, *again, group])
        if not xids:
            return None
        conn.execute("UPDATE inbound AS i SET bus_epoch = %s, bus_id = v.xid "
                     "FROM unnest(%s::text[], %s::text[]) AS v(id, xid) WHERE i.id = v.id",
                     (epoch, ids, [str(x) for x in cast(list[Any], xids)]))
        # in the streams now: waiting agents may read. Unsigned: the rows may be other processes' (a sweep), whose
        # waiters in this process nobody woke, so this process's listener must hear it too
        notify_appended(conn, [str(r[1]) for r in rows], signed=False)
    return len(rows)
