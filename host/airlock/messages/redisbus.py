"""``RedisBusLog``: the message log on PostgreSQL with delivery to agents through Redis Streams
(``state = "postgresql://..."`` and ``bus = "redis://..."`` in the host config).

PostgreSQL stays the durable record and the judge of every lease; Redis carries the entries to the consumers.

- **Streams**: one stream per agent (``airlock:inbound:<agent>``), one consumer group (``agents``) on each, every
  process one consumer. One stream per agent, not per agent and partition: an agent's first deliveries must follow
  the commit order of each conversation, and one stream keeps that with no routing of conversations to
  partitions; the stream's cost is one Redis key, and the measured ceiling (BENCHMARKS.md) is far from Redis.
- **Outbox pattern** (``redisbus_publish``): ``commit`` writes the entries to PostgreSQL first (``bus_epoch`` NULL =
  not published). The publisher then takes the unpublished entries in ``seq`` order under a cluster-wide advisory
  lock (two publishers never interleave their XADDs, so a stream keeps the commit order), XADDs them and records the
  Redis epoch and stream id in the same transaction. It runs in a thread of this process woken by each commit (the
  webhook does not wait for it; commits made during a round go in the next one, so publishing batches under load),
  before a lease of this process if it committed since (read your writes), and as a sweep at least every
  :data:`SWEEP_S`, so entries committed by a process that died before publishing, or while Redis was down, are
  published within a sweep.
- **Epoch**: Redis holds a random ``airlock:bus:epoch``. A Redis that restarted without its data has no epoch (or a
  new one): every entry not acknowledged and not published in the current epoch is published again, in ``seq``
  order, marked ``again``: it may have been handed out in the lost Redis without its lease being recorded, so its
  next lease counts that hand-out (``attempts`` >= 2, as an XAUTOCLAIMed entry: ``redisbus_lease``). The XADDs run
  in a Lua script that first checks the epoch, so an entry is never added to a Redis whose epoch the publisher did
  not record (no newer entry can overtake an older one being re-published).
- **Leases**: ``lease`` takes, in this order, entries whose lease in PostgreSQL expired (the visibility timeout is
  ``lease_until``, on the caller's clock, as in every log; XCLAIMed to this consumer), entries another consumer took
  from the stream but held longer than the visibility timeout without leasing them (XAUTOCLAIM: a gateway that died
  between XREADGROUP and its PostgreSQL UPDATE), and new ones (XREADGROUP ``>``), then leases them in PostgreSQL
  (``redisbus_lease``: an XAUTOCLAIMed entry counts the hand-out it missed, ``attempts`` >= 2); entries read when
  that UPDATE failed (PostgreSQL down) are handed back as a release does (``_give_back``), not left pending until
  the visibility timeout. An entry PostgreSQL says is acknowledged is XACKed and dropped (a re-published duplicate
  after a Redis restart); one leased to someone else stays pending in Redis and comes back by XAUTOCLAIM after the
  visibility timeout. So a duplicate in the stream is never handed out while another lease on it is valid.
- **Acks**: recorded in PostgreSQL (token checked there), then XACKed. A failed XACK is harmless: the entry comes
  back by XAUTOCLAIM, PostgreSQL says acknowledged, it is XACKed then.
- **Release**: PostgreSQL makes the entry ready; XCLAIM with a huge idle time makes the next XAUTOCLAIM take it.
- **Retention**: ``compact`` trims each stream (XTRIM MINID) below its oldest entry not yet acknowledged, so a
  stream holds the backlog (bounded by the inbox's capacity: webhooks get 503 beyond it) plus what was acknowledged
  since the last compaction. No MAXLEN on XADD: a length cap could drop an entry never delivered.
- **Failures**: a Redis that cannot be reached makes ``lease`` raise ``errors.StateUnavailable``; ``commit`` still
  succeeds (the record is in PostgreSQL; the sweep publishes it once Redis is back).

Rules of ``messages.log`` kept: at-least-once (an entry leaves Redis only by XACK after PostgreSQL has its ack),
order of first deliveries per conversation (stream order = commit order, expired leases first), backpressure
(``backlog`` counts PostgreSQL rows).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import StateUnavailable
from ..state.leases import Fence
from ..state.postgres import PgDb
from .log import DEDUPE_WINDOW_S, RETENTION_S, NewOutbound, ack_results
from .model import Entry, NewEntry, OutboxEntry
from .postgres import PostgresMessageLog, release_statement
from .redisbus_lease import lease_delivered, read_stream
from .redisbus_publish import PUBLISH_BATCH, PUBLISH_LUA, publish_round
from .redisbus_trim import trim_streams

logger = logging.getLogger("airlock.messages.redisbus")

NAMESPACE = "airlock:"
"""Default prefix of every Redis key of the bus (a Redis shared with other applications, or test isolation)."""
STREAM_PREFIX = "inbound:"
"""Stream key of an agent: namespace + this prefix + the agent's name."""
GROUP = "agents"
"""The consumer group on every agent's stream."""
EPOCH_KEY = "bus:epoch"
"""Random id of this Redis's data set; missing or changed = Redis lost its data (module docstring)."""
SWEEP_S = 0.5
"""Longest time between two publisher sweeps of a process that leases (seconds)."""
REDIS_TIMEOUT_S = 2.0
"""Connect and read timeout of a Redis command (seconds): a dead Redis makes a lease fail fast (503), not hang."""
EXPIRY_CHECK_S = 0.25
"""Least time between two looks for an agent's expired leases in PostgreSQL (on the caller's clock) and between two
XAUTOCLAIMs of its stream (monotonic): an empty lease (an agent waiting) then costs one Redis round trip; a lease
comes back at most this much late."""
PUBLISH_RETRY_S = 0.5
"""Seconds the publisher thread waits after a failed round (Redis or PostgreSQL down)."""
RELEASED_IDLE_MS = 10**12
"""Idle time given to a released entry: older than any visibility timeout, so the next XAUTOCLAIM takes it."""


class RedisBusLog(PostgresMessageLog):
    """The :class:`~airlock.messages.log.MessageLog` on PostgreSQL, delivering through Redis Streams (module
    docstring). Blocking and thread-safe like every log. Agents waiting on other nodes are told of new entries
    when they are published, not when they are committed (``messages.wakeup``).

    Args:
        db: the shared PostgreSQL pool; closed by :meth:`close` only when ``owns_db``.
        redis_url: ``redis://[[user]:password@]host:port/db``, ``rediss://`` or ``unix://`` (redis-py's URL).
        consumer: this process's consumer name in the groups (default: host, pid and a random suffix).
        namespace: prefix of every key (:data:`NAMESPACE`).
    """

    notify_on_commit = False

    def __init__(self, db: PgDb, redis_url: str, *, owns_db: bool = False, consumer: str | None = None,
                 namespace: str = NAMESPACE, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(db, owns_db=owns_db)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                           socket_connect_timeout=REDIS_TIMEOUT_S, decode_responses=True)
        self._publish_script = self._redis.register_script(PUBLISH_LUA)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.namespace = namespace
        self._epoch_key = namespace + EPOCH_KEY
        self._epoch: str | None = None
        self._clock = clock
        self._swept = float("-inf")
        self._expiry_checked: dict[str, float] = {}
        self._claim_checked: dict[str, float] = {}
        self._sweep_lock = threading.Lock()
        self._committed = 0  # commits of this process that appended entries ...
        self._published = 0  # ... and how many of them are known to be in Redis
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._publisher: threading.Thread | None = None
        self._publisher_lock = threading.Lock()

    def stream_key(self, agent: str) -> str:
        """The Redis stream of ``agent``'s entries."""
        return self.namespace + STREAM_PREFIX + agent

    @classmethod
    def open_bus(cls, dsn: str, redis_url: str, **kwargs: Any) -> RedisBusLog:
        """A log on its own pool (tests, the CLI)."""
        return cls(PgDb(dsn), redis_url, owns_db=True, **kwargs)

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._publisher is not None:
            self._publisher.join(REDIS_TIMEOUT_S * 3)
        self._redis.close()
        super().close()

    # ---- publishing (the outbox pattern) ---------------------------------------------------------------------------
    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: Fence | None = None) -> list[NewEntry]:
        appended = super().commit(instance, workspace, entries, now, fence)
        if appended:  # durable now; published by this process's publisher thread (or a lease, whichever is first)
            with self._count_lock:
                self._committed += 1
            self._start_publisher()
            self._wake.set()
        return appended

    def _start_publisher(self) -> None:
        with self._publisher_lock:
            if self._publisher is None and not self._closing.is_set():
                self._publisher = threading.Thread(target=self._publish_loop, name="airlock-bus-publisher",
                                                   daemon=True)
                self._publisher.start()

    def _publish_loop(self) -> None:
        """Publish after each commit of this process (batched: commits made meanwhile go in the same round), and at
        least every SWEEP_S (a Redis that came back empty is noticed). Failures wait PUBLISH_RETRY_S."""
        while not self._closing.is_set():
            woken = self._wake.wait(SWEEP_S)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                self._publish_pending(sweep=not woken)
            except (RedisError, StateUnavailable) as exc:  # the records are durable: published on a later round
                logger.warning("bus: publish failed (%s); retrying", type(exc).__name__)
                self._closing.wait(PUBLISH_RETRY_S)
            except Exception:  # never let the thread die: a dead publisher would strand every later commit
                logger.exception("bus: publisher error")
                self._closing.wait(PUBLISH_RETRY_S)

    def _publish_pending(self, *, sweep: bool = False) -> None:
        """Publish this process's commits not yet published (``sweep``: re-read the epoch first). On return,
        every commit counted before the call is in Redis: ``publish`` waits for a round in flight (its lock)."""
        target = self._committed
        if sweep:
            self._adopt_epoch()
        self.publish()
        with self._count_lock:
            self._published = max(self._published, target)

    def publish(self) -> int:
        """XADD every committed entry not published in Redis's current epoch, oldest first; return how many.

        Raises: ``redis.RedisError`` (Redis unreachable), ``StateUnavailable`` (PostgreSQL); nothing is marked
        published that was not added."""
        total = 0
        epoch_changes = 0
        while True:
            epoch = self._epoch or self._adopt_epoch()
            done = publish_round(self._db, self._publish_script, self._epoch_key, self.stream_key, epoch, GROUP)
            if done is None:  # Redis lost its data since we read the epoch: start again under the new one
                self._epoch = None
                epoch_changes += 1
                if epoch_changes > 3:
                    raise StateUnavailable("bus: the Redis epoch keeps changing")
                continue
            total += done
            if done < PUBLISH_BATCH:
                return total

    def _adopt_epoch(self) -> str:
        """Redis's epoch, made if missing (a new or emptied Redis)."""
        self._redis.set(self._epoch_key, secrets.token_hex(16), nx=True)
        epoch = self._redis.get(self._epoch_key)
        if epoch is None:
            raise StateUnavailable("bus: the Redis epoch vanished")
        if self._epoch is not None and epoch != self._epoch:
            logger.warning("bus: Redis lost its data (new epoch): re-publishing unacknowledged entries")
        self._epoch = str(epoch)
        return self._epoch

    def _sweep(self) -> None:
        """Publish what others left unpublished, at most every SWEEP_S (one thread at a time)."""
        if self._clock() - self._swept < SWEEP_S or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._swept = self._clock()
            self._adopt_epoch()  # read Redis's epoch again: it may have restarted since
            self.publish()
        finally:
            self._sweep_lock.release()

    # ---- leases ------------------------------------------------------------------------------------------------------
    def lease(self, agent: str, limit: int, visibility_s: float, now: float) -> list[Entry]:
        expired = self._expired(agent, limit, now)
        try:
            # read your writes: what this process committed is in the streams before it leases
            if self._published < self._committed:
                self._publish_pending()
            self._sweep()
            delivered, claimed = self._read(agent, expired, limit, visibility_s)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StateUnavailable(f"bus: {type(exc).__name__}") from exc
        if not delivered:
            return []
        try:
            entries, done = self._lease_read(agent, delivered, claimed, visibility_s, now)
        except Exception:  # PostgreSQL failed between the read and the lease: hand the entries back at once
            self._give_back(agent, list(delivered.values()))
            raise
        if done:  # acknowledged already (a re-published duplicate) or compacted: out of the stream's PEL
            self._xack(agent, [delivered[i] for i in done])
        return entries

    def _lease_read(self, agent: str, delivered: dict[str, str], claimed: set[str], visibility_s: float,
                    now: float) -> tuple[list[Entry], list[str]]:
        """Lease in PostgreSQL what ``_read`` took from the stream (``redisbus_lease.lease_delivered``)."""
        with self._db.connection() as conn:
            return lease_delivered(conn, agent, delivered, claimed, visibility_s, now)

    def _give_back(self, agent: str, xids: list[str]) -> None:
        """Entries read from ``agent``'s stream but not leased (PostgreSQL failed): make them the next XAUTOCLAIM's
        at once, as a release does, not after the visibility timeout (they would wait in this consumer's pending
        list meanwhile). A failure here only delays them to that timeout."""
        self._claim_checked.pop(agent, None)
        try:
            self._redis.xclaim(self.stream_key(agent), GROUP, self.consumer, 0, cast(list[Any], xids),
                               idle=RELEASED_IDLE_MS, justid=True)
        except RedisError as exc:
            logger.warning("bus: %d entries read but not leased stay pending (%s)", len(xids), type(exc).__name__)

    def _expired(self, agent: str, limit: int, now: float) -> dict[str, str]:
        """``entry id -> stream id`` of entries whose lease in PostgreSQL expired at ``now``, oldest first: the
        visibility timeout of an agent's lease is PostgreSQL's ``lease_until`` (the caller's clock), as in every
        log; Redis's idle time only covers what a gateway took from a stream and never leased (``_read``).
        Looked up at most every :data:`EXPIRY_CHECK_S` per agent, unless the last look filled ``limit``."""
        if now - self._expiry_checked.get(agent, float("-inf")) < EXPIRY_CHECK_S:
            return {}
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT id, bus_id FROM inbound WHERE agent = %s AND state = 'leased' AND lease_until <= %s "
                "AND bus_id IS NOT NULL ORDER BY seq LIMIT %s", (agent, now, limit)).fetchall()
        if len(rows) < limit:
            self._expiry_checked[agent] = now
        return {str(i): str(x) for i, x in rows}

    def _read(self, agent: str, expired: dict[str, str], limit: int,
              visibility_s: float) -> tuple[dict[str, str], set[str]]:
        """What a lease takes from ``agent``'s stream (``redisbus_lease.read_stream``), XAUTOCLAIMing at most every
        :data:`EXPIRY_CHECK_S` per agent unless the last XAUTOCLAIM filled its batch (more may be waiting)."""
        autoclaim = self._clock() - self._claim_checked.get(agent, float("-inf")) >= EXPIRY_CHECK_S
        out, claimed, drained = read_stream(self._redis, self.stream_key(agent), GROUP, self.consumer, expired,
                                            limit, visibility_s, autoclaim=autoclaim)
        if drained:
            self._claim_checked[agent] = self._clock()
        return out, claimed

    # ---- acknowledgements ------------------------------------------------------------------------------------------
    def ack(self, entry_id: str, lease_token: str | None, now: float) -> bool:
        sql = ("UPDATE inbound SET state = 'acked', acked_at = %s, lease_token = NULL WHERE id = %s "
               "AND state <> 'acked'")
        args: tuple[Any, ...] = (now, entry_id)
        if lease_token is not None:
            sql += " AND lease_token = %s"
            args += (lease_token,)
        with self._db.connection() as conn:  # one statement: atomic on its own, one round trip
            row = conn.execute(sql + " RETURNING agent, bus_id", args).fetchone()
        if row is None:
            return False
        self._xack_quietly(str(row[0]), row[1])
        return True

    def ack_many(self, items: Sequence[tuple[str, str | None]], now: float) -> list[bool]:
        rows = self._ack_batch(items, now)  # PostgreSQL first (one statement), then one XACK per agent's stream
        streams: dict[str, list[str | None]] = {}
        for _entry_id, agent, xid in rows:
            streams.setdefault(agent, []).append(xid)
        for agent, xids in streams.items():
            self._xack_quietly(agent, *xids)
        return ack_results(items, {entry_id for entry_id, _agent, _xid in rows})

    def ack_and_append(self, entry_id: str, lease_token: str | None, outbound: Sequence[NewOutbound],
                       now: float) -> list[OutboxEntry]:
        out = super().ack_and_append(entry_id, lease_token, outbound, now)
        with self._db.connection() as conn:
            row = conn.execute("SELECT agent, bus_id FROM inbound WHERE id = %s", (entry_id,)).fetchone()
        if row is not None:
            self._xack_quietly(str(row[0]), row[1])
        return out

    def release(self, entry_id: str, lease_token: str | None) -> bool:
        sql, args = release_statement(entry_id, lease_token)
        with self._db.connection() as conn:
            row = conn.execute(sql + " RETURNING agent, bus_id", args).fetchone()
        if row is None:
            return False
        self._claim_checked.pop(str(row[0]), None)  # this process's next lease claims it at once
        if row[1] is not None:
            try:
                self._redis.xclaim(self.stream_key(str(row[0])), GROUP, self.consumer, 0, [str(row[1])],
                                   idle=RELEASED_IDLE_MS, justid=True)
            except RedisError as exc:  # it still comes back after the visibility timeout
                logger.warning("bus: release of %s not passed to Redis (%s)", entry_id, type(exc).__name__)
        return True

    def _xack(self, agent: str, xids: Sequence[str]) -> None:
        if xids:
            self._redis.xack(self.stream_key(agent), GROUP, *xids)

    def _xack_quietly(self, agent: str, *xids: object) -> None:
        """XACK (one call for all ``xids`` of ``agent``'s stream; None: never published) after PostgreSQL recorded
        the acks; a failure only delays the PEL's cleanup (module docstring)."""
        published = [str(x) for x in xids if x is not None]
        if not published:
            return
        try:
            self._xack(agent, published)
        except RedisError as exc:
            logger.warning("bus: XACK failed (%s); the entry is dropped when it is next claimed", type(exc).__name__)

    # ---- housekeeping ----------------------------------------------------------------------------------------------
    def compact(self, now: float, retention_s: float = RETENTION_S, dedupe_window_s: float = DEDUPE_WINDOW_S) -> int:
        removed = super().compact(now, retention_s, dedupe_window_s)
        try:
            trimmed = self.trim()
            logger.info("bus: %d acknowledged entries trimmed from the streams", trimmed)
        except RedisError as exc:
            logger.warning("bus: stream trim skipped (%s)", type(exc).__name__)
        return removed

    def trim(self) -> int:
        """XTRIM every agent's stream below its oldest entry not acknowledged; return the stream entries removed."""
        return trim_streams(self._redis, self._db, self.namespace + STREAM_PREFIX, self._epoch or self._adopt_epoch())


__all__ = ["GROUP", "NAMESPACE", "RedisBusLog"]
