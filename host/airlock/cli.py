"""The ``airlock`` command line.

    airlock [--home PATH] serve [--port N] [--host H] [--agent module:callable] [--upstream HOST=URL ...]
    airlock channels install|list|remove|check ...
    airlock secrets set|list|rm ...
    airlock pairing list|approve ...
    airlock inspect WASM [--json]
    airlock invoke WASM --capabilities CAPS CALLBACK [--input JSON] [--json] [--upstream HOST=URL]

The data directory is ``--home``, else ``$AIRLOCK_HOME``, else ``~/.airlock``. An expected failure (bad
input, a bad capabilities file or component, a secret store that does not open, an unknown pairing code,
an I/O error) prints one line, ``error: ...``, on stderr and exits with status 1; no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import cli_report as report
from .channels.socket_runtime import start_blocker
from .config import CapabilitiesFile, HostConfig, load_capabilities
from .errors import AirlockError, ComponentError, ConfigError, SecretStoreError
from .runtime import pooling
from .runtime.engine import CALLBACKS, LoadedComponent, Runtime
from .runtime.values import STATUS_TYPES, AgentResponse, IncomingHttpRequest, StatusUpdate
from .stores import PairingStore, SecretStore
from .stores.files import private_dir
from .stores.secrets import is_valid_secret_name

if TYPE_CHECKING:
    from .agents.loader import Agent
    from .channels.channel import CallOutcome, Channel

__all__ = ["app", "main"]

log = logging.getLogger("airlock.cli")

P = ParamSpec("P")
R = TypeVar("R")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

app = typer.Typer(
    name="airlock",
    help="Run chat-channel plugins as sandboxed WebAssembly components.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secret values
    add_completion=False,
)
channels_app = typer.Typer(help="Install, list, remove and check channels.", no_args_is_help=True)
secrets_app = typer.Typer(help="Manage the encrypted secret store (values are never printed).",
                          no_args_is_help=True)
pairing_app = typer.Typer(help="List and approve pairing requests from unknown senders.",
                          no_args_is_help=True)
app.add_typer(channels_app, name="channels")
app.add_typer(secrets_app, name="secrets")
app.add_typer(pairing_app, name="pairing")


# ---- errors, output and logging ------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(1)


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors an operator can cause into one ``error: ...`` line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AirlockError as exc:
            _fail(str(exc))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            _fail(f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}")
        except sqlite3.Error as exc:
            _fail(f"database error: {exc}")
        except OSError as exc:
            _fail(_os_error(exc))

    return wrapper


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


_QUIETABLE = ("airlock.guest", "airlock.channel")


def _setup_logging(level: int, *, serve: bool = False, quiet: tuple[str, ...] = ()) -> None:
    """Send ``airlock.*`` logs to stderr: timestamped for ``serve``, ``warning: ...`` otherwise."""
    root = logging.getLogger("airlock")
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    if serve:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_CliFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIETABLE:
        logging.getLogger(name).setLevel(logging.CRITICAL if name in quiet else logging.NOTSET)


def _console() -> Console:
    return Console(highlight=False)


# ---- shared helpers ------------------------------------------------------------------------------


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(
        "--home", envvar="AIRLOCK_HOME", show_envvar=True,
        help="Data directory (secrets, pairing, workspace, channels, compile cache). Default ~/.airlock.",
    )] = None,
) -> None:
    """Airlock: chat-channel plugins as sandboxed WebAssembly components."""
    ctx.obj = home
    _setup_logging(logging.WARNING)


def _config(ctx: typer.Context, **values: Any) -> HostConfig:
    home = ctx.find_root().obj
    if isinstance(home, Path):
        values["home"] = home
    return HostConfig.build(**values)


def _parse_upstreams(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        host, sep, url = item.partition("=")
        if not sep or not host.strip() or not url.strip():
            raise ConfigError(
                f"--upstream {item!r}: expected HOST=URL (e.g. api.telegram.org=http://127.0.0.1:8081)"
            )
        out[host.strip()] = url.strip()
    return out


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found" if not path.exists() else f"{path}: not a file")


@contextlib.contextmanager
def _runtime(config: HostConfig) -> Iterator[Runtime]:
    runtime = Runtime(config.cache_dir, pooling=pooling.for_host(config))
    try:
        yield runtime
    finally:
        runtime.close()


_CORE_MODULE_VERSION = b"\x01\x00\x00\x00"


def _component_problem(path: Path, reason: str) -> str:
    """A clearer reason than the engine's when the file is not a component binary at all."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return reason
    if head[:4] != b"\0asm":
        return "not a WebAssembly binary (no \\0asm header)"
    if head[4:8] == _CORE_MODULE_VERSION:
        return "a core WebAssembly module, not a component (wrap it with: wasm-tools component new)"
    return reason


def _load_component(runtime: Runtime, path: Path) -> LoadedComponent:
    """Load ``path``; a ComponentError names the file and says clearly what is wrong with it."""
    _require_file(path, "component")
    try:
        return runtime.load(path)
    except ComponentError as exc:
        reason = str(exc).removeprefix(f"{path.name}: ")
        raise ComponentError(f"{path}: {_component_problem(path, reason)}") from None


def _open_secrets(config: HostConfig, *, create: bool = True) -> SecretStore | None:
    """The home's secret store; ``None`` if ``create`` is false and no store file exists yet."""
    if not create and not config.secrets_path.exists():
        return None
    return SecretStore.open(config.home)


def _missing_secrets(caps: CapabilitiesFile, store: Callable[[], SecretStore]) -> list[str]:
    """Required (non-optional) secrets not stored yet. Auto-generated ones are created by ``serve``."""
    if caps.setup is None:
        return []
    wanted = [s.name for s in caps.setup.required_secrets if not s.optional and s.auto_generate is None]
    if not wanted:
        return []
    secrets = store()
    return [name for name in wanted if not secrets.exists(name)]


def _lazy_store(config: HostConfig) -> Callable[[], SecretStore]:
    opened: list[SecretStore] = []

    def get() -> SecretStore:
        if not opened:
            opened.append(SecretStore.open(config.home))
        return opened[0]

    return get


def _read_caps_quietly(path: Path) -> CapabilitiesFile | None:
    """Load a capabilities file without warnings; ``None`` if it is invalid."""
    config_log = logging.getLogger("airlock.config")
    saved = config_log.level
    config_log.setLevel(logging.ERROR)
    try:
        return load_capabilities(path)
    except AirlockError:
        return None
    finally:
        config_log.setLevel(saved)


def _copy_atomic(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_channel_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ConfigError(f"{name!r} is not a channel name (must match ^[a-z0-9][a-z0-9_-]{{0,62}}$)")


# ---- serve ---------------------------------------------------------------------------------------


@app.command()
@_friendly_errors
def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(
        metavar="N", help="Webhook HTTP port (0 picks a free one). (default: 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on. (default: 127.0.0.1)")] = None,
    agent: Annotated[str | None, typer.Option(
        metavar="MODULE:CALLABLE",
        help="The agent to run, an async function taking the host. (default: the built-in echo agent)",
    )] = None,
    upstream: Annotated[list[str] | None, typer.Option(
        metavar="HOST=URL",
        help="Send a channel's traffic for HOST to URL instead (e.g. a local fake). Repeatable.",
    )] = None,
    channels_dir: Annotated[Path | None, typer.Option(
        help="Where installed channels live. (default: HOME/channels)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the gateway: load the installed channels, serve their webhooks and run the agent until Ctrl-C.

    SIGINT or SIGTERM stops it cleanly: every active channel's on-shutdown runs before exit.
    """
    _setup_logging(logging.DEBUG if verbose else logging.INFO, serve=True)
    values: dict[str, Any] = {"upstream_overrides": _parse_upstreams(upstream)}
    if port is not None:
        values["listen_port"] = port
    if host is not None:
        values["listen_host"] = host
    if channels_dir is not None:
        values["channels_dir"] = channels_dir
    config = _config(ctx, **values)
    if agent is not None:
        from .agents.loader import load_agent

        agent_fn, agent_name = load_agent(agent), agent
    else:
        from .agents.echo import echo_agent

        agent_fn, agent_name = echo_agent, "echo (built in)"
    log.info("home %s, channels from %s", config.home, config.channels_dir)
    for logical, base in config.upstream_overrides.items():
        log.warning("upstream override: %s -> %s", logical, base)
    try:
        code = asyncio.run(_serve(config, agent_fn, agent_name))
    except KeyboardInterrupt:
        _fail("interrupted while stopping")
    raise typer.Exit(code)


async def _serve(config: HostConfig, agent: Agent, agent_name: str) -> int:
    from .host import AirlockHost

    host = AirlockHost(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    code = 0
    try:
        try:
            await host.start()
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                raise
            why = str(exc).rsplit(": ", 1)[-1] or os.strerror(exc.errno or 0)
            raise ConfigError(f"cannot listen on {config.listen_host}:{config.listen_port}: {why}") from None
        log.info("serving on %s with agent %s; Ctrl-C to stop", host.base_url, agent_name)
        agent_task: asyncio.Task[None] = asyncio.create_task(_run_agent(agent, host), name="agent")
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait({agent_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("%s received; stopping", received[0] if received else "signal")
        elif (failure := agent_task.exception()) is not None:
            # A bug in the agent is the user's to fix: show where it happened (Airlock's own errors: one line).
            log.error("agent %s failed: %s: %s", agent_name, type(failure).__name__, failure,
                      exc_info=None if isinstance(failure, AirlockError) else failure)
            code = 1
        else:
            log.info("agent %s returned; stopping", agent_name)
        for task in (agent_task, stop_task):
            task.cancel()
        await asyncio.gather(agent_task, stop_task, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await host.stop()
        log.info("airlock stopped")
    return code


async def _run_agent(agent: Agent, host: Any) -> None:
    await agent(host)


# ---- channels ------------------------------------------------------------------------------------


@channels_app.command("install")
@_friendly_errors
def channels_install(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="The channel component (.wasm).")],
    caps: Annotated[Path, typer.Argument(help="Its capabilities file (.capabilities.json).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an installed channel of the same name.")]
    = False,
) -> None:
    """Validate a component and its capabilities file, then copy both into the channels directory.

    They are stored as <name>.wasm and <name>.capabilities.json, name taken from the capabilities file.
    """
    config = _config(ctx)
    doc = load_capabilities(caps)
    with _runtime(config) as runtime:
        loaded = _load_component(runtime, wasm)
    world_version = loaded.world.channel_interface.rsplit("@", 1)[-1]
    if doc.wit_version != world_version:
        log.warning("%s: $.wit_version: %s, but the component was built against %s", caps, doc.wit_version,
                    loaded.world.channel_interface)
    dest = config.channels_dir
    wasm_dest, caps_dest = dest / f"{doc.name}.wasm", dest / f"{doc.name}.capabilities.json"
    if not force and (wasm_dest.exists() or caps_dest.exists()):
        raise ConfigError(f"channel {doc.name!r} is already installed in {dest} (use --force to replace it)")
    private_dir(dest)
    _copy_atomic(wasm, wasm_dest)
    _copy_atomic(caps, caps_dest)
    typer.echo(f"installed {doc.name} {doc.version} ({loaded.world.name}, "
               f"{report.human_size(loaded.size_bytes)}) in {dest}")
    missing = _missing_secrets(doc, _lazy_store(config))
    if missing:
        typer.echo(f"inactive until its secrets are set: "
                   f"{'; '.join(f'airlock secrets set {m}' for m in missing)}")


def _channel_row(runtime: Runtime, caps_path: Path, store: Callable[[], SecretStore]) -> list[str]:
    stem = caps_path.name.removesuffix(".capabilities.json")
    wasm = caps_path.with_name(f"{stem}.wasm")
    try:
        doc = load_capabilities(caps_path)
    except AirlockError as exc:
        return [stem, "?", "?", "?", f"invalid: {exc}"]
    if not wasm.is_file():
        return [stem, doc.version, "?", "?", f"invalid: {wasm.name} is missing"]
    try:
        loaded = runtime.load(wasm)
    except ComponentError as exc:
        return [stem, doc.version, "?", report.human_size(wasm.stat().st_size), f"invalid: {exc}"]
    missing = _missing_secrets(doc, store)
    status = f"inactive: missing secrets {', '.join(missing)}" if missing else "active"
    socket = doc.capabilities.websocket
    blocker = None if missing or socket is None else start_blocker(socket, lambda n: store().exists(n))
    if blocker is not None:
        status = f"active; websocket not opened: {blocker}"
    return [stem, doc.version, loaded.world.name, report.human_size(loaded.size_bytes), status]


@channels_app.command("list")
@_friendly_errors
def channels_list(ctx: typer.Context) -> None:
    """List installed channels: name, version, world, size, and whether they would be active."""
    config = _config(ctx)
    directory = config.channels_dir
    caps_files = sorted(directory.glob("*.capabilities.json")) if directory.is_dir() else []
    orphans = sorted(
        w for w in (directory.glob("*.wasm") if directory.is_dir() else [])
        if not w.with_name(f"{w.stem}.capabilities.json").exists()
    )
    if not caps_files and not orphans:
        typer.echo(f"no channels installed in {directory}", err=True)
        return
    table = Table("name", "version", "world", "size", "status")
    store = _lazy_store(config)
    with _runtime(config) as runtime:
        for caps_path in caps_files:
            row = _channel_row(runtime, caps_path, store)
            style = "green" if row[4] == "active" else "yellow" if row[4].startswith(("inactive", "active;")) else "red"
            table.add_row(*(Text(report.safe(c)) for c in row[:4]), Text(report.safe(row[4]), style=style))
    for wasm in orphans:
        table.add_row(Text(wasm.stem), "?", "?", report.human_size(wasm.stat().st_size),
                      Text(f"invalid: {wasm.stem}.capabilities.json is missing", style="red"))
    _console().print(table)


@channels_app.command("remove")
@_friendly_errors
def channels_remove(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The channel's name.")],
) -> None:
    """Remove an installed channel's component and capabilities file (its secrets and data are kept)."""
    _check_channel_name(name)
    config = _config(ctx)
    files = [config.channels_dir / f"{name}.wasm", config.channels_dir / f"{name}.capabilities.json"]
    present = [f for f in files if f.exists()]
    if not present:
        raise ConfigError(f"no channel named {name!r} is installed in {config.channels_dir}")
    for f in present:
        f.unlink()
    typer.echo(f"removed {name} (its secrets and workspace data are kept)")


@channels_app.command("check")
@_friendly_errors
def channels_check(
    ctx: typer.Context,
    caps: Annotated[Path, typer.Argument(help="A capabilities file to validate.")],
    wasm: Annotated[Path | None, typer.Argument(help="Also load this component.")] = None,
) -> None:
    """Validate a capabilities file (and optionally a component) and print a one-line summary."""
    doc = load_capabilities(caps)
    summary = report.caps_summary(doc)
    if wasm is not None:
        config = _config(ctx)
        with _runtime(config) as runtime:
            loaded = _load_component(runtime, wasm)
        summary += f"; component {loaded.world.name}, {report.human_size(loaded.size_bytes)}"
    typer.echo(f"ok: {report.safe(summary)}")


# ---- secrets -------------------------------------------------------------------------------------


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _check_against_channels(config: HostConfig, name: str, value: str) -> None:
    """Refuse a value that an installed channel's ``setup.required_secrets[].validation`` rejects."""
    directory = config.channels_dir
    for caps_path in sorted(directory.glob("*.capabilities.json")) if directory.is_dir() else []:
        doc = _read_caps_quietly(caps_path)
        if doc is None or doc.setup is None:
            continue
        for spec in doc.setup.required_secrets:
            if spec.name == name and spec.validation and not re.search(spec.validation, value):
                raise ConfigError(f"the value for {name} does not match the pattern channel {doc.name!r} "
                                  f"requires ({spec.validation}); nothing stored")


@secrets_app.command("set")
@_friendly_errors
def secrets_set(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Secret name (a-z, 0-9, _).")],
) -> None:
    """Store a secret. The value is read from a hidden prompt, or from stdin when it is not a terminal.

    One trailing newline is stripped from stdin, so `echo TOKEN | airlock secrets set NAME` works.
    """
    if not is_valid_secret_name(name):
        raise SecretStoreError(f"invalid secret name {name[:80]!r}: names must match ^[a-z0-9_]{{1,64}}$")
    config = _config(ctx)
    if _stdin_is_tty():
        value: str = typer.prompt(f"value for {name}", hide_input=True)
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if not value:
        raise ConfigError(f"empty value for {name}; nothing stored")
    _check_against_channels(config, name, value)
    store = SecretStore.open(config.home)
    store.set(name, value)
    typer.echo(f"stored secret {name}")


@secrets_app.command("list")
@_friendly_errors
def secrets_list(ctx: typer.Context) -> None:
    """List the names of stored secrets (never their values)."""
    store = _open_secrets(_config(ctx), create=False)
    names = store.names() if store is not None else []
    if not names:
        typer.echo("no secrets stored", err=True)
    for name in names:
        typer.echo(name)


@secrets_app.command("rm")
@_friendly_errors
def secrets_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Secret name.")]) -> None:
    """Delete a stored secret."""
    store = _open_secrets(_config(ctx), create=False)
    if store is None or not store.remove(name):
        raise SecretStoreError(f"no secret named {name!r}")
    typer.echo(f"removed secret {name}")


# ---- pairing -------------------------------------------------------------------------------------


def _expires_in(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s"


@pairing_app.command("list")
@_friendly_errors
def pairing_list(
    ctx: typer.Context, channel: Annotated[str, typer.Argument(help="The channel's name.")],
) -> None:
    """Show a channel's pending pairing requests: code, sender id, what the channel said, expiry."""
    config = _config(ctx)
    with PairingStore(config.pairing_db) as store:
        pending = store.pending(channel)
    if not pending:
        typer.echo(f"no pending pairing requests for {channel}", err=True)
        return
    now = time.time()
    table = Table("code", "external id", "meta", "expires")
    for req in pending:
        expires = time.strftime("%H:%M:%S", time.localtime(req.expires_at))
        left = _expires_in(req.expires_at - now)
        table.add_row(Text(req.code), Text(report.safe(req.external_id, 64)),
                      Text(report.safe(req.meta_json, 80)), Text(f"in {left} ({expires})"))
    _console().print(table)
    typer.echo(f"approve with: airlock pairing approve {channel} CODE", err=True)


@pairing_app.command("approve")
@_friendly_errors
def pairing_approve(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="The channel's name.")],
    code: Annotated[str, typer.Argument(help="The code the sender was given (case-insensitive).")],
    owner: Annotated[str | None, typer.Option(
        help="Owner id to bind the sender to. (default: the sender's own id)")] = None,
) -> None:
    """Approve a pending pairing request: its sender may message the agent from now on."""
    config = _config(ctx)
    with PairingStore(config.pairing_db) as store:
        req = store.approve(channel, code, owner)
    bound = f" as {owner}" if owner is not None else ""
    typer.echo(f"approved {report.safe(req.external_id)} on {channel}{bound}")


# ---- inspect -------------------------------------------------------------------------------------


def _raw_interfaces(runtime: Runtime, wasm: bytes) -> tuple[list[str], list[str]] | None:
    """Imports and exports of a component Airlock does not run, or ``None`` if it does not compile."""
    import wasmtime
    from wasmtime.component import Component

    try:
        ctype = Component(runtime.engine, wasm).type
        return sorted(ctype.imports(runtime.engine).keys()), sorted(ctype.exports(runtime.engine).keys())
    except wasmtime.WasmtimeError:
        return None


def _inspect_doc(runtime: Runtime, path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        return report.component_doc(runtime.load(path))
    except ComponentError as exc:
        reason = _component_problem(path, str(exc).removeprefix(f"{path.name}: "))
    elapsed = (time.perf_counter() - start) * 1000
    import hashlib

    data = path.read_bytes()
    raw = _raw_interfaces(runtime, data)
    return report.unsupported_doc(
        str(path), reason, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), load_ms=elapsed,
        imports=raw[0] if raw else None, exports=raw[1] if raw else None,
    )


@app.command()
@_friendly_errors
def inspect(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="A .wasm file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """Describe a component: world, imports, exports, size, load time, and whether Airlock can run it.

    Exit status 1 (with "unsupported: <reason>") for a file that is not a component of a supported world.
    """
    _require_file(wasm, "component")
    config = _config(ctx)
    with _runtime(config) as runtime:
        doc = _inspect_doc(runtime, wasm)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        report.render_inspect(_console(), doc)
    if not doc["supported"]:
        if not as_json:
            typer.echo(f"unsupported: {report.safe(str(doc['reason']))}")
        raise typer.Exit(1)


# ---- invoke --------------------------------------------------------------------------------------

_INPUT_KEYS: dict[str, tuple[str, ...]] = {
    "on-http-request": ("method", "path", "headers", "query", "body", "secret_validated"),
    "on-respond": ("content", "metadata", "user_id", "thread_id", "message_id"),
    "on-broadcast": ("content", "metadata", "user_id", "thread_id", "message_id"),
    "on-status": ("status", "message", "metadata"),
}

Call = Callable[["Channel"], "CallOutcome"]


def _field_str(obj: dict[str, Any], key: str, default: str, callback: str) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"--input: {callback}: {key} must be a string")
    return value


def _field_map(obj: dict[str, Any], key: str, callback: str) -> dict[str, str]:
    value = obj.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"--input: {callback}: {key} must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _json_text(obj: dict[str, Any], key: str, callback: str) -> str:
    """``metadata`` as JSON text: an object is serialized, a string is taken as JSON text."""
    value = obj.get(key, {})
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"--input: {callback}: {key} must be a JSON object")
    return json.dumps(value)


def _http_call(caps: CapabilitiesFile, obj: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    cb = "on-http-request"
    paths = caps.capabilities.channel.allowed_paths
    body: Any = obj.get("body", "")
    if not isinstance(body, str):
        body = json.dumps(body)
    validated = obj.get("secret_validated", False)
    if not isinstance(validated, bool):
        raise ConfigError(f"--input: {cb}: secret_validated must be true or false")
    req = IncomingHttpRequest(
        method=_field_str(obj, "method", "POST", cb).upper(),
        path=_field_str(obj, "path", paths[0] if paths else f"/webhook/{caps.name}", cb),
        headers_json=json.dumps({k.lower(): v for k, v in _field_map(obj, "headers", cb).items()}),
        query_json=json.dumps(_field_map(obj, "query", cb)), body=body.encode("utf-8"),
        secret_validated=validated,
    )
    shown = {"method": req.method, "path": req.path, "headers": json.loads(req.headers_json),
             "query": json.loads(req.query_json), "body": body, "secret_validated": validated}
    return shown, lambda ch: ch.http_request(req)


def _response_call(callback: str, obj: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    thread = obj.get("thread_id")
    if thread is not None and not isinstance(thread, str):
        raise ConfigError(f"--input: {callback}: thread_id must be a string")
    resp = AgentResponse(
        message_id=_field_str(obj, "message_id", "invoke-1", callback),
        content=_field_str(obj, "content", "hello from airlock invoke", callback), thread_id=thread,
        metadata_json=_json_text(obj, "metadata", callback),
    )
    shown: dict[str, Any] = {"message_id": resp.message_id, "content": resp.content, "thread_id": thread,
                             "metadata": report.json_or_text(resp.metadata_json)}
    if callback == "on-respond":
        return shown, lambda ch: ch.respond(resp)
    user = _field_str(obj, "user_id", "user", callback)
    shown["user_id"] = user
    return shown, lambda ch: ch.broadcast(user, resp)


def _status_call(obj: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    cb = "on-status"
    update = StatusUpdate(
        status=_field_str(obj, "status", "thinking", cb), message=_field_str(obj, "message", "", cb),
        metadata_json=_json_text(obj, "metadata", cb),
    )
    if update.status not in STATUS_TYPES:
        choices = ", ".join(STATUS_TYPES)
        raise ConfigError(f"--input: on-status: status {update.status!r} is not one of {choices}")
    shown = {"status": update.status, "message": update.message,
             "metadata": report.json_or_text(update.metadata_json)}
    return shown, (
        lambda ch: ch.status(update))


def _build_call(callback: str, input_json: str | None, caps: CapabilitiesFile) -> tuple[dict[str, Any], Call]:
    """Parse ``--input`` for ``callback``; return what will be sent (for the report) and the call."""
    if callback not in CALLBACKS:
        raise ConfigError(f"unknown callback {callback!r} (one of {', '.join(CALLBACKS)})")
    data: Any = None
    if input_json is not None:
        try:
            data = json.loads(input_json)
        except ValueError as exc:
            raise ConfigError(f"--input: invalid JSON: {exc}") from None
    if callback == "on-start":
        config = caps.config if data is None else data
        if not isinstance(config, dict):
            raise ConfigError("--input: on-start takes the config object (a JSON object)")
        return {"config": config}, lambda ch: ch.start(json.dumps(config))
    if callback in ("on-poll", "on-shutdown"):
        if data not in (None, {}):
            raise ConfigError(f"--input: {callback} takes no input")
        return {}, (lambda ch: ch.poll()) if callback == "on-poll" else (lambda ch: ch.shutdown())
    obj = {} if data is None else data
    if not isinstance(obj, dict):
        raise ConfigError(f"--input: {callback} takes a JSON object")
    unknown = sorted(set(obj) - set(_INPUT_KEYS[callback]))
    if unknown:
        raise ConfigError(f"--input: {callback}: unknown key {unknown[0]!r} "
                          f"(expected {', '.join(_INPUT_KEYS[callback])})")
    if callback == "on-http-request":
        return _http_call(caps, obj)
    if callback == "on-status":
        return _status_call(obj)
    return _response_call(callback, obj)


def _secret_values(caps: CapabilitiesFile, store: SecretStore | None) -> dict[str, str]:
    """Values of every stored secret the channel could have used (for redacting the report)."""
    if store is None:
        return {}
    named: set[str] = set()
    if caps.capabilities.http is not None:
        named |= {c.secret_name for c in caps.capabilities.http.credentials.values()}
    if caps.setup is not None:
        named |= {s.name for s in caps.setup.required_secrets}
    if caps.auth is not None:
        named.add(caps.auth.secret_name)
    values: dict[str, str] = {}
    for name in store.names():
        if name in named or caps.capabilities.secrets.allows(name):
            value = store.get(name)
            if value is not None:
                values[name] = value
    return values


def _run_invoke(config: HostConfig, wasm: Path, caps: CapabilitiesFile, callback: str,
                request: dict[str, Any], call: Call) -> dict[str, Any]:
    from .channels.channel import Channel, HostServices
    from .runtime.instance import Sandbox

    with contextlib.ExitStack() as stack:
        runtime = stack.enter_context(_runtime(config))
        loaded = _load_component(runtime, wasm)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="airlock-invoke-")))
        pairing = stack.enter_context(PairingStore(scratch / "pairing.db"))
        secrets = _open_secrets(config, create=False)
        egress = None
        if caps.capabilities.http is not None:
            from .capabilities.egress import Egress

            egress = Egress(upstream_overrides=config.upstream_overrides,
                            allow_private_hosts=config.allow_private_hosts)
            stack.callback(egress.close)
        services = HostServices(
            sandbox=Sandbox(runtime, fastpath=config.fastpath),
            secret_lookup=secrets.get if secrets is not None else (lambda _n: None),
            pairing=pairing, durable=None, egress=egress, memory_limit_bytes=config.memory_limit_bytes,
            fuel_per_callback=config.fuel_per_callback,
        )
        channel = Channel(caps, loaded, services)
        outcome = call(channel)
        doc = report.invoke_doc(channel, outcome, request)
        redacted: dict[str, Any] = report.redact(doc, _secret_values(caps, secrets))
        return redacted


@app.command()
@_friendly_errors
def invoke(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="The channel component (.wasm).")],
    callback: Annotated[str, typer.Argument(help=f"One of: {', '.join(CALLBACKS)}.")],
    capabilities: Annotated[Path, typer.Option("--capabilities", "-c", help="Its capabilities file.")],
    input_json: Annotated[str | None, typer.Option("--input", metavar="JSON", help=(
        "JSON input. on-start: the config object (default: the capabilities file's config); "
        'on-http-request: {"method","path","headers","query","body"}; on-respond/on-broadcast: '
        '{"content","metadata","user_id","thread_id"}; on-status: {"status","message","metadata"}.'
    ))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
    upstream: Annotated[list[str] | None, typer.Option(
        metavar="HOST=URL", help="Send the channel's traffic for HOST to URL instead. Repeatable.")] = None,
) -> None:
    """Run ONE callback in a fresh sandbox and report every host call it made.

    The server's limits apply (memory, fuel, the channel's callback timeout). Secrets come from the
    home's store, so credential injection works (values are redacted from the report); the workspace
    and pairing store are temporary, so nothing is persisted. Exit status 2 if the callback failed.
    """
    _setup_logging(logging.WARNING, quiet=_QUIETABLE)
    config = _config(ctx, upstream_overrides=_parse_upstreams(upstream))
    caps = load_capabilities(capabilities)
    request, call = _build_call(callback, input_json, caps)
    doc = _run_invoke(config, wasm, caps, callback, request, call)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        report.render_invoke(_console(), doc)
    if not doc["ok"]:
        raise typer.Exit(2)


def main() -> None:
    """Console-script entry point (``airlock``)."""
    try:
        app(prog_name="airlock")
    except AirlockError as exc:  # pragma: no cover - the commands already catch these
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
