"""The root ``airlock`` Typer app, the ``--home`` option, and what every command shares: one-line errors,
logging to stderr, and the host config built from the command line.

An expected failure (bad input, a bad capabilities file or component, a secret store that does not open, an
unknown pairing code, an I/O error) prints one line, ``error: ...``, on stderr and exits with status 1; no
traceback (:func:`friendly_errors`).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from ..errors import AirlockError, ConfigError
from ..host_config import HostConfig
from ..host_settings import Origin, Settings, resolve

__all__ = [
    "QUIETABLE",
    "RootOptions",
    "app",
    "config_from",
    "fail",
    "friendly_errors",
    "one_line",
    "os_error",
    "parse_upstreams",
    "settings_from",
    "setup_logging",
]

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="airlock",
    help="Run chat-channel plugins as sandboxed WebAssembly components.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secret values
    # --install-completion / --show-completion (bash, zsh, fish, PowerShell); README "Shell completion".
    add_completion=True,
    # Sub-commands inherit this from the root context: `airlock channels list -h` works too.
    context_settings={"help_option_names": ["-h", "--help"]},
)


# ---- errors --------------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(text.split()) or "unknown error"


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` (one line) on stderr and exit with status 1."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(1)


def os_error(exc: OSError) -> str:
    """An OSError as ``<file>: <reason>`` (no errno number, no traceback)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors an operator can cause into one ``error: ...`` line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AirlockError as exc:
            fail(str(exc))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            fail(f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}")
        except sqlite3.Error as exc:
            fail(f"database error: {exc}")
        except OSError as exc:
            fail(os_error(exc))

    return wrapper


# ---- logging -------------------------------------------------------------------------------------


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


#: Loggers a command may silence (``invoke`` reports the guest's logs itself).
QUIETABLE = ("airlock.guest", "airlock.channel")


def setup_logging(level: int, *, serve: bool = False, quiet: tuple[str, ...] = (), fmt: str = "text") -> None:
    """Send ``airlock.*`` logs to stderr: for ``serve``, ``observability.configure_logging`` (``fmt`` "text":
    timestamped lines, "json": one object a line; context fields; stored secret values redacted), otherwise
    ``warning: ...`` lines.

    Raises:
        ConfigError: ``fmt`` is not "text" or "json".
    """
    from ..observability.logs import configure_logging, remove_logging

    root = logging.getLogger("airlock")
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    remove_logging()
    if serve:
        configure_logging(fmt, level)
    else:
        handler = _StderrHandler()
        handler.setFormatter(_CliFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIETABLE:
        logging.getLogger(name).setLevel(logging.CRITICAL if name in quiet else logging.NOTSET)


# ---- the root command and the host config --------------------------------------------------------


def _show_version(value: bool) -> None:
    """The eager ``--version`` callback: print and exit before any command runs."""
    if value:
        from .about import version_text

        typer.echo(version_text())
        raise typer.Exit(0)


@dataclass(frozen=True)
class RootOptions:
    """The root command's options, kept on the root context for :func:`config_from`."""

    home: Path | None
    home_origin: Origin
    config_file: Path | None


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(
        "--home", envvar="AIRLOCK_HOME", show_envvar=True,
        help="Data directory (secrets, pairing, workspace, channels, compile cache). Default ~/.airlock.",
    )] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", metavar="PATH",
        help="Host config file (TOML) to read instead of HOME/airlock.toml. AIRLOCK_* variables override it.",
    )] = None,
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_show_version, is_eager=True,
        help="Print the Airlock and wasmtime versions and the worlds supported, then exit.",
    )] = False,
) -> None:
    """Airlock: chat-channel plugins as sandboxed WebAssembly components."""
    # By name: typer 0.29 vendors its own click, whose enum is not click's.
    source = getattr(ctx.get_parameter_source("home"), "name", "DEFAULT")
    origin: Origin = "env" if source == "ENVIRONMENT" else "command line" if source == "COMMANDLINE" else "default"
    ctx.obj = RootOptions(home=home, home_origin=origin, config_file=config_file)
    setup_logging(logging.WARNING)


def settings_from(ctx: typer.Context, *, defaults: dict[str, Any] | None = None, **values: Any) -> Settings:
    """The host settings for this invocation (``host_settings.resolve``): ``--home``, ``--config`` (or
    ``HOME/airlock.toml``), ``AIRLOCK_*`` variables, then ``values`` (the command's options, highest); ``defaults``
    are the command's own defaults, below the file.

    Raises:
        ConfigError: a bad file, variable or value (one line naming where it came from).
    """
    root = ctx.find_root().obj
    opts = root if isinstance(root, RootOptions) else RootOptions(None, "default", None)
    if "home" in values:
        opts = RootOptions(values.pop("home"), "command line", opts.config_file)
    return resolve(home=opts.home, home_origin=opts.home_origin, config_file=opts.config_file,
                   defaults=defaults, cli=values)


def config_from(ctx: typer.Context, **values: Any) -> HostConfig:
    """The host config for this invocation (:func:`settings_from` without the origins).

    Raises:
        ConfigError: a value is invalid (one line, e.g. ``AIRLOCK_LISTEN_PORT='x': expected an integer``).
    """
    return settings_from(ctx, **values).config


def parse_upstreams(items: list[str] | None) -> dict[str, str]:
    """``["api.x.org=http://127.0.0.1:81"]`` -> ``{"api.x.org": "http://127.0.0.1:81"}``.

    Raises:
        ConfigError: an item is not ``HOST=URL``.
    """
    out: dict[str, str] = {}
    for item in items or []:
        host, sep, url = item.partition("=")
        if not sep or not host.strip() or not url.strip():
            raise ConfigError(
                f"--upstream {item!r}: expected HOST=URL (e.g. api.telegram.org=http://127.0.0.1:8081)"
            )
        out[host.strip()] = url.strip()
    return out
