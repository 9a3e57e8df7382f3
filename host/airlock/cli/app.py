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
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from ..errors import AirlockError, ConfigError
from ..host_config import HostConfig

__all__ = [
    "QUIETABLE",
    "app",
    "config_from",
    "fail",
    "friendly_errors",
    "one_line",
    "os_error",
    "parse_upstreams",
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


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(
        "--home", envvar="AIRLOCK_HOME", show_envvar=True,
        help="Data directory (secrets, pairing, workspace, channels, compile cache). Default ~/.airlock.",
    )] = None,
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_show_version, is_eager=True,
        help="Print the Airlock and wasmtime versions and the worlds supported, then exit.",
    )] = False,
) -> None:
    """Airlock: chat-channel plugins as sandboxed WebAssembly components."""
    ctx.obj = home
    setup_logging(logging.WARNING)


def config_from(ctx: typer.Context, **values: Any) -> HostConfig:
    """The host config for this invocation: ``--home`` (or ``$AIRLOCK_HOME``) plus ``values``.

    Raises:
        ConfigError: a value is invalid (one line, e.g. ``listen_port: ...``).
    """
    home = ctx.find_root().obj
    if isinstance(home, Path):
        values["home"] = home
    path = HostConfig.build(**{k: v for k, v in values.items() if k == "home"}).home / CONFIG_FILE
    from_file = host_file(path)
    try:
        return HostConfig.build(**{**from_file, **values})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if from_file else str(exc)) from None


CONFIG_FILE = "airlock.toml"
"""The host config file in the home (TOML, the fields of ``HostConfig``; command-line options override it)."""


def host_file(path: Path) -> dict[str, Any]:
    """The values of a host config file (empty when there is none).

    Raises:
        ConfigError: the file is not valid TOML (one line with the file and the parser's message).
    """
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


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
