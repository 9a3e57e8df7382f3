"""The operator's channel operations on a running gateway, in one place for every door: the control socket the
CLI uses (``airlock.control``) and the admin API (``airlock.admin``) call these, and only these.

Each changes the running channels *and* the home, so a restart finds what the operator chose:

- ``enable`` / ``disable``: ``instance.json``'s ``disabled`` flag, and the live switch (``channels.lifecycle``);
- ``install``: load an instance just written to the home (``airlock channels install``);
- ``upgrade`` / ``rollback``: swap in a version kept on disk (``channels.swap``); the active version is recorded
  only once the new one runs, so a failed start (rolled back automatically) leaves the home as it was;
- ``reload``: restart the channel on the same version with the operator's edited settings (``channels.settings``);
- ``remove``: stop the channel, forget it, delete its directory (secrets, workspace and pairings are kept);
- ``secrets_changed``: start or stop the channels a stored or removed secret concerns;
- ``sync`` / ``sync_all``: make the running channel(s) match the home, writing nothing: how the other workers of
  ``airlock serve --workers N`` follow what worker 0 changed (``workers.fanout``).

With PostgreSQL state an upgrade, rollback or remove that succeeded is also recorded for the cluster (``cluster``, a
``state.cluster_sync.ClusterSync``), whose other nodes apply it with ``follow`` (the same swap, nothing recorded:
their home has the version active already) and ``drop`` (stop and forget).

Operations are serialized (one at a time for the whole gateway). Errors are :class:`LifecycleError` with an HTTP
status and one line safe to show; nothing is changed then.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import AirlockError, ComponentError, ConfigError
from . import lifecycle
from .catalog import generate_secrets, list_installed
from .layout import ChannelStore
from .settings import effective_caps
from .swap import replace

if TYPE_CHECKING:
    from ..stores import SecretStore
    from .manager import ChannelManager
    from .slot import ChannelSlot

__all__ = ["ClusterRecorder", "LifecycleError", "Operations", "load_installed"]

log = logging.getLogger("airlock.channels")


class ClusterRecorder(Protocol):
    """Where a node records its version changes for the cluster (``state.cluster_sync.ClusterSync``)."""

    async def recorded(self, name: str) -> None: ...
    async def removed(self, name: str) -> None: ...


class LifecycleError(ConfigError):
    """An operation refused or failed: ``status`` (HTTP: 400 bad input, 404 unknown, 409 conflict / did not
    start) and a one-line message safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def load_installed(manager: ChannelManager, store: ChannelStore, *, migrate: bool = True) -> None:
    """Migrate the flat layout (``ChannelStore.migrate``, unless ``migrate`` is false: a worker other than the
    first; a directory that cannot be written is read as it is) and load every installed channel into ``manager``;
    one that fails is logged and skipped. ``manager.loading`` is false once it returns (webhooks for paths no channel
    serves are 404 from then on, ``inbound.server``)."""
    try:
        if migrate:
            store.migrate()
    except OSError as exc:
        log.warning("channels in %s not migrated to the versioned layout: %s", store.root, exc.strerror or exc)
    try:
        for entry in list_installed(store.root, lenient=manager.lenient_capabilities):
            if entry.caps is None:
                log.error("channel %s not loaded: %s", entry.name, entry.error)
                continue
            try:
                await manager.add(entry.component, entry.caps, instance=entry.name, version=entry.version,
                                  disabled=entry.disabled)
            except AirlockError as exc:
                log.error("channel %s not loaded: %s", entry.name, exc)
    finally:
        manager.loading = False


class Operations:
    """The operations of one running gateway (module docstring)."""

    def __init__(self, manager: ChannelManager, store: ChannelStore, secrets: SecretStore) -> None:
        self.manager = manager
        self.store = store
        self.secrets = secrets
        self.cluster: ClusterRecorder | None = None
        """Records upgrades, rollbacks and removes for the other nodes (PostgreSQL state; module docstring)."""
        self._lock = asyncio.Lock()

    # ---- documents ----------------------------------------------------------------------------------------

    def doc(self, name: str) -> dict[str, Any]:
        """``{"name", "platform", "version", "versions", "previous", "active", "disabled", "status"}``."""
        slot = self.manager.slots.get(name)
        out: dict[str, Any] = {"name": name, "platform": None, "version": None, "versions": [], "previous": None,
                               "active": bool(slot and slot.active), "disabled": bool(slot and slot.disabled),
                               "status": slot.reason if slot is not None else "not loaded"}
        if slot is not None:
            out.update(platform=slot.channel.platform, version=slot.channel.version)
        if self.store.exists(name):
            inst = self.store.get(name)
            out.update(platform=inst.platform, versions=inst.versions, previous=inst.previous)
        return out

    def _slot(self, name: str) -> ChannelSlot:
        slot = self.manager.slots.get(name)
        if slot is None:
            raise LifecycleError(404, f"no channel named {name[:64]!r} is loaded")
        return slot

    def _installed(self, name: str) -> None:
        if not self.store.exists(name):
            raise LifecycleError(404, f"no channel named {name[:64]!r} is installed in {self.store.root}")

    # ---- operations ---------------------------------------------------------------------------------------

    async def enable(self, name: str) -> dict[str, Any]:
        async with self._lock:
            self._slot(name)
            if self.store.exists(name):
                self.store.set_disabled(name, False)
            await self.manager.enable(name)
            return self.doc(name)

    async def disable(self, name: str) -> dict[str, Any]:
        async with self._lock:
            self._slot(name)
            if self.store.exists(name):
                self.store.set_disabled(name, True)
            await self.manager.disable(name)
            return self.doc(name)

    async def install(self, name: str) -> dict[str, Any]:
        """Load instance ``name``, just written to the home, into the gateway."""
        async with self._lock:
            self._installed(name)
            if name in self.manager.slots:
                raise LifecycleError(409, f"channel {name!r} is loaded already (upgrade it instead)")
            inst = self.store.get(name)
            caps = self._caps(name, inst.active)
            generate_secrets(caps, name, self.secrets.exists, self.secrets.set)
            try:
                await self.manager.add(self.store.component(name, inst.active), caps, instance=name,
                                       version=inst.active, disabled=inst.disabled)
            except ComponentError as exc:
                raise LifecycleError(400, str(exc)) from None
            return self.doc(name)

    async def upgrade(self, name: str, version: str) -> dict[str, Any]:
        """Run kept version ``version`` of ``name`` instead of the active one (module docstring)."""
        async with self._lock:
            doc = await self._switch(name, version)
            await self._tell_cluster("recorded", name)
            return doc

    async def rollback(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Run ``version`` (default: the one activated before the active one)."""
        async with self._lock:
            self._installed(name)
            target = version or self.store.get(name).previous
            if target is None:
                raise LifecycleError(409, f"{name} has no earlier version kept to roll back to")
            doc = await self._switch(name, target)
            await self._tell_cluster("recorded", name)
            return doc

    async def reload(self, name: str) -> dict[str, Any]:
        """Restart ``name`` on its active version with the operator's current settings."""
        async with self._lock:
            self._installed(name)
            return await self._switch(name, self.store.get(name).active, same=True)

    async def remove(self, name: str) -> dict[str, Any]:
        async with self._lock:
            self._installed(name)
            if name in self.manager.slots:
                await self.manager.remove(name)
            self.store.remove(name)
            await self._tell_cluster("removed", name)
            return {"name": name, "removed": True}

    async def follow(self, name: str, version: str) -> dict[str, Any]:
        """Run ``version`` of loaded channel ``name``: another node (or process) made it the cluster's active
        version, and ``state.cluster`` made it the home's. The swap of :meth:`upgrade`, nothing recorded; a
        version that does not start here is rolled back here (LifecycleError 409, the old one runs)."""
        async with self._lock:
            slot = self._slot(name)
            if slot.channel.version == version:
                return self.doc(name)
            caps = await asyncio.to_thread(self._caps, name, version)
            try:
                result = await replace(self.manager, name, self.store.component(name, version), caps, version=version)
            except ComponentError as exc:
                raise LifecycleError(400, str(exc)) from None
            if not result.started:
                raise LifecycleError(409, f"version {version} of {name} did not start ({result.reason}); version "
                                          f"{slot.channel.version} runs again")
            return self.doc(name)

    async def drop(self, name: str) -> bool:
        """Stop and forget ``name`` (another node removed it from the cluster; its home copy is removed by the
        caller). Not announced as a switch. False when it was not loaded."""
        async with self._lock:
            if name not in self.manager.slots:
                return False
            await lifecycle.disable(self.manager, name)
            self.manager.slots.pop(name, None)
            return True

    async def secrets_changed(self) -> dict[str, Any]:
        async with self._lock:
            changed = await self.manager.secrets_changed()
            return {"changed": [self.doc(n) for n in changed]}

    async def _tell_cluster(self, what: str, name: str) -> None:
        """Record a done change for the cluster; the change here stands whatever happens there (the database is
        down: the other nodes keep their version until told again, a restarted node takes the stored one)."""
        if self.cluster is None:
            return
        try:
            await (self.cluster.recorded if what == "recorded" else self.cluster.removed)(name)
        except Exception as exc:
            log.warning("channel %s: the other nodes were not told (%s): %s", name, what, exc)

    # ---- following the home (the other workers of ``--workers N``) ------------------------------------------

    async def sync(self, name: str, *, restart: bool = False) -> dict[str, Any]:
        """Make channel ``name`` run as the home records it, without writing the home: removed (not installed),
        added (installed, not loaded), swapped to the home's active version (or on the same version with the
        operator's current settings when ``restart``), then enabled or disabled as recorded. LifecycleError 409
        when the recorded version did not start here (the version that ran before runs again)."""
        async with self._lock:
            return await self._follow(name, restart)

    async def sync_all(self) -> dict[str, Any]:
        """:meth:`sync` every channel loaded or installed, then :meth:`secrets_changed`: a worker that was starting
        while the home changed (``workers.fanout``). ``{"channels": [doc, ...], "changed": [doc, ...]}``; a channel
        that fails is logged and reported by its doc."""
        docs = []
        for name in sorted(set(self.manager.slots) | set(self.store.names())):
            try:
                docs.append(await self.sync(name))
            except AirlockError as exc:
                log.error("channel %s: not brought in line with the home: %s", name, exc)
                docs.append(self.doc(name))
        return {"channels": docs, **await self.secrets_changed()}

    async def _follow(self, name: str, restart: bool) -> dict[str, Any]:
        if not self.store.exists(name):
            if name in self.manager.slots:  # as ``drop``: worker 0 announced the change already
                await lifecycle.disable(self.manager, name)
                self.manager.slots.pop(name, None)
            return {"name": name, "removed": True}
        inst = self.store.get(name)
        slot = self.manager.slots.get(name)
        if slot is None:
            caps = await asyncio.to_thread(self._caps, name, inst.active)
            try:
                await self.manager.add(self.store.component(name, inst.active), caps, instance=name,
                                       version=inst.active, disabled=inst.disabled)
            except AirlockError as exc:  # a component that does not load here: one line, as worker 0 says it
                raise LifecycleError(400, " ".join(str(exc).split())) from None
            return self.doc(name)
        if restart or slot.channel.version != inst.active:
            caps = await asyncio.to_thread(self._caps, name, inst.active)
            try:
                result = await replace(self.manager, name, self.store.component(name, inst.active), caps,
                                       version=inst.active)
            except ComponentError as exc:
                raise LifecycleError(400, str(exc)) from None
            if not result.started:
                raise LifecycleError(409, f"version {inst.active} of {name} did not start here ({result.reason}); "
                                          f"version {slot.channel.version} runs again")
        if inst.disabled != self.manager.slots[name].disabled:  # not announced: worker 0 did (``state.cluster``)
            await (lifecycle.disable if inst.disabled else lifecycle.enable)(self.manager, name)
        return self.doc(name)

    # ---- the swap -----------------------------------------------------------------------------------------

    def _record(self, name: str, version: str) -> list[str]:
        self.store.activate(name, version)
        return self.store.prune(name)

    def _caps(self, name: str, version: str) -> Any:
        try:
            return effective_caps(self.store, name, version, lenient=self.manager.lenient_capabilities)
        except ConfigError as exc:
            raise LifecycleError(400, " ".join(str(exc).split())) from None

    async def _switch(self, name: str, version: str, *, same: bool = False) -> dict[str, Any]:
        self._installed(name)
        inst = self.store.get(name)
        if version not in inst.versions:
            raise LifecycleError(404, f"{name} has no version {version[:64]!r} (kept: {', '.join(inst.versions)})")
        if version == inst.active and not same and name in self.manager.slots:
            raise LifecycleError(409, f"{name} runs version {version} already")
        caps = await asyncio.to_thread(self._caps, name, version)
        wasm = self.store.component(name, version)
        if name not in self.manager.slots:  # installed but not running (it failed to load at start)
            self.store.activate(name, version)
            await self.manager.add(wasm, caps, instance=name, version=version, disabled=inst.disabled)
            return self.doc(name)
        old = self.manager.slots[name].channel.version
        try:
            result = await replace(self.manager, name, wasm, caps, version=version)
        except ComponentError as exc:
            raise LifecycleError(400, str(exc)) from None
        if not result.started:
            raise LifecycleError(409, f"version {version} of {name} did not start ({result.reason}); version {old} "
                                      f"runs again")
        dropped = await asyncio.to_thread(self._record, name, version)  # fsync: off the event loop
        if dropped:
            log.info("channel %s: old versions %s removed (%d kept)", name, ", ".join(dropped),
                     len(self.store.get(name).versions))
        return {**self.doc(name), "from": old}
