"""Channels installed once for a cluster, and hot changes seen by every node (issue 12, "Cluster of nodes").

With PostgreSQL state, ``airlock channels install`` on any node also stores the installed channel in the table
``cluster_channels`` (component, capabilities file, provenance record, a digest, and the operator's switch
``enabled``); ``channels remove`` deletes it. Every node, at start, writes the stored channels into its home
(:func:`materialise`, before loading them): install once, run everywhere. The files of a channel installed only in
one home are left alone.

Hot changes travel on PostgreSQL's LISTEN/NOTIFY (channel ``state.postgres.CLUSTER_CHANNEL``; a NOTIFY sent inside
a transaction is delivered when it commits, so no node hears of a change that is not stored):

- ``{"op": "switch", "channel": NAME, "enabled": BOOL, "node": "ID:PID"}``: the admin API disabled or enabled a
  channel in process PID of node ID; every other process does the same (``channels.lifecycle``), and a node
  starting later applies the stored switch;
- ``{"op": "installed", "channel": NAME}``: a channel was installed; a node that has not loaded it writes and loads
  it (replacing a loaded channel is the lifecycle's upgrade, not done here);
- ``{"op": "secrets"}``: a secret was set or removed (``stores.secrets_pg``); the node reloads its secrets and starts
  the channels that were waiting for a missing secret.

The same connection listens on ``state.postgres.APPENDED_CHANNEL``: which agents got new entries on any node
(``messages.wakeup``), so agents waiting here lease them at once (``on_appended``).

A node whose listening connection drops reconnects after :data:`RELISTEN_S` and re-applies every stored switch
(notifications sent meanwhile are lost to it). A record is the active version of an instance of the versioned layout
(``channels.layout``): :func:`record_from_home` reads it, :func:`materialise` installs it through
``channels.install.stage``, so the node's own CLI and the lifecycle operations (versions, rollback) see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from ..channels.catalog import find
from ..channels.install import stage
from ..channels.layout import PROVENANCE_FILE, ChannelStore
from ..errors import AirlockError, ConfigError
from ..messages.wakeup import parse as parse_appended
from ..stores.files import private_dir
from .postgres import APPENDED_CHANNEL, CLUSTER_CHANNEL, PgDb

if TYPE_CHECKING:
    from ..channels.manager import ChannelManager
    from ..stores.secrets import SecretStore

__all__ = ["RELISTEN_S", "ChannelRecord", "ChannelRecords", "ClusterSync", "materialise", "record_from_home"]

log = logging.getLogger("airlock.cluster")

RELISTEN_S = 2.0
"""Seconds before a node whose LISTEN connection dropped connects again."""
_WAITING_FOR_SECRETS = "inactive: missing secrets"
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


def materialise(records: list[ChannelRecord], channels_dir: Path, *, lenient: bool = False) -> list[str]:
    """Install each record into ``channels_dir`` as its instance's active version (``channels.install.stage``),
    unless that version is active already; return the names written. A record that cannot be installed here (an
    invalid file, a version kept with other bytes) is logged and skipped: the node runs the others.

    Processes of one node (``serve --workers``) may materialise at once: a lock file in ``channels_dir`` makes them
    take turns (the layout has one writer at a time, ``ChannelStore``)."""
    private_dir(channels_dir)
    store = ChannelStore(channels_dir)
    written = []
    with open(channels_dir / _LOCK_FILE, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        for rec in records:
            try:
                if _place(store, rec, lenient=lenient):
                    written.append(rec.name)
            except (AirlockError, OSError) as exc:
                log.warning("cluster: channel %s not installed here: %s", rec.name, " ".join(str(exc).split()))
    return written


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

    def put(self, rec: ChannelRecord) -> None:
        """Store (or replace) ``rec``, keeping the stored switch, and tell every node."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO cluster_channels (name, component, capabilities, provenance, version, digest, enabled, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s, TRUE, %s) ON CONFLICT (name) DO UPDATE SET "
                "component = excluded.component, capabilities = excluded.capabilities, "
                "provenance = excluded.provenance, version = excluded.version, digest = excluded.digest, "
                "updated_at = excluded.updated_at",
                (rec.name, rec.component, rec.capabilities, rec.provenance, rec.version, rec.digest, time.time()))
            _notify(conn, {"op": "installed", "channel": rec.name})

    def remove(self, name: str) -> bool:
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM cluster_channels WHERE name = %s", (name,)).rowcount == 1

    def set_enabled(self, name: str, enabled: bool, node: str) -> None:
        """Store the operator's switch for ``name`` and tell every node (a channel installed in one home only
        has no row: the switch is still announced)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE cluster_channels SET enabled = %s, updated_at = %s WHERE name = %s",
                         (enabled, time.time(), name))
            _notify(conn, {"op": "switch", "channel": name, "enabled": enabled, "node": node})

    def list(self) -> list[ChannelRecord]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT name, component, capabilities, provenance, version, enabled "
                                "FROM cluster_channels ORDER BY name").fetchall()
        return [ChannelRecord(name=r[0], component=bytes(r[1]), capabilities=r[2], provenance=r[3], version=r[4],
                              enabled=r[5]) for r in rows]

    def get(self, name: str) -> ChannelRecord | None:
        return next((r for r in self.list() if r.name == name), None)


def _notify(conn: Any, payload: dict[str, Any]) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CLUSTER_CHANNEL, json.dumps(payload)))


class ClusterSync:
    """One node's part: materialise at start, apply stored switches, listen for changes (module docstring)."""

    def __init__(self, records: ChannelRecords, dsn: str, manager: ChannelManager, secrets: SecretStore,
                 node: str, channels_dir: Path) -> None:
        self.records = records
        self._dsn = dsn
        self._manager = manager
        self._secrets = secrets
        self.node = node
        # who sent a switch: this process (under ``serve --workers N`` the workers of one node share its id, and
        # each of them must apply a switch made through worker 0's admin API)
        self._sender = f"{node}:{os.getpid()}"
        self._channels_dir = channels_dir
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.on_appended: Callable[[dict[str, int] | None], None] | None = None
        """Called with ``{agent: count}`` (None: every agent) when a node appended entries (``messages.wakeup``);
        set before ``start``. The host wakes its waiting agents (``Inbox.wake``)."""

    def materialise(self) -> list[str]:
        """Install the cluster's channels into this home (blocking; before the channels are loaded). The flat
        layout is migrated first, so a record lands beside (or upgrades) the instances it became."""
        try:
            ChannelStore(self._channels_dir).migrate()
        except OSError as exc:
            log.warning("cluster: channels in %s not migrated: %s", self._channels_dir, exc.strerror or exc)
        written = materialise(self.records.list(), self._channels_dir,
                              lenient=self._manager.lenient_capabilities)
        if written:
            log.info("cluster: wrote %s into %s", ", ".join(written), self._channels_dir)
        return written

    async def start(self) -> None:
        """Apply the stored switches and start listening; returns once the node listens."""
        self._task = asyncio.get_running_loop().create_task(self._listen_forever(), name="airlock-cluster-listen")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._listening.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def announce_switch(self, name: str, enabled: bool) -> None:
        """This node's operator switched ``name``: store it and tell the others (the admin API calls this)."""
        await asyncio.to_thread(self.records.set_enabled, name, enabled, self._sender)

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CLUSTER_CHANNEL}")
                    if self.on_appended is not None:
                        await conn.execute(f"LISTEN {APPENDED_CHANNEL}")
                    await self._apply_switches()  # what changed while this node was not listening
                    self._listening.set()
                    async for note in conn.notifies():
                        if note.channel == APPENDED_CHANNEL:
                            self._appended(note.payload)
                        else:
                            await self._handle(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("cluster: change listener lost (%s); again in %.0f s", type(exc).__name__, RELISTEN_S)
            except Exception:  # one bad change must not stop the node from hearing the next ones
                log.exception("cluster: change listener failed")
            await asyncio.sleep(RELISTEN_S)

    def _appended(self, payload: str) -> None:
        """Entries appended on some node (``messages.wakeup``): wake this node's waiting agents at once."""
        if self.on_appended is not None:
            self.on_appended(parse_appended(payload))

    async def _apply_switches(self) -> None:
        for rec in await asyncio.to_thread(self.records.list):
            await self._switch(rec.name, rec.enabled)

    async def _handle(self, payload: str) -> None:
        try:
            change = json.loads(payload)
        except ValueError:
            return
        op = change.get("op")
        if op == "switch" and change.get("node") != self._sender:
            await self._switch(str(change.get("channel")), bool(change.get("enabled")))
        elif op == "installed":
            await self._installed(str(change.get("channel")))
        elif op == "secrets":
            await self._secrets_changed()

    async def _switch(self, name: str, enabled: bool) -> None:
        from ..channels import lifecycle

        slot = self._manager.slots.get(name)
        if slot is None or slot.disabled != enabled:  # unknown here, or already so
            return
        await (lifecycle.enable if enabled else lifecycle.disable)(self._manager, name)
        log.info("cluster: channel %s %s by another node", name, "enabled" if enabled else "disabled")

    async def _installed(self, name: str) -> None:
        if name in self._manager.slots:
            return
        rec = await asyncio.to_thread(self.records.get, name)
        if rec is None:
            return
        lenient = self._manager.lenient_capabilities
        await asyncio.to_thread(materialise, [rec], self._channels_dir, lenient=lenient)
        # loaded as ``channels.operations.load_installed`` loads an installed channel at start
        entry = await asyncio.to_thread(find, self._channels_dir, name, lenient=lenient)
        if entry is None or entry.caps is None:
            log.error("cluster: channel %s installed by another node, not loaded: %s", name,
                      entry.error if entry is not None else "not installed here")
            return
        if name in self._manager.slots:  # loaded meanwhile (this node's own install)
            return
        await self._manager.add(entry.component, entry.caps, instance=entry.name, version=entry.version,
                                disabled=entry.disabled)
        log.info("cluster: channel %s %s installed by another node, loaded", name, entry.version)

    async def _secrets_changed(self) -> None:
        reload = getattr(self._secrets, "reload", None)
        if reload is not None:
            await asyncio.to_thread(reload)
        for name, slot in list(self._manager.slots.items()):
            if not slot.disabled and not slot.active and slot.reason.startswith(_WAITING_FOR_SECRETS) \
                    and not self._manager.missing_secrets(slot.channel.caps):
                from ..channels import lifecycle

                await lifecycle.enable(self._manager, name)
