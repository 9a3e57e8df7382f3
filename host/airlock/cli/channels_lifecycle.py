"""``airlock channels enable|disable|upgrade|rollback|remove|versions``.

With a gateway serving the home (its control socket answers, ``airlock.control``), each command asks the gateway,
which changes the running channel without a restart and records the change in the home
(``channels.operations``); without one, the command edits the home directly and the next ``serve`` starts what
it finds. ``upgrade NAME WASM CAPS`` writes the new version into the home first (``channels.install.stage``), then
switches to it; a new version that does not start is rolled back by the gateway at once and the command fails
with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..channels.install import stage
from ..channels.layout import ChannelStore, check_instance_name
from ..control import gateway_for
from ..errors import ConfigError
from ..host_config import HostConfig
from .app import config_from, friendly_errors
from .channels import _load_checked, _load_runnable, channels_app
from .common import LenientOption, complete_channel, migrate_quietly
from .install_check import check_argument_order
from .output import JsonOption, print_json

__all__ = ["upgrade_from_files"]

NameArg = Annotated[str, typer.Argument(help="The channel's name.", autocompletion=complete_channel)]


def _store(config: HostConfig, name: str) -> ChannelStore:
    check_instance_name(name)
    store = ChannelStore(config.channels_dir)
    migrate_quietly(store)
    store.get(name)  # ConfigError: not installed
    return store


def _say(doc: dict[str, Any], what: str) -> None:
    via = " (running gateway)" if doc.get("live") else " (in the home; the next airlock serve starts it so)"
    typer.echo(f"{what}{via}: {doc.get('name')} {doc.get('version') or ''} {doc.get('status') or ''}".rstrip())


def _live(config: HostConfig, name: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    gateway = gateway_for(config.home)
    if gateway is None:
        return None
    return {**gateway.call("POST", f"/v1/channels/{name}/{action}", body or {}), "live": True}


def _offline_doc(store: ChannelStore, name: str) -> dict[str, Any]:
    inst = store.get(name)
    return {"name": name, "version": inst.active, "status": "disabled" if inst.disabled else "enabled",
            "live": False}


@channels_app.command("enable")
@friendly_errors
def channels_enable(ctx: typer.Context, name: NameArg) -> None:
    """Start a disabled channel (and keep it enabled across restarts)."""
    config = config_from(ctx)
    store = _store(config, name)
    doc = _live(config, name, "enable")
    if doc is None:
        store.set_disabled(name, False)
        doc = _offline_doc(store, name)
    _say(doc, "enabled")


@channels_app.command("disable")
@friendly_errors
def channels_disable(ctx: typer.Context, name: NameArg) -> None:
    """Stop a channel (its webhooks answer 404, poller and websocket stop, callbacks in flight finish) and keep
    it stopped across restarts."""
    config = config_from(ctx)
    store = _store(config, name)
    doc = _live(config, name, "disable")
    if doc is None:
        store.set_disabled(name, True)
        doc = _offline_doc(store, name)
    _say(doc, "disabled")


def upgrade_from_files(config: HostConfig, store: ChannelStore, name: str, wasm: Path, caps: Path, *,
                       lenient: bool = False) -> None:
    """Keep ``wasm`` + ``caps`` as a new version of ``name`` and switch to it (module docstring)."""
    check_argument_order(wasm, caps)
    doc = _load_runnable(caps, lenient=lenient)
    _load_checked(config, wasm, caps, doc)
    staged = stage(store, wasm.read_bytes(), caps.read_bytes(), source=str(caps), as_name=name, upgrade=True,
                   lenient=lenient)
    if staged.version == store.get(name).active:  # the same bytes again: nothing to do
        typer.echo(f"{name} runs {staged.version} already")
        return
    _switch(config, store, name, staged.version, "upgraded")


def _switch(config: HostConfig, store: ChannelStore, name: str, version: str, what: str) -> None:
    before = store.get(name).active
    if version == before:
        raise ConfigError(f"{name} runs version {version} already")
    live = _live(config, name, "upgrade", {"version": version})
    if live is None:
        store.activate(name, version)
        store.prune(name)
        live = _offline_doc(store, name)
    _say(live, f"{what} from {before}")


@channels_app.command("upgrade")
@friendly_errors
def channels_upgrade(
    ctx: typer.Context, name: NameArg,
    wasm: Annotated[Path | None, typer.Argument(help="The new component (.wasm).")] = None,
    caps: Annotated[Path | None, typer.Argument(help="Its capabilities file.")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", metavar="VERSION", help="Switch to this kept version instead (channels versions NAME).")] = None,
    lenient: LenientOption = False,
) -> None:
    """Run a new version of an installed channel: WASM + CAPS, or a kept --version.

    The operator's settings (channels config) carry over; the new file's defaults apply where none is set. A
    running gateway swaps versions live and rolls back at once if the new one does not start.
    """
    config = config_from(ctx)
    store = _store(config, name)
    if (wasm is None) == (version is None) or (wasm is None) != (caps is None):
        raise ConfigError("give either WASM and CAPS, or --version VERSION")
    if wasm is not None and caps is not None:
        upgrade_from_files(config, store, name, wasm, caps, lenient=lenient)
    elif version is not None:
        if version not in store.get(name).versions:
            raise ConfigError(f"{name} has no version {version[:64]!r} (kept: "
                              f"{', '.join(store.get(name).versions)})")
        _switch(config, store, name, version, "upgraded")


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
    _switch(config, store, name, target, "rolled back")


@channels_app.command("remove")
@friendly_errors
def channels_remove(ctx: typer.Context, name: NameArg) -> None:
    """Remove an installed channel: every kept version and its settings (its secrets and data are kept)."""
    config = config_from(ctx)
    store = _store(config, name)
    live = _live(config, name, "remove")
    if live is None:
        store.remove(name)
    typer.echo(f"removed {name} (its secrets and workspace data are kept)"
               + (" (running gateway)" if live else ""))


@channels_app.command("versions")
@friendly_errors
def channels_versions(ctx: typer.Context, name: NameArg, as_json: JsonOption = False) -> None:
    """The kept versions of a channel, oldest first, with the active one and the rollback target.

    --json: {name, platform, active, previous, versions: [{version, source, signed, installed_at}]}.
    """
    config = config_from(ctx)
    store = _store(config, name)
    inst = store.get(name)
    rows = []
    for v in inst.versions:
        prov = store.provenance(name, v)
        rows.append({"version": v, "source": prov.get("source", "unknown"), "signed": bool(prov.get("signed")),
                     "installed_at": prov.get("installed_at")})
    if as_json:
        print_json({"name": name, "platform": inst.platform, "active": inst.active, "previous": inst.previous,
                    "versions": rows})
        return
    for row in rows:
        mark = "* " if row["version"] == inst.active else "  "
        note = " (rollback target)" if row["version"] == inst.previous else ""
        typer.echo(f"{mark}{row['version']}  {row['source']}{', signed' if row['signed'] else ''}{note}")
