"""``airlock channels enable|disable|upgrade|rollback|remove|versions``.

With a gateway serving the home (its control socket answers, ``airlock.control``), each command asks the gateway,
which changes the running channel without a restart and records the change in the home
(``channels.operations``); without one, the command edits the home directly and the next ``serve`` starts what
it finds. ``upgrade NAME WASM CAPS`` writes the new version into the home first (``channels.install.stage``), then
switches to it; a new version that does not start is rolled back by the gateway at once and the command fails
with the reason. With PostgreSQL state, an upgrade, rollback or remove is recorded for the cluster (by the gateway
that ran it, or here when none runs), and every node follows within seconds (``state.cluster_sync``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..channels.layout import ChannelStore, check_instance_name
from ..errors import ConfigError
from ..host_config import HostConfig
from .app import config_from, friendly_errors
from .channels import channels_app, install_source
from .channels_install import cluster_records, live, offline_doc, say, switch
from .common import LenientOption, complete_channel, migrate_quietly
from .output import JsonOption, print_json

__all__ = ["NameArg"]

NameArg = Annotated[str, typer.Argument(help="The channel's name.", autocompletion=complete_channel)]


def _store(config: HostConfig, name: str) -> ChannelStore:
    check_instance_name(name)
    store = ChannelStore(config.channels_dir)
    migrate_quietly(store)
    store.get(name)  # ConfigError: not installed
    return store


def _switch(ctx: typer.Context, name: str, enabled: bool) -> None:
    """Enable or disable ``name``: in the running gateway (control socket) or, with none, in the home."""
    config = config_from(ctx)
    store = _store(config, name)
    doc = live(config, name, "enable" if enabled else "disable")
    if doc is None:
        store.set_disabled(name, not enabled)
        doc = offline_doc(store, name)
    say(doc, "enabled" if enabled else "disabled")


@channels_app.command("enable")
@friendly_errors
def channels_enable(ctx: typer.Context, name: NameArg) -> None:
    """Start a disabled channel (and keep it enabled across restarts)."""
    _switch(ctx, name, True)


@channels_app.command("disable")
@friendly_errors
def channels_disable(ctx: typer.Context, name: NameArg) -> None:
    """Stop a channel (its webhooks answer 404, poller and websocket stop, callbacks in flight finish) and keep
    it stopped across restarts."""
    _switch(ctx, name, False)


@channels_app.command("upgrade")
@friendly_errors
def channels_upgrade(
    ctx: typer.Context, name: NameArg,
    source: Annotated[str | None, typer.Argument(
        help="The new version: a package (.airlock or https:// URL), or a component (.wasm) followed by CAPS.")]
    = None,
    caps: Annotated[Path | None, typer.Argument(help="The component's capabilities file.")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", metavar="VERSION", help="Switch to this kept version instead (channels versions NAME).")] = None,
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Accept a package without a signature by a trusted key.")] = False,
    lenient: LenientOption = False,
) -> None:
    """Run a new version of an installed channel: a package, WASM + CAPS, or a kept --version.

    The operator's settings (channels config) carry over; the new file's defaults apply where none is set. A
    package signed by a trusted key replaces a signed channel only with the same key. A running gateway swaps
    versions live and rolls back at once if the new one does not start.
    """
    config = config_from(ctx)
    store = _store(config, name)
    if (source is None) == (version is None):
        raise ConfigError("give either the new version (a package, or WASM and CAPS), or --version VERSION")
    if source is not None:
        install_source(config, source, caps, allow_unsigned=allow_unsigned, lenient=lenient, as_name=name,
                       upgrade=True)
    elif version is not None:
        if version not in store.get(name).versions:
            raise ConfigError(f"{name} has no version {version[:64]!r} (kept: "
                              f"{', '.join(store.get(name).versions)})")
        switch(config, store, name, version, "upgraded")


@channels_app.command("rollback")
@friendly_errors
def channels_rollback(
    ctx: typer.Context, name: NameArg,
    to: Annotated[str | None, typer.Option("--to", metavar="VERSION", help="A kept version (default: the one "
                                                                           "that ran before).")] = None,
) -> None:
    """Run the version that ran before the current one (or --to VERSION); settings are kept."""
    config = config_from(ctx)
    store = _store(config, name)
    inst = store.get(name)
    target = to or inst.previous
    if target is None:
        raise ConfigError(f"{name} has no earlier version kept to roll back to")
    if target not in inst.versions:
        raise ConfigError(f"{name} has no version {target[:64]!r} (kept: {', '.join(inst.versions)})")
    switch(config, store, name, target, "rolled back")


@channels_app.command("remove")
@friendly_errors
def channels_remove(ctx: typer.Context, name: NameArg) -> None:
    """Remove an installed channel: every kept version and its settings (its secrets and data are kept)."""
    config = config_from(ctx)
    store = _store(config, name)
    done = live(config, name, "remove")
    if done is None:
        store.remove(name)
    records = cluster_records(config)
    if records is not None and records.remove(name):  # (a running gateway has removed it already)
        typer.echo(f"removed {name} from the cluster: every node stops it and removes its copy")
    typer.echo(f"removed {name} (its secrets and workspace data are kept)"
               + (" (running gateway)" if done else ""))


@channels_app.command("versions")
@friendly_errors
def channels_versions(ctx: typer.Context, name: NameArg, as_json: JsonOption = False) -> None:
    """The kept versions of a channel, oldest first, with the active one and the rollback target.

    --json: {name, platform, active, previous, versions: [{version, signed, publisher, source, installed_at}]}.
    """
    config = config_from(ctx)
    store = _store(config, name)
    inst = store.get(name)
    rows = []
    for v in inst.versions:
        prov = store.provenance(name, v)
        rows.append({"version": v, "signed": bool(prov.get("signed")),
                     "publisher": str(prov.get("publisher") or "unsigned"), "source": prov.get("source", "unknown"),
                     "installed_at": prov.get("installed_at")})
    if as_json:
        print_json({"name": name, "platform": inst.platform, "active": inst.active, "previous": inst.previous,
                    "versions": rows})
        return
    for row in rows:
        mark = "* " if row["version"] == inst.active else "  "
        note = " (rollback target)" if row["version"] == inst.previous else ""
        signer = f"signed by {row['publisher']}" if row["signed"] else "unsigned"
        typer.echo(f"{mark}{row['version']}  {signer}{note}")
