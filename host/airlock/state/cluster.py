"""Channels installed once for a cluster, and the active version of each recorded for every node (issue 12,
"Cluster of nodes").

With PostgreSQL state, ``airlock channels install`` on any node also stores the installed channel in the table
``cluster_channels`` (the active version's component, capabilities file and provenance record, a digest, and the
operator's switch ``enabled``). An upgrade or rollback on any node, through any door (the CLI, the control socket,
the admin API: ``channels.operations``), replaces the row by the new active version once it runs there; a remove
deletes the row and leaves a tombstone (table ``cluster_removed``) until the name is installed again. Every node, at
start, writes the stored channels into its home as their active version and removes the tombstoned ones
(:func:`materialise`, before loading them): install once, run everywhere, and a node that was down during a change
starts on what the cluster runs. The files of a channel installed only in one home are left alone.

Hot changes travel on LISTEN/NOTIFY (``state.cluster_sync``, the protocol described there).
A record is the active version of an instance of the versioned layout (``channels.layout``): :func:`record_from_home`
reads it, :func:`materialise` installs it through ``channels.install.stage``, so the node's own CLI and the lifecycle
operations (versions, rollback) see it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..channels.catalog import find
from ..channels.install import stage
from ..channels.layout import PROVENANCE_FILE, ChannelStore
from ..errors import AirlockError, ConfigError
from ..stores.files import private_dir
from .postgres import CLUSTER_CHANNEL, PgDb

__all__ = ["ChannelRecord", "ChannelRecords", "materialise", "record_from_home", "unmaterialise"]

log = logging.getLogger("airlock.cluster")

_LOCK_FILE = ".cluster.lock"


@dataclass(frozen=True)
class ChannelRecord:
    """One installed channel as stored for the cluster: instance ``name``, its active ``version`` (the layout's
    version name, ``channels.layout``) and that version's files. ``digest``: SHA-256 (hex) of component +
    capabilities."""

    name: str
    component: bytes
    capabilities: str
    provenance: str | None
    version: str
    enabled: bool = True

    @property
    def digest(self) -> str:
        return _digest(self.component, self.capabilities.encode())


def _digest(component: bytes, capabilities: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(component).digest() + capabilities).hexdigest()


def record_from_home(channels_dir: Path, name: str) -> ChannelRecord:
    """The active version of the channel ``name`` as installed in ``channels_dir`` (``channels.layout``): its
    component, capabilities file (byte for byte) and provenance record.

    Raises:
        ConfigError: ``name`` is not an installed instance of the versioned layout.
        OSError: a file of the active version cannot be read.
    """
    entry = find(channels_dir, name)
    if entry is None or not entry.versioned:
        raise ConfigError(f"no channel named {name!r} is installed in {channels_dir}")
    store = ChannelStore(channels_dir)
    prov = store.version_dir(name, entry.version) / PROVENANCE_FILE
    return ChannelRecord(name=name, component=store.component(name, entry.version).read_bytes(),
                         capabilities=store.manifest(name, entry.version).read_text(),
                         provenance=prov.read_text() if prov.exists() else None, version=entry.version)


def materialise(records: list[ChannelRecord], channels_dir: Path, *, lenient: bool = False,
                removed: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Install each record into ``channels_dir`` as its instance's active version (``channels.install.stage``),
    unless that version is active already, and remove the instances named in ``removed`` (the cluster's
    tombstones); return the names written or removed. A record that cannot be installed here (an invalid file, a
    version kept with other bytes) is logged and skipped: the node runs the others.

    Processes of one node (``serve --workers``) may materialise at once: a lock file in ``channels_dir`` makes them
    take turns (the layout has one writer at a time, ``ChannelStore``)."""
    private_dir(channels_dir)
    store = ChannelStore(channels_dir)
    written = []
    with open(channels_dir / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        for name in removed:
            if store.exists(name):
                store.remove(name)
                written.append(name)
        for rec in records:
            try:
                if _place(store, rec, lenient=lenient):
                    written.append(rec.name)
            except (AirlockError, OSError) as exc:
                log.warning("cluster: channel %s not installed here: %s", rec.name, " ".join(str(exc).split()))
    return written


def unmaterialise(name: str, channels_dir: Path) -> bool:
    """Remove instance ``name`` from ``channels_dir`` (the cluster removed it); False when it is not there. Under
    the lock of :func:`materialise`: the workers of one node may do it at once."""
    return bool(materialise([], channels_dir, removed=[name]))


def _place(store: ChannelStore, rec: ChannelRecord, *, lenient: bool) -> bool:
    """Stage ``rec`` and make it the active version of its instance; False when it is active already."""
    exists = store.exists(rec.name)
    if exists and store.get(rec.name).active == rec.version:
        return False
    stage(store, rec.component, rec.capabilities.encode(), source=f"{rec.name} (cluster record)", as_name=rec.name,
          upgrade=exists, version=rec.version, provenance=_provenance(rec.provenance), lenient=lenient)
    if exists:
        store.activate(rec.name, rec.version)
        store.prune(rec.name)
    return True


def _provenance(text: str | None) -> dict[str, Any] | None:
    """The stored provenance record as ``stage`` takes it (it writes its own ``installed_at`` and digests)."""
    try:
        doc = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return {k: v for k, v in doc.items() if k not in ("installed_at", "sha256")} if isinstance(doc, dict) else None


class ChannelRecords:
    """The ``cluster_channels`` table on ``db`` (blocking calls)."""

    def __init__(self, db: PgDb) -> None:
        self._db = db

    def put(self, rec: ChannelRecord, *, node: str | None = None, replace_only: bool = False) -> bool:
        """Store (or replace) ``rec``, keeping the stored switch, and tell every node (``node``: the sender, which
        ignores its own notice). ``replace_only``: only if the channel has a row already (an upgrade or rollback of
        a channel installed in one home only stays there). Returns whether a row was written."""
        values = (rec.component, rec.capabilities, rec.provenance, rec.version, rec.digest, time.time(), rec.name)
        with self._db.transaction() as conn:
            if replace_only:
                written = conn.execute(
                    "UPDATE cluster_channels SET component = %s, capabilities = %s, provenance = %s, version = %s, "
                    "digest = %s, updated_at = %s WHERE name = %s", values).rowcount == 1
            else:
                conn.execute(
                    "INSERT INTO cluster_channels (component, capabilities, provenance, version, digest, updated_at, "
                    "name, enabled) VALUES (%s, %s, %s, %s, %s, %s, %s, TRUE) ON CONFLICT (name) DO UPDATE SET "
                    "component = excluded.component, capabilities = excluded.capabilities, "
                    "provenance = excluded.provenance, version = excluded.version, digest = excluded.digest, "
                    "updated_at = excluded.updated_at", values)
                written = True
            if written:
                conn.execute("DELETE FROM cluster_removed WHERE name = %s", (rec.name,))
                _notify(conn, {"op": "installed", "channel": rec.name, "version": rec.version, "node": node})
        return written

    def remove(self, name: str, *, node: str | None = None) -> bool:
        """Delete ``name``'s row, leave its tombstone and tell every node; False (nothing done) when it has no
        row."""
        with self._db.transaction() as conn:
            if conn.execute("DELETE FROM cluster_channels WHERE name = %s", (name,)).rowcount != 1:
                return False
            conn.execute("INSERT INTO cluster_removed (name, removed_at) VALUES (%s, %s) ON CONFLICT (name) DO "
                         "UPDATE SET removed_at = excluded.removed_at", (name, time.time()))
            _notify(conn, {"op": "removed", "channel": name, "node": node})
        return True

    def removed(self) -> list[str]:
        """The tombstones: channels removed from the cluster and not installed again, by name."""
        with self._db.connection() as conn:
            return [str(r[0]) for r in conn.execute("SELECT name FROM cluster_removed ORDER BY name").fetchall()]

    def set_enabled(self, name: str, enabled: bool, node: str) -> None:
        """Store the operator's switch for ``name`` and tell every node (a channel installed in one home only
        has no row: the switch is still announced)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE cluster_channels SET enabled = %s, updated_at = %s WHERE name = %s",
                         (enabled, time.time(), name))
            _notify(conn, {"op": "switch", "channel": name, "enabled": enabled, "node": node})

    def _select(self, where: str, params: tuple[Any, ...]) -> list[ChannelRecord]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT name, component, capabilities, provenance, version, enabled "
                                f"FROM cluster_channels {where}", params).fetchall()
        return [ChannelRecord(name=r[0], component=bytes(r[1]), capabilities=r[2], provenance=r[3], version=r[4],
                              enabled=r[5]) for r in rows]

    def list(self) -> list[ChannelRecord]:
        return self._select("ORDER BY name", ())

    def get(self, name: str) -> ChannelRecord | None:
        return next(iter(self._select("WHERE name = %s", (name,))), None)



def _notify(conn: Any, payload: dict[str, Any]) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CLUSTER_CHANNEL, json.dumps(payload)))
