"""``airlock channels install|list|remove|check``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..channels.activation import blocker as channel_blocker
from ..channels.activation import wit_version_note
from ..channels.socket_runtime import start_blocker
from ..errors import AirlockError, ComponentError, ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile, load_capabilities
from ..runtime.engine import Runtime
from ..stores import SecretStore
from ..stores.files import private_dir
from . import report
from .app import app, config_from, friendly_errors
from .common import (
    LenientOption,
    check_channel_name,
    check_file_against_schema,
    complete_channel,
    copy_atomic,
    installed_caps,
    lazy_store,
    lenient_note,
    load_component,
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
    force: Annotated[bool, typer.Option("--force", help="Replace an installed channel of the same name.")]
    = False,
    lenient: LenientOption = False,
) -> None:
    """Validate a component and its capabilities file, then copy both into the channels directory.

    They are stored as <name>.wasm and <name>.capabilities.json, name taken from the capabilities file. Refused
    before anything is written: swapped arguments, a component built for another world than the file declares,
    or one whose on-start (run once, offline, without secrets) asks for nothing the file grants.
    """
    config = config_from(ctx)
    check_argument_order(wasm, caps)
    doc = _load_runnable(caps, lenient=lenient)
    with runtime_for(config) as runtime:
        loaded = load_component(runtime, wasm)
    check_world(doc, caps, loaded)
    world_version = loaded.world.channel_interface.rsplit("@", 1)[-1]
    if wit_version_note(doc.wit_version, world_version) is not None:
        log.warning("%s: $.wit_version: %s, but the component was built against %s", caps, doc.wit_version,
                    loaded.world.channel_interface)
    dest = config.channels_dir
    wasm_dest, caps_dest = dest / f"{doc.name}.wasm", dest / f"{doc.name}.capabilities.json"
    if not force and (wasm_dest.exists() or caps_dest.exists()):
        raise ConfigError(f"channel {doc.name!r} is already installed in {dest} (use --force to replace it)")
    check_fit(config, doc, caps, wasm)
    private_dir(dest)
    copy_atomic(wasm, wasm_dest)
    copy_atomic(caps, caps_dest)
    if lenient:
        lenient_note(caps, config)
    typer.echo(f"installed {doc.name} {doc.version} ({loaded.world.name}, "
               f"{report.human_size(loaded.size_bytes)}) in {dest}")
    missing = missing_secrets(doc, lazy_store(config))
    if missing:
        typer.echo(f"inactive until its secrets are set: "
                   f"{'; '.join(f'airlock secrets set {m}' for m in missing)}")


def _row(name: str, status: str, *, version: str | None = None, world: str | None = None,
         size_bytes: int | None = None) -> dict[str, Any]:
    state = "active" if status.startswith("active") else "inactive" if status.startswith("inactive") else "invalid"
    return {"name": name, "version": version, "world": world, "size_bytes": size_bytes, "state": state,
            "status": status}


def _channel_row(runtime: Runtime, caps_path: Path, store: Callable[[], SecretStore], *,
                 lenient: bool) -> dict[str, Any]:
    stem = caps_path.name.removesuffix(".capabilities.json")
    wasm = caps_path.with_name(f"{stem}.wasm")
    try:
        doc = load_capabilities(caps_path, lenient=lenient)
    except AirlockError as exc:
        return _row(stem, f"invalid: {exc}")
    if not wasm.is_file():
        return _row(stem, f"invalid: {wasm.name} is missing", version=doc.version)
    try:
        loaded = runtime.load(wasm)
    except ComponentError as exc:
        return _row(stem, f"invalid: {exc}", version=doc.version, size_bytes=wasm.stat().st_size)
    missing = missing_secrets(doc, store)
    status = f"inactive: missing secrets {', '.join(missing)}" if missing else "active"
    cannot = channel_blocker(doc)
    if cannot is not None:
        return _row(stem, f"inactive: {cannot}", version=doc.version, world=loaded.world.name,
                    size_bytes=loaded.size_bytes)
    socket = doc.capabilities.websocket
    blocker = None if missing or socket is None else start_blocker(socket, lambda n: store().exists(n))
    if blocker is not None:
        status = f"active; websocket not opened: {blocker}"
    return _row(stem, status, version=doc.version, world=loaded.world.name, size_bytes=loaded.size_bytes)


def channel_rows(runtime: Runtime, config: HostConfig, store: Callable[[], SecretStore]) -> list[dict[str, Any]]:
    """One row per installed channel (and per component without a capabilities file), sorted by name.

    Row keys: ``name``, ``version``, ``world``, ``size_bytes`` (``None`` when unknown), ``state``
    (``active``, ``inactive`` or ``invalid``) and ``status`` (the full one-line reason).
    """
    directory = config.channels_dir
    rows = [_channel_row(runtime, caps_path, store, lenient=config.lenient_capabilities)
            for caps_path in installed_caps(config)]
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

    --json: a list of {name, version, world, size_bytes, state (active|inactive|invalid), status}.
    """
    config = config_from(ctx)
    with runtime_for(config) as runtime:
        rows = channel_rows(runtime, config, lazy_store(config))
    show_rows(rows, CHANNEL_COLUMNS, as_json=as_json, empty=f"no channels installed in {config.channels_dir}")


@channels_app.command("remove")
@friendly_errors
def channels_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The channel's name.", autocompletion=complete_channel)],
) -> None:
    """Remove an installed channel's component and capabilities file (its secrets and data are kept)."""
    check_channel_name(name)
    config = config_from(ctx)
    files = [config.channels_dir / f"{name}.wasm", config.channels_dir / f"{name}.capabilities.json"]
    present = [f for f in files if f.exists()]
    if not present:
        raise ConfigError(f"no channel named {name!r} is installed in {config.channels_dir}")
    for f in present:
        f.unlink()
    typer.echo(f"removed {name} (its secrets and workspace data are kept)")


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

