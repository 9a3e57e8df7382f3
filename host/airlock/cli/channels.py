"""``airlock channels install|list|check`` (the lifecycle commands: ``channels_lifecycle``, settings:
``channels_config``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..channels.activation import blocker as channel_blocker
from ..channels.activation import wit_version_note
from ..channels.catalog import Entry, list_installed
from ..channels.channel import namespaced_lookup
from ..channels.install import stage
from ..channels.layout import ChannelStore
from ..channels.socket_runtime import start_blocker
from ..control import gateway_for
from ..errors import ComponentError, ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile, load_capabilities
from ..runtime.engine import LoadedComponent, Runtime
from ..stores import SecretStore
from . import report
from .app import app, config_from, friendly_errors
from .common import (
    LenientOption,
    check_channel_name,
    check_file_against_schema,
    lazy_store,
    lenient_note,
    load_component,
    migrate_quietly,
    missing_secrets,
    runtime_for,
)
from .install_check import check_argument_order, check_fit, check_world
from .output import Column, JsonOption, Row, print_json, show_rows

__all__ = ["channel_rows", "channels_app"]

log = logging.getLogger("airlock.cli")

channels_app = typer.Typer(help="Install, list, remove and check channels.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")


def _load_runnable(caps: Path, *, lenient: bool = False) -> CapabilitiesFile:
    """Load a capabilities file and refuse one this host cannot run (an unsupported websocket protocol)."""
    doc = load_capabilities(caps, lenient=lenient)
    cannot = channel_blocker(doc)
    if cannot is not None:
        raise ConfigError(f"{caps}: $.capabilities.websocket.protocol: {cannot}")
    return doc


@channels_app.command("install")
@friendly_errors
def channels_install(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="The channel component (.wasm).")],
    caps: Annotated[Path, typer.Argument(help="Its capabilities file (.capabilities.json).")],
    as_name: Annotated[str | None, typer.Option(
        "--as", metavar="NAME", help="Install as a channel of this name (a second account of one platform: its "
                                     "own config, secrets NAME/..., workspace, pairings, /webhook/NAME).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Installed already: add this as a new version and run it (as channels upgrade).")] = False,
    lenient: LenientOption = False,
) -> None:
    """Validate a component and its capabilities file, then keep them as a version of a channel in the home.

    Stored as HOME/channels/NAME/VERSION/ (NAME from the capabilities file, or --as; VERSION is the file's version
    with a content hash, e.g. 0.2.2+1a2b3c4d). Refused before anything is written: swapped arguments, a component
    built for another world than the file declares, or one whose on-start (run once, offline, without secrets) asks
    for nothing the file grants. A running gateway starts the channel at once.
    """
    config = config_from(ctx)
    if as_name is not None:
        check_channel_name(as_name)
    check_argument_order(wasm, caps)
    doc = _load_runnable(caps, lenient=lenient)
    loaded = _load_checked(config, wasm, caps, doc)
    store = ChannelStore(config.channels_dir)
    migrate_quietly(store)
    name = as_name or doc.name
    if force and store.exists(name):
        from .channels_lifecycle import upgrade_from_files

        upgrade_from_files(config, store, name, wasm, caps, lenient=lenient)
        return
    if not store.exists(name):
        check_fit(config, doc, caps, wasm)
    staged = stage(store, wasm.read_bytes(), caps.read_bytes(), source=str(caps), as_name=as_name,
                   lenient=lenient)
    if lenient:
        lenient_note(caps, config)
    gateway = gateway_for(config.home)
    running = ""
    if gateway is not None:
        reply = gateway.call("POST", f"/v1/channels/{staged.name}/install")
        running = f"; running gateway: {reply['status']}"
    typer.echo(f"installed {staged.name} {staged.version} ({loaded.world.name}, "
               f"{report.human_size(loaded.size_bytes)}) in {config.channels_dir}{running}")
    missing = missing_secrets(staged.caps, lazy_store(config), instance=staged.name)
    if missing:
        typer.echo(f"inactive until its secrets are set: "
                   f"{'; '.join(f'airlock secrets set {m}' for m in missing)}")


def _load_checked(config: HostConfig, wasm: Path, caps: Path, doc: CapabilitiesFile) -> LoadedComponent:
    """Load ``wasm`` (a clear one-line error if it does not) and warn about a WIT version mismatch."""
    with runtime_for(config) as runtime:
        loaded = load_component(runtime, wasm)
    check_world(doc, caps, loaded)
    world_version = loaded.world.channel_interface.rsplit("@", 1)[-1]
    if wit_version_note(doc.wit_version, world_version) is not None:
        log.warning("%s: $.wit_version: %s, but the component was built against %s", caps, doc.wit_version,
                    loaded.world.channel_interface)
    return loaded


def _row(name: str, status: str, *, version: Any = None, world: Any = None, size_bytes: Any = None,
         platform: Any = None) -> dict[str, Any]:
    state = "active" if status.startswith("active") else "inactive" if status.startswith("inactive") else "invalid"
    if status.startswith("disabled"):
        state = "disabled"
    return {"name": name, "platform": platform or name, "version": version, "world": world,
            "size_bytes": size_bytes, "state": state, "status": status}


def _channel_row(runtime: Runtime, entry: Entry, store: Callable[[], SecretStore]) -> dict[str, Any]:
    doc, wasm, name = entry.caps, entry.component, entry.name
    base: dict[str, Any] = {"version": entry.version, "platform": entry.platform}
    if doc is None:
        return _row(name, f"invalid: {entry.error}", **base)
    if not wasm.is_file():
        return _row(name, f"invalid: {wasm.name} is missing", **base)
    try:
        loaded = runtime.load(wasm)
    except ComponentError as exc:
        return _row(name, f"invalid: {exc}", size_bytes=wasm.stat().st_size, **base)
    facts: dict[str, Any] = {"world": loaded.world.name, "size_bytes": loaded.size_bytes, **base}
    if entry.disabled:
        return _row(name, "disabled by the operator (airlock channels enable)", **facts)
    missing = missing_secrets(doc, store, instance=name)
    status = f"inactive: missing secrets {', '.join(missing)}" if missing else "active"
    cannot = channel_blocker(doc)
    if cannot is not None:
        return _row(name, f"inactive: {cannot}", **facts)
    socket = doc.capabilities.websocket
    lookup = namespaced_lookup(lambda n: "" if store().exists(n) else None, name, entry.platform)
    blocker = None if missing or socket is None else start_blocker(socket, lambda n: lookup(n) is not None)
    if blocker is not None:
        status = f"active; websocket not opened: {blocker}"
    return _row(name, status, **facts)


def channel_rows(runtime: Runtime, config: HostConfig, store: Callable[[], SecretStore]) -> list[dict[str, Any]]:
    """One row per installed channel (and per component without a capabilities file), sorted by name.

    Row keys: ``name``, ``platform`` (the component's own name), ``version`` (the installed version),
    ``world``, ``size_bytes`` (``None`` when unknown), ``state`` (``active``, ``inactive``, ``disabled`` or
    ``invalid``) and ``status`` (the full one-line reason).
    """
    directory = config.channels_dir
    rows = [_channel_row(runtime, entry, store)
            for entry in list_installed(directory, lenient=config.lenient_capabilities)]
    for wasm in sorted(directory.glob("*.wasm") if directory.is_dir() else []):
        if not wasm.with_name(f"{wasm.stem}.capabilities.json").exists():
            rows.append(_row(wasm.stem, f"invalid: {wasm.stem}.capabilities.json is missing",
                             size_bytes=wasm.stat().st_size))
    return rows


def _status_style(row: Row) -> str:
    if row["status"] == "active":
        return "green"
    return "yellow" if row["state"] != "invalid" else "red"


def _size_text(row: Row) -> str:
    return "?" if row["size_bytes"] is None else report.human_size(row["size_bytes"])


CHANNEL_COLUMNS = (
    Column("name", "name"),
    Column("version", "version", text=lambda r: r["version"] or "?"),
    Column("world", "world", text=lambda r: r["world"] or "?"),
    Column("size", "size_bytes", text=_size_text),
    Column("status", "status", style=_status_style),
)


@channels_app.command("list")
@friendly_errors
def channels_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List installed channels: name, version, world, size, and whether they would be active.

    --json: a list of {name, platform, version, world, size_bytes, state (active|inactive|disabled|invalid),
    status}.
    """
    config = config_from(ctx)
    migrate_quietly(ChannelStore(config.channels_dir))
    with runtime_for(config) as runtime:
        rows = channel_rows(runtime, config, lazy_store(config))
    show_rows(rows, CHANNEL_COLUMNS, as_json=as_json, empty=f"no channels installed in {config.channels_dir}")


@channels_app.command("check")
@friendly_errors
def channels_check(
    ctx: typer.Context,
    caps: Annotated[Path, typer.Argument(help="A capabilities file to validate.")],
    wasm: Annotated[Path | None, typer.Argument(help="Also load this component.")] = None,
    as_json: JsonOption = False,
    lenient: LenientOption = False,
) -> None:
    """Validate a capabilities file (and optionally a component) and print a one-line summary.

    The file is checked by the loader the gateway uses and against the published JSON Schema
    (airlock/manifest/capabilities.schema.json). --json: {name, version, wit_version, summary,
    component: {world, size_bytes} or null}.
    """
    doc = _load_runnable(caps, lenient=lenient)
    check_file_against_schema(caps, lenient=lenient)
    summary = report.caps_summary(doc)
    component: dict[str, Any] | None = None
    if wasm is not None:
        config = config_from(ctx)
        with runtime_for(config) as runtime:
            loaded = load_component(runtime, wasm)
        summary += f"; component {loaded.world.name}, {report.human_size(loaded.size_bytes)}"
        component = {"world": loaded.world.name, "size_bytes": loaded.size_bytes}
    if as_json:
        print_json({"name": doc.name, "version": doc.version, "wit_version": doc.wit_version,
                    "summary": summary, "component": component})
    else:
        typer.echo(f"ok: {report.safe(summary)}")

