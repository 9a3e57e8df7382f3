"""Installing into the home: a bare component + capabilities file, or a verified package (``airlock.packages``), as
a new channel (``channels install``, ``--as NAME`` for a second account) or as a new version of an installed one
(``channels install --force``, ``channels upgrade``). Every source goes through the same checks, then
``channels.install.stage`` writes the version (``HOME/channels/NAME/VERSION/``, the package's provenance record as
the version's ``provenance.json``). A running gateway (its control socket, ``airlock.control``) is then asked to
start the new channel or switch to the new version; without one the home is edited directly.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..channels.activation import wit_version_note
from ..channels.install import stage
from ..channels.layout import PROVENANCE_FILE, ChannelStore
from ..control import gateway_for
from ..errors import AirlockError, ConfigError, PackageError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile
from ..packages import Provenance, VerifiedPackage, bare_provenance, read_provenance
from ..runtime.engine import LoadedComponent
from . import report
from .common import lazy_store, lenient_note, load_component, migrate_quietly, missing_secrets, runtime_for
from .install_check import check_fit, check_world

if TYPE_CHECKING:
    from ..state.cluster import ChannelRecords

__all__ = ["cluster_records", "install_files", "install_package", "live", "load_checked", "say", "share", "switch"]

log = logging.getLogger("airlock.cli")


def load_checked(config: HostConfig, wasm: Path, caps: Path, doc: CapabilitiesFile) -> LoadedComponent:
    """Load ``wasm`` (a clear one-line error if it does not), check its world against ``doc``, and warn about a WIT
    version mismatch."""
    with runtime_for(config) as runtime:
        loaded = load_component(runtime, wasm)
    check_world(doc, caps, loaded)
    world_version = loaded.world.channel_interface.rsplit("@", 1)[-1]
    additive = loaded.world.channel_interface.startswith("airlock:channel/")  # versions only add (wit/channel.wit)
    if wit_version_note(doc.wit_version, world_version, additive=additive) is not None:
        log.warning("%s: $.wit_version: %s, but the component was built against %s", caps, doc.wit_version,
                    loaded.world.channel_interface)
    return loaded


def install_package(config: HostConfig, pkg: VerifiedPackage, *, force: bool, lenient: bool = False,
                    as_name: str | None = None, upgrade: bool = False) -> None:
    """Install a verified package (``packages.verify_package``) and record its provenance. The members go
    through a private temporary directory outside the home, then the same checks as a bare install.

    Raises:
        ConfigError / ComponentError / PackageError: the members do not load or do not match the manifest,
            or the channel is installed and not ``force``; nothing in the home is changed then.
    """
    with tempfile.TemporaryDirectory(prefix="airlock-install-") as tmp:  # 0700, outside the home
        wasm_path = Path(tmp) / pkg.manifest.component_member
        caps_path = Path(tmp) / pkg.manifest.caps_member
        wasm_path.write_bytes(pkg.component)
        caps_path.write_bytes(pkg.capabilities)
        try:
            install_files(config, wasm_path, caps_path, pkg, force=force, lenient=lenient, as_name=as_name,
                          upgrade=upgrade)
        except AirlockError as exc:  # name the package's member, not the temporary directory
            text = str(exc).replace(f"{tmp}/", f"{pkg.provenance.source}: ")
            if text == str(exc):
                raise
            raise ConfigError(text) from None


def _check_matches(pkg: VerifiedPackage, doc: CapabilitiesFile, loaded: LoadedComponent) -> None:
    """The package's manifest must say what its members are: the same name, version and world."""
    if doc.name != pkg.name or doc.version != pkg.version:
        raise PackageError(f"{pkg.provenance.source}: the manifest says {pkg.name} {pkg.version}, its "
                           f"capabilities file {doc.name} {doc.version}")
    if loaded.world.name != pkg.world:
        raise PackageError(f"{pkg.provenance.source}: the manifest says world {pkg.world}, the component is "
                           f"{loaded.world.name}")


def _check_same_publisher(store: ChannelStore, name: str, new: Provenance) -> None:
    """A channel installed with a trusted signature is replaced only by one signed with the same key (as a
    phone accepts an app update only from the app's signer): another publisher, or none, could otherwise take
    over its secrets, workspace and pairings with a plain --force. Removing the channel first is the
    operator's explicit choice."""
    if not store.exists(name):
        return
    old = read_provenance(store.version_dir(name, store.get(name).active) / PROVENANCE_FILE)
    if old is not None and old.signed and new.key_id != old.key_id:
        raise PackageError(f"channel {name!r} was installed signed by {old.publisher} ({old.key_id}); this one is "
                           f"{new.summary()} (airlock channels remove {name} first to change publisher)")


def install_files(config: HostConfig, wasm: Path, caps: Path, pkg: VerifiedPackage | None, *, force: bool,
                  lenient: bool, as_name: str | None = None, upgrade: bool = False) -> None:
    """Validate a component and its capabilities file, keep them as a version in the home and start it (module
    docstring). ``pkg``: the verified package they came from, or None for a bare install; ``upgrade``: the channel
    must be installed already (``channels upgrade``)."""
    from .channels import _load_runnable

    doc = _load_runnable(caps, lenient=lenient)
    loaded = load_checked(config, wasm, caps, doc)
    if pkg is not None:
        _check_matches(pkg, doc, loaded)
    provenance = pkg.provenance if pkg is not None else bare_provenance(
        doc.name, doc.version, loaded.world.name, wasm.read_bytes(), caps.read_bytes(), str(wasm.resolve()))
    store = ChannelStore(config.channels_dir)
    migrate_quietly(store)
    name = as_name or doc.name
    exists = store.exists(name)
    if exists and not (force or upgrade):
        raise ConfigError(f"channel {name!r} is already installed in {store.root} (airlock channels upgrade {name} "
                          f"..., or --force)")
    if upgrade and not exists:
        raise ConfigError(f"no channel named {name!r} is installed in {store.root} (airlock channels install)")
    _check_same_publisher(store, name, provenance)
    if not exists:
        check_fit(config, doc, caps, wasm)
    staged = stage(store, wasm.read_bytes(), caps.read_bytes(), source=str(caps), as_name=as_name or None,
                   upgrade=exists, version=pkg.version if pkg is not None else None,
                   provenance=provenance.as_dict(), lenient=lenient)
    if lenient:
        lenient_note(caps, config)
    if exists:
        if staged.version == store.get(name).active:  # the same version again: nothing to do
            typer.echo(f"{name} runs {staged.version} already")
            return
        switch(config, store, name, staged.version, f"upgraded ({provenance.summary()})")
        if share(config, name):
            typer.echo(f"stored {name} {staged.version} for every node of the cluster (a node starting later runs it)")
        return
    reply = live(config, name, "install")
    running = f"; running gateway: {reply['status']}" if reply is not None else ""
    shared = share(config, name)
    typer.echo(f"installed {name} {staged.version} ({loaded.world.name}, {report.human_size(loaded.size_bytes)}, "
               f"{provenance.summary()}) in {store.root}{running}"
               + (" and for every node of the cluster" if shared else ""))
    missing = missing_secrets(staged.caps, lazy_store(config), instance=name)
    if missing:
        typer.echo(f"inactive until its secrets are set: "
                   f"{'; '.join(f'airlock secrets set {m}' for m in missing)}")


# ---- the cluster's record (``state.cluster``) ---------------------------------------------------------------


def cluster_records(config: HostConfig) -> ChannelRecords | None:
    """The cluster's installed channels (``state.cluster``) with PostgreSQL state (a pool left open for the
    command's short life); None on SQLite."""
    url = config.state_url
    if url.kind != "postgresql" or url.dsn is None:
        return None
    # imported here: psycopg is for PostgreSQL state only (the embedded default never loads it)
    from ..state.cluster import ChannelRecords
    from ..state.postgres import PgDb

    return ChannelRecords(PgDb(url.dsn, max_size=1))


def share(config: HostConfig, name: str) -> bool:
    """Store the active version of the channel ``name`` just installed for every node (PostgreSQL state); True
    when stored."""
    records = cluster_records(config)
    if records is None:
        return False
    from ..state.cluster import record_from_home

    records.put(record_from_home(config.channels_dir, name))
    return True


# ---- talking to a running gateway, or editing the home -------------------------------------------------------


def live(config: HostConfig, name: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The gateway's answer to ``action`` on ``name`` (``control.server``), or None when no gateway serves the home.
    Raises ControlRefused (one line) when the gateway refused or the action failed."""
    gateway = gateway_for(config.home)
    if gateway is None:
        return None
    return {**gateway.call("POST", f"/v1/channels/{name}/{action}", body or {}), "live": True}


def offline_doc(store: ChannelStore, name: str) -> dict[str, Any]:
    inst = store.get(name)
    return {"name": name, "version": inst.active, "status": "disabled" if inst.disabled else "enabled",
            "live": False}


def say(doc: dict[str, Any], what: str) -> None:
    via = " (running gateway)" if doc.get("live") else " (in the home; the next airlock serve starts it so)"
    typer.echo(f"{what}{via}: {doc.get('name')} {doc.get('version') or ''} {doc.get('status') or ''}".rstrip())
    warn_workers(doc)


def warn_workers(doc: dict[str, Any]) -> None:
    """One line on stderr for each worker of ``serve --workers N`` that did not follow (``workers.fanout``)."""
    for row in doc.get("workers") or ():
        if isinstance(row, dict) and row.get("error"):
            typer.echo(f"warning: worker {row.get('index')}: {report.safe(str(row['error']), 300)}", err=True)


def switch(config: HostConfig, store: ChannelStore, name: str, version: str, what: str) -> None:
    """Run kept ``version`` of ``name``: through the gateway (which rolls back a version that does not start and
    records the active one), or in the home."""
    before = store.get(name).active
    if version == before:
        raise ConfigError(f"{name} runs version {version} already")
    doc = live(config, name, "upgrade", {"version": version})
    if doc is None:
        store.activate(name, version)
        store.prune(name)
        doc = offline_doc(store, name)
        # a gateway records it itself once the version runs (``channels.operations``); here the home is the
        # one that changed: the nodes of the cluster (and the workers of ``serve --workers N``) follow it
        records = cluster_records(config)
        if records is not None:
            from ..state.cluster import record_from_home

            records.put(record_from_home(config.channels_dir, name), replace_only=True)
    say(doc, f"{what} from {before}")
