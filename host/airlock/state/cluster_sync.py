"""One node's part of the cluster's channels (``state.cluster``): write them into the home at start, record this
node's version changes for the others, and apply the others' changes within seconds.

Changes travel on PostgreSQL's LISTEN/NOTIFY (channel ``state.postgres.CLUSTER_CHANNEL``; a NOTIFY sent inside a
transaction is delivered when it commits, so no node hears of a change that is not stored). ``node`` is the sender,
``ID:PID`` (under ``serve --workers N`` the workers of one node share its id, and each must apply a change made
through another), or null for the CLI; a process ignores its own notices:

- ``{"op": "switch", "channel": NAME, "enabled": BOOL, "node": ...}``: the admin API disabled or enabled a channel;
  every other process does the same (``channels.lifecycle``), and a node starting later applies the stored switch;
- ``{"op": "installed", "channel": NAME, "version": V, "node": ...}``: the channel's active version is V (a new
  install, an upgrade, a rollback); a process that does not run V writes the record into its home and loads it, or
  swaps to it live (``channels.operations.Operations.follow``: the hot swap, automatic rollback included);
- ``{"op": "removed", "channel": NAME, "node": ...}``: the channel was removed; every process stops and forgets it,
  and its copy leaves the home;
- ``{"op": "secrets"}``: a secret was set or removed (``stores.secrets_pg``); the node reloads its secrets and starts
  the channels that were waiting for a missing secret.

A process whose listening connection drops connects again after :data:`RELISTEN_S` and catches up from the stored
rows (notices sent meanwhile are lost to it): the switches, the active versions and the tombstones.

The same connection listens on ``state.postgres.APPENDED_CHANNEL``: which agents got new entries on any node
(``messages.wakeup``), so agents waiting here lease them at once (``on_appended``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from ..channels.catalog import find
from ..channels.layout import ChannelStore
from ..errors import AirlockError
from ..messages.wakeup import from_here
from ..messages.wakeup import parse as parse_appended
from .cluster import ChannelRecord, ChannelRecords, materialise, record_from_home, unmaterialise
from .postgres import APPENDED_CHANNEL, CLUSTER_CHANNEL

if TYPE_CHECKING:
    from ..channels.manager import ChannelManager
    from ..channels.operations import Operations
    from ..stores.secrets import SecretStore

__all__ = ["RELISTEN_S", "ClusterSync"]

log = logging.getLogger("airlock.cluster")

RELISTEN_S = 2.0
"""Seconds before a node whose LISTEN connection dropped connects again."""
_WAITING_FOR_SECRETS = "inactive: missing secrets"


class ClusterSync:
    """One node's part (module docstring). ``operations`` apply the others' version changes and removals here, and
    call :meth:`recorded` / :meth:`removed` for this node's own (``Operations.cluster``)."""

    def __init__(self, records: ChannelRecords, dsn: str, operations: Operations, secrets: SecretStore,
                 node: str, channels_dir: Path) -> None:
        self.records = records
        self._dsn = dsn
        self._ops = operations
        self._manager: ChannelManager = operations.manager
        self._secrets = secrets
        self.node = node
        self._sender = f"{node}:{os.getpid()}"
        self._channels_dir = channels_dir
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.on_appended: Callable[[dict[str, int] | None], None] | None = None
        """Called with ``{agent: count}`` (None: every agent) when a node appended entries (``messages.wakeup``);
        set before ``start``. The host wakes its waiting agents (``Inbox.wake``)."""

    def materialise(self) -> list[str]:
        """Install the cluster's channels into this home and remove the ones it removed (blocking; before the
        channels are loaded). The flat layout is migrated first, so a record lands beside (or upgrades) the
        instances it became."""
        try:
            ChannelStore(self._channels_dir).migrate()
        except OSError as exc:
            log.warning("cluster: channels in %s not migrated: %s", self._channels_dir, exc.strerror or exc)
        written = materialise(self.records.list(), self._channels_dir, lenient=self._manager.lenient_capabilities,
                              removed=self.records.removed())
        if written:
            log.info("cluster: wrote or removed %s in %s", ", ".join(written), self._channels_dir)
        return written

    async def start(self) -> None:
        """Catch up with the stored state and start listening; returns once the node listens."""
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

    # ---- this node's changes ------------------------------------------------------------------------------

    async def announce_switch(self, name: str, enabled: bool) -> None:
        """This node's operator switched ``name``: store it and tell the others (the admin API calls this)."""
        await asyncio.to_thread(self.records.set_enabled, name, enabled, self._sender)

    async def recorded(self, name: str) -> None:
        """``name`` runs another version here (an upgrade or rollback): make it the cluster's, if the cluster has
        the channel (one installed in this home only stays here)."""
        rec = await asyncio.to_thread(record_from_home, self._channels_dir, name)
        if await asyncio.to_thread(self.records.put, rec, node=self._sender, replace_only=True):
            log.info("cluster: %s %s recorded for every node", name, rec.version)

    async def removed(self, name: str) -> None:
        """``name`` was removed here: remove it from the cluster (every node follows)."""
        if await asyncio.to_thread(self.records.remove, name, node=self._sender):
            log.info("cluster: %s removed for every node", name)

    # ---- the others' changes ------------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CLUSTER_CHANNEL}")
                    if self.on_appended is not None:
                        await conn.execute(f"LISTEN {APPENDED_CHANNEL}")
                    await self._catch_up()  # what changed while this node was not listening
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
        """Entries appended on another process (``messages.wakeup``): wake this node's waiting agents at once (this
        process's own appends woke them already)."""
        if self.on_appended is not None and not from_here(payload):
            self.on_appended(parse_appended(payload))

    async def _catch_up(self) -> None:
        for name in await asyncio.to_thread(self.records.removed):
            await self._removed(name)
        store = ChannelStore(self._channels_dir)
        for rec in await asyncio.to_thread(self.records.list):
            # a channel of the home that is not loaded failed to load here: not tried again at every reconnect
            if rec.name in self._manager.slots or not store.exists(rec.name):
                await self._installed(rec.name, rec)
            await self._switch(rec.name, rec.enabled)

    async def _handle(self, payload: str) -> None:
        try:
            change = json.loads(payload)
        except ValueError:
            return
        op, mine = change.get("op"), change.get("node") == self._sender
        name = str(change.get("channel"))
        if op == "switch" and not mine:
            await self._switch(name, bool(change.get("enabled")))
        elif op == "installed" and not mine:
            await self._installed(name)
        elif op == "removed" and not mine:
            await self._removed(name)
        elif op == "secrets":
            await self._secrets_changed()

    async def _switch(self, name: str, enabled: bool) -> None:
        from ..channels import lifecycle

        slot = self._manager.slots.get(name)
        if slot is None or slot.disabled != enabled:  # unknown here, or already so
            return
        await (lifecycle.enable if enabled else lifecycle.disable)(self._manager, name)
        log.info("cluster: channel %s %s by another node", name, "enabled" if enabled else "disabled")

    async def _installed(self, name: str, rec: ChannelRecord | None = None) -> None:
        """Run the stored active version of ``name`` (``rec``, else read) here: write it into the home, then load
        it (a channel new here) or swap to it (a loaded one on another version)."""
        if rec is None:
            rec = await asyncio.to_thread(self.records.get, name)
        slot = self._manager.slots.get(name)
        if rec is None or (slot is not None and slot.channel.version == rec.version):
            return
        lenient = self._manager.lenient_capabilities
        await asyncio.to_thread(materialise, [rec], self._channels_dir, lenient=lenient)
        if slot is not None:
            try:
                doc = await self._ops.follow(name, rec.version)
            except AirlockError as exc:
                log.error("cluster: channel %s stays on %s here; version %s not run: %s", name,
                          slot.channel.version, rec.version, exc)
                return
            log.info("cluster: channel %s runs %s, as another node chose (%s)", name, doc.get("version"),
                     doc.get("status"))
            return
        # loaded as ``channels.operations.load_installed`` loads an installed channel at start
        entry = await asyncio.to_thread(find, self._channels_dir, name, lenient=lenient)
        if entry is None or entry.caps is None:
            log.error("cluster: channel %s installed by another node, not loaded: %s", name,
                      entry.error if entry is not None else "not installed here")
            return
        if name in self._manager.slots:  # loaded meanwhile (this node's own install)
            return
        try:
            await self._manager.add(entry.component, entry.caps, instance=entry.name, version=entry.version,
                                    disabled=entry.disabled)
        except AirlockError as exc:
            log.error("cluster: channel %s installed by another node, not loaded: %s", name, exc)
            return
        log.info("cluster: channel %s %s installed by another node, loaded", name, entry.version)

    async def _removed(self, name: str) -> None:
        dropped = await self._ops.drop(name)
        gone = await asyncio.to_thread(unmaterialise, name, self._channels_dir)
        if dropped or gone:
            log.info("cluster: channel %s removed by another node", name)

    async def _secrets_changed(self) -> None:
        reload = getattr(self._secrets, "reload", None)
        if reload is not None:
            await asyncio.to_thread(reload)
        for name, slot in list(self._manager.slots.items()):
            if not slot.disabled and not slot.active and slot.reason.startswith(_WAITING_FOR_SECRETS) \
                    and not self._manager.missing_secrets(slot.channel.caps):
                from ..channels import lifecycle

                await lifecycle.enable(self._manager, name)
