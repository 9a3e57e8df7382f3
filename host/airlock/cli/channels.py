"""``airlock channels install|list|remove|check``."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..channels.activation import blocker as channel_blocker
from ..channels.activation import wit_version_note
from ..channels.socket_runtime import start_blocker
from ..errors import AirlockError, ComponentError, ConfigError, PackageError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile, load_capabilities
from ..packages import (
    FETCH_TIMEOUT_S,
    PACKAGE_SUFFIX,
    Provenance,
    VerifiedPackage,
    bare_provenance,
    is_url,
    provenance_doc,
    provenance_path,
    read_provenance,
    write_provenance,
)
from ..runtime.engine import LoadedComponent, Runtime
from ..stores import SecretStore
from ..stores.files import private_dir

if TYPE_CHECKING:
    from ..state.cluster import ChannelRecords
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
    force: Annotated[bool, typer.Option("--force", help="Replace an installed channel of the same name.")]
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

    Stored as <name>.wasm, <name>.capabilities.json and <name>.provenance.json (who signed it, digests,
    source), name taken from the capabilities file. Refused before anything is written: a package that fails
    verification, swapped arguments, a component built for another world than the file declares, or one whose
    on-start (run once, offline, without secrets) asks for nothing the file grants.
    """
    config = config_from(ctx)
    if caps is not None:
        if is_url(source) or source.endswith(PACKAGE_SUFFIX):
            raise ConfigError(f"{source} is a package: it holds its own capabilities file (drop {caps})")
        check_argument_order(Path(source), caps)
        _install_files(config, Path(source), caps, None, force=force, lenient=lenient)
        return
    if not is_url(source) and source.endswith(".wasm"):
        raise ConfigError(f"{source}: a bare component needs its capabilities file: "
                          f"airlock channels install {source} NAME.capabilities.json")
    pkg = open_package(config, source, allow_unsigned=allow_unsigned, allow_private=allow_private_host,
                       timeout=timeout)
    install_package(config, pkg, force=force, lenient=lenient)


def install_package(config: HostConfig, pkg: VerifiedPackage, *, force: bool, lenient: bool = False) -> None:
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
            _install_files(config, wasm_path, caps_path, pkg, force=force, lenient=lenient)
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


def _check_same_publisher(dest: Path, name: str, new: Provenance) -> None:
    """A channel installed with a trusted signature is replaced only by one signed with the same key (as a
    phone accepts an app update only from the app's signer): another publisher, or none, could otherwise take
    over its secrets, workspace and pairings with a plain --force. Removing the channel first is the
    operator's explicit choice."""
    old = read_provenance(provenance_path(dest, name))
    if old is not None and old.signed and new.key_id != old.key_id and (dest / f"{name}.wasm").exists():
        raise PackageError(f"channel {name!r} was installed signed by {old.publisher} ({old.key_id}); this one is "
                           f"{new.summary()} (airlock channels remove {name} first to change publisher)")


def _install_files(config: HostConfig, wasm: Path, caps: Path, pkg: VerifiedPackage | None, *,
                   force: bool, lenient: bool) -> None:
    """Validate a component and its capabilities file, then copy both (and the provenance record) into the
    channels directory. ``pkg``: the verified package they came from, or None for a bare install."""
    doc = _load_runnable(caps, lenient=lenient)
    with runtime_for(config) as runtime:
        loaded = load_component(runtime, wasm)
    check_world(doc, caps, loaded)
    world_version = loaded.world.channel_interface.rsplit("@", 1)[-1]
    additive = loaded.world.channel_interface.startswith("airlock:channel/")  # versions only add (wit/channel.wit)
    if wit_version_note(doc.wit_version, world_version, additive=additive) is not None:
        log.warning("%s: $.wit_version: %s, but the component was built against %s", caps, doc.wit_version,
                    loaded.world.channel_interface)
    if pkg is not None:
        _check_matches(pkg, doc, loaded)
    provenance = pkg.provenance if pkg is not None else bare_provenance(
        doc.name, doc.version, loaded.world.name, wasm.read_bytes(), caps.read_bytes(), str(wasm.resolve()))
    dest = config.channels_dir
    wasm_dest, caps_dest = dest / f"{doc.name}.wasm", dest / f"{doc.name}.capabilities.json"
    if not force and (wasm_dest.exists() or caps_dest.exists()):
        raise ConfigError(f"channel {doc.name!r} is already installed in {dest} (use --force to replace it)")
    _check_same_publisher(dest, doc.name, provenance)
    check_fit(config, doc, caps, wasm)
    private_dir(dest)
    copy_atomic(wasm, wasm_dest)
    copy_atomic(caps, caps_dest)
    write_provenance(provenance_path(dest, doc.name), provenance)
    if lenient:
        lenient_note(caps_dest, config)
    shared = _share(config, doc.name)
    typer.echo(f"installed {doc.name} {doc.version} ({loaded.world.name}, "
               f"{report.human_size(loaded.size_bytes)}, {provenance.summary()}) in {dest}"
               + (" and for every node of the cluster" if shared else ""))
    missing = missing_secrets(doc, lazy_store(config))
    if missing:
        typer.echo(f"inactive until its secrets are set: "
                   f"{'; '.join(f'airlock secrets set {m}' for m in missing)}")


def _cluster_records(config: HostConfig) -> ChannelRecords | None:
    # imported here: psycopg is for PostgreSQL state only (the embedded default never loads it)
    from ..state.cluster import ChannelRecords
    from ..state.postgres import PgDb

    """The cluster's installed channels (``state.cluster``) with PostgreSQL state (a pool left open for the
    command's short life); None on SQLite."""
    url = config.state_url
    if url.kind != "postgresql" or url.dsn is None:
        return None
    return ChannelRecords(PgDb(url.dsn, max_size=1))


def _share(config: HostConfig, name: str) -> bool:
    """Store the channel just installed for every node (PostgreSQL state); True when stored."""
    records = _cluster_records(config)
    if records is None:
        return False
    from ..state.cluster import record_from_home

    records.put(record_from_home(config.channels_dir, name))
    return True


def _row(name: str, status: str, *, version: str | None = None, world: str | None = None,
         size_bytes: int | None = None, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    state = "active" if status.startswith("active") else "inactive" if status.startswith("inactive") else "invalid"
    return {"name": name, "version": version, "world": world, "size_bytes": size_bytes, "state": state,
            "status": status, "provenance": provenance}


def _channel_row(runtime: Runtime, caps_path: Path, store: Callable[[], SecretStore], *,
                 lenient: bool) -> dict[str, Any]:
    stem = caps_path.name.removesuffix(".capabilities.json")
    wasm = caps_path.with_name(f"{stem}.wasm")
    row = _channel_status(runtime, caps_path, wasm, stem, store, lenient=lenient)
    row["provenance"] = provenance_doc(provenance_path(caps_path.parent, stem))
    return row


def _channel_status(runtime: Runtime, caps_path: Path, wasm: Path, stem: str,
                    store: Callable[[], SecretStore], *, lenient: bool) -> dict[str, Any]:
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
    (``active``, ``inactive`` or ``invalid``), ``status`` (the full one-line reason) and ``provenance``
    (``packages.provenance_doc``: ``signed``, ``publisher`` (a trusted key's name or "unsigned"), ``key_id``,
    ``digests``, ``source``, ..., ``recorded``; None for a component without a capabilities file).
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

    --json: a list of {name, version, world, size_bytes, state (active|inactive|invalid), status,
    provenance: {signed, publisher, key_id, version, world, digests, source, package_sha256, note, recorded}}.
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
    """Remove an installed channel's component, capabilities file and provenance record (its secrets and data
    are kept)."""
    check_channel_name(name)
    config = config_from(ctx)
    files = [config.channels_dir / f"{name}.wasm", config.channels_dir / f"{name}.capabilities.json"]
    present = [f for f in files if f.exists()]
    if not present:
        raise ConfigError(f"no channel named {name!r} is installed in {config.channels_dir}")
    present.append(provenance_path(config.channels_dir, name))
    for f in present:
        f.unlink(missing_ok=True)
    records = _cluster_records(config)
    if records is not None and records.remove(name):  # the other nodes keep their files until they restart
        typer.echo(f"removed {name} from the cluster's record: nodes that have it keep their copy until it is "
                   "removed there too")
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

