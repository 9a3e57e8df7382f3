"""The node registry of a cluster: every ``airlock serve`` on one PostgreSQL state database says who it is and that
it is alive, so that ``/health`` and ``airlock status`` on any node report every node (issue 12, "Cluster of
nodes").

A node's id is kept in its home (``HOME/node.id``, made at first start): a restarted node is the same node, not a
new row. At start a node writes its row (host name, pid, URLs, version, start time); ``NodeBeacon`` then renews
``heartbeat_at`` every :data:`HEARTBEAT_S`; a clean stop sets ``stopped_at``. A node is **alive** when its last
heartbeat is at most :data:`NODE_TTL_S` old and it did not stop; a node killed (or cut off from the database) turns
"lost" after that. Rows of nodes gone for :data:`FORGET_S` are deleted (the table stays bounded).

SQLite state has no registry: one home is one node (``/health`` then shows no ``nodes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .postgres import PgDb

__all__ = ["FORGET_S", "HEARTBEAT_S", "NODE_TTL_S", "NodeBeacon", "NodeInfo", "NodeRegistry", "node_id"]

log = logging.getLogger("airlock.nodes")

HEARTBEAT_S = 5.0
"""Seconds between a node's heartbeats."""
NODE_TTL_S = 15.0
"""Seconds without a heartbeat after which a node counts as lost (three heartbeats missed)."""
FORGET_S = 7 * 24 * 3600.0
"""Seconds after its last heartbeat a node's row is deleted."""
NODE_ID_FILE = "node.id"
_ID_CHARS = 16  # hex characters of a new node id (64 random bits: unique among any cluster's nodes)


def node_id(home: Path) -> str:
    """This home's node id: read from ``HOME/node.id``, made (random hex) at the first call."""
    path = home / NODE_ID_FILE
    with contextlib.suppress(FileNotFoundError):
        found = path.read_text().strip()
        if found:
            return found
    made = secrets.token_hex(_ID_CHARS // 2)
    path.write_text(made + "\n")
    return made


@dataclass(frozen=True)
class NodeInfo:
    """One node's row. Times are Unix seconds; ``urls`` maps a listener (``webhooks``, ``admin``, ``agent_api``,
    ``public``) to its base URL."""

    id: str
    host: str
    pid: int
    urls: dict[str, str]
    version: str
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None

    def state(self, now: float, ttl_s: float = NODE_TTL_S) -> str:
        """``alive``, ``stopped`` (a clean stop) or ``lost`` (no heartbeat for ``ttl_s``)."""
        if self.stopped_at is not None:
            return "stopped"
        return "alive" if now - self.heartbeat_at <= ttl_s else "lost"

    def health(self, now: float, this_node: str) -> dict[str, Any]:
        """What ``/health`` shows: no pid, no URLs (the webhook port may face the internet)."""
        return {"id": self.id, "host": self.host, "state": self.state(now), "self": self.id == this_node,
                "version": self.version, "started_at": self.started_at, "heartbeat_at": self.heartbeat_at,
                "heartbeat_age_s": round(max(0.0, now - self.heartbeat_at), 1)}


_COLS = "id, host, pid, urls_json, version, started_at, heartbeat_at, stopped_at"


class NodeRegistry:
    """The ``nodes`` table on ``db`` (blocking calls: run them in a worker thread from the event loop)."""

    def __init__(self, db: PgDb) -> None:
        self._db = db

    def register(self, node: NodeInfo) -> None:
        """Write (or overwrite, on a restart) the node's row; it is alive from now."""
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT INTO nodes ({_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL) ON CONFLICT (id) DO UPDATE "
                "SET host = excluded.host, pid = excluded.pid, urls_json = excluded.urls_json, "
                "version = excluded.version, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
                "stopped_at = NULL",
                (node.id, node.host, node.pid, json.dumps(node.urls), node.version, node.started_at,
                 node.heartbeat_at))

    def heartbeat(self, node: str, now: float) -> None:
        """Renew the node's heartbeat, and forget nodes gone for :data:`FORGET_S`."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE nodes SET heartbeat_at = %s, stopped_at = NULL WHERE id = %s", (now, node))
            conn.execute("DELETE FROM nodes WHERE heartbeat_at < %s", (now - FORGET_S,))

    def stopped(self, node: str, now: float) -> None:
        """Record a clean stop (the node is not lost: it was stopped)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE nodes SET stopped_at = %s, heartbeat_at = %s WHERE id = %s", (now, now, node))

    def list(self) -> list[NodeInfo]:
        """Every node, oldest start first."""
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT {_COLS} FROM nodes ORDER BY started_at, id").fetchall()
        return [NodeInfo(id=r[0], host=r[1], pid=r[2], urls=json.loads(r[3]), version=r[4], started_at=r[5],
                         heartbeat_at=r[6], stopped_at=r[7]) for r in rows]


class NodeBeacon:
    """This node in the registry while it runs: ``start(urls)`` registers it and renews its heartbeat every
    :data:`HEARTBEAT_S`; ``stop()`` records the clean stop. A database that does not answer is logged and retried
    at the next beat (the node then turns "lost" for the others, which is what it is)."""

    def __init__(self, registry: NodeRegistry, node: str, version: str, *,
                 clock: Callable[[], float] = time.time, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.registry = registry
        self.node = node
        self._version = version
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._task: asyncio.Task[None] | None = None

    async def start(self, urls: dict[str, str]) -> None:
        now = self._clock()
        info = NodeInfo(id=self.node, host=socket.gethostname(), pid=os.getpid(), urls=urls, version=self._version,
                        started_at=now, heartbeat_at=now)
        await asyncio.to_thread(self.registry.register, info)
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="airlock-node-heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await asyncio.to_thread(self.registry.heartbeat, self.node, self._clock())
            except Exception as exc:  # the database is down or slow: the next beat tries again
                log.warning("node heartbeat failed: %s", exc)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            await asyncio.to_thread(self.registry.stopped, self.node, self._clock())
        except Exception as exc:  # it will show as lost after NODE_TTL_S instead of stopped
            log.warning("could not record this node's stop: %s", exc)

    async def health(self) -> list[dict[str, Any]]:
        """Every node as ``/health`` shows it (``NodeInfo.health``)."""
        nodes = await asyncio.to_thread(self.registry.list)
        now = self._clock()
        return [n.health(now, self.node) for n in nodes]
