"""``airlock channels install|list|check`` (installing: ``channels_install``; the lifecycle commands:
``channels_lifecycle``; operator settings: ``channels_config``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..channels.activation import blocker as channel_blocker
from ..channels.catalog import Entry, list_installed, provenance_file
from ..channels.channel import namespaced_lookup
from ..channels.layout import ChannelStore
from ..channels.socket_runtime import start_blocker
from ..errors import ComponentError, ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile, load_capabilities
from ..packages import FETCH_TIMEOUT_S, PACKAGE_SUFFIX, is_url, provenance_doc
from ..runtime.engine import Runtime
from ..stores import SecretStore
from . import report
from .app import app, config_from, friendly_errors
from .common import (
    LenientOption,
    check_channel_name,
    check_file_against_schema,
    lazy_store,
    load_component,
    migrate_quietly,
    missing_secrets,
    runtime_for,
)
from .install_check import check_argument_order
from .output import Column, JsonOption, Row, print_json, show_rows
from .package_source import AllowPrivateOption, TimeoutOption, open_package

__all__ = ["channel_rows", "channels_app", "install_package"]

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
    source: Annotated[str, typer.Argument(
        help="A channel package (.airlock file or https:// URL), or a component (.wasm) followed by CAPS.")],
    caps: Annotated[Path | None, typer.Argument(
        help="The component's capabilities file (.capabilities.json); not with a package.")] = None,
    as_name: Annotated[str | None, typer.Option(
        "--as", metavar="NAME", help="Install as a channel of this name (a second account of one platform: its "
                                     "own config, secrets NAME/..., workspace, pairings, /webhook/NAME).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Installed already: keep this as a new version and run it (as channels upgrade).")]
    = False,
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Accept a package without a signature by a trusted key (recorded as "
        "unsigned; its digests are still checked).")] = False,
    allow_private_host: AllowPrivateOption = None,
    timeout: TimeoutOption = FETCH_TIMEOUT_S,
    lenient: LenientOption = False,
) -> None:
    """Install a channel: a package (verified first: limits, digests, a signature by a key in `airlock trust
    list`), or a bare component and capabilities file (recorded as unsigned).

    Kept as HOME/channels/NAME/VERSION/ (component, capabilities file, provenance record: who signed it, digests,
    source); NAME from the capabilities file, or --as; VERSION the package's, or for a bare install the file's
    version with a content hash (0.2.2+1a2b3c4d). Refused before anything is written: a package that fails
    verification, swapped arguments, a component built for another world than the file declares, or one whose
    on-start (run once, offline, without secrets) asks for nothing the file grants. A running gateway starts the
    channel at once.
    """
    config = config_from(ctx)
    if as_name is not None:
        check_channel_name(as_name)
    install_source(config, source, caps, force=force, allow_unsigned=allow_unsigned,
                   allow_private_host=allow_private_host, timeout=timeout, lenient=lenient, as_name=as_name)


def install_source(config: HostConfig, source: str, caps: Path | None, *, force: bool = False,
                   allow_unsigned: bool = False, allow_private_host: list[str] | None = None,
                   timeout: float = FETCH_TIMEOUT_S, lenient: bool = False, as_name: str | None = None,
                   upgrade: bool = False) -> None:
    """``install`` (and ``upgrade``) of SOURCE [CAPS]: a bare pair or a package (``channels_install``)."""
    from .channels_install import install_files

    if caps is not None:
        if is_url(source) or source.endswith(PACKAGE_SUFFIX):
            raise ConfigError(f"{source} is a package: it holds its own capabilities file (drop {caps})")
        check_argument_order(Path(source), caps)
        install_files(config, Path(source), caps, None, force=force, lenient=lenient, as_name=as_name,
                      upgrade=upgrade)
        return
    if not is_url(source) and source.endswith(".wasm"):
        raise ConfigError(f"{source}: a bare component needs its capabilities file: "
                          f"airlock channels install {source} NAME.capabilities.json")
    pkg = open_package(config, source, allow_unsigned=allow_unsigned, allow_private=allow_private_host,
                       timeout=timeout)
    install_package(config, pkg, force=force, lenient=lenient, as_name=as_name, upgrade=upgrade)


def install_package(config: HostConfig, pkg: Any, *, force: bool, lenient: bool = False,
                    as_name: str | None = None, upgrade: bool = False) -> None:
    """A verified package into the home (``channels_install.install_package``)."""
    from . import channels_install

    channels_install.install_package(config, pkg, force=force, lenient=lenient, as_name=as_name, upgrade=upgrade)


def _row(name: str, status: str, *, version: Any = None, world: Any = None, size_bytes: Any = None,
         platform: Any = None, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    state = "active" if status.startswith("active") else "inactive" if status.startswith("inactive") else "invalid"
    if status.startswith("disabled"):
        state = "disabled"
    return {"name": name, "platform": platform or name, "version": version, "world": world,
            "size_bytes": size_bytes, "state": state, "status": status, "provenance": provenance}


def _channel_row(runtime: Runtime, entry: Entry, store: Callable[[], SecretStore]) -> dict[str, Any]:
    row = _channel_status(runtime, entry, store)
    row["provenance"] = provenance_doc(provenance_file(entry.component, entry.name))
    return row


def _channel_status(runtime: Runtime, entry: Entry, store: Callable[[], SecretStore]) -> dict[str, Any]:
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
    ``invalid``), ``status`` (the full one-line reason) and ``provenance`` (``packages.provenance_doc``:
    ``signed``, ``publisher`` (a trusted key's name or "unsigned"), ``key_id``, ``digests``, ``source``, ...,
    ``recorded``; None for a component without a capabilities file).
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


def _publisher_text(row: Row) -> str:
    prov = row.get("provenance")
    if not prov:
        return "?"
    return str(prov["publisher"])  # the key id is in --json


def _size_text(row: Row) -> str:
    return "?" if row["size_bytes"] is None else report.human_size(row["size_bytes"])


CHANNEL_COLUMNS = (
    Column("name", "name"),
    Column("version", "version", text=lambda r: r["version"] or "?"),
    Column("world", "world", text=lambda r: r["world"] or "?"),
    Column("size", "size_bytes", text=_size_text),
    Column("publisher", "provenance", text=_publisher_text),
    Column("status", "status", style=_status_style),
)


@channels_app.command("list")
@friendly_errors
def channels_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List installed channels: name, version, world, size, and whether they would be active.

    --json: a list of {name, platform, version, world, size_bytes, state (active|inactive|disabled|invalid),
    status, provenance: {signed, publisher, key_id, version, world, digests, source, package_sha256, note,
    recorded}}.
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

