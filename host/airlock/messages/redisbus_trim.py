"""Retention of the Redis bus's streams (``messages.redisbus``): each agent's stream is trimmed (XTRIM MINID) below
its oldest entry PostgreSQL has not seen acknowledged, so a stream holds the backlog (bounded by the inbox's
capacity) plus what was acknowledged since the last compaction. Never by length: a MAXLEN could drop an entry no
agent has had yet."""

from __future__ import annotations

from typing import Any

from ..state.postgres import PgDb


def trim_streams(redis_client: Any, db: PgDb, prefix: str, epoch: str) -> int:
    """XTRIM every stream whose key starts with ``prefix`` below its agent's oldest entry that is not acknowledged
    and was published in ``epoch`` (Redis's current data set); return the stream entries removed.

    An entry XADDed while this runs is newer than Redis's clock read first, so it is never trimmed.
    Raises: ``redis.RedisError``, ``errors.StateUnavailable``."""
    seconds, micros = redis_client.time()
    before = f"{seconds * 1000 + micros // 1000}-0"
    with db.connection() as conn:
        rows = conn.execute("SELECT agent, bus_id FROM inbound WHERE state <> 'acked' AND bus_epoch = %s",
                            (epoch,)).fetchall()
    oldest: dict[str, str] = {}
    for agent, xid in rows:
        if agent not in oldest or xid_order(xid) < xid_order(oldest[agent]):
            oldest[str(agent)] = str(xid)
    removed = 0
    for key in redis_client.scan_iter(match=prefix + "*", _type="stream"):
        agent = str(key)[len(prefix):]
        floor = min((before, oldest[agent]), key=xid_order) if agent in oldest else before
        removed += int(redis_client.xtrim(str(key), minid=floor, approximate=False))
    return removed


def xid_order(xid: str) -> tuple[int, int]:
    """A stream id (``MS-N``) as a sortable pair: ids order by number, not as text (``"5-10" > "5-9"``)."""
    ms, _, n = xid.partition("-")
    return int(ms), int(n or 0)
