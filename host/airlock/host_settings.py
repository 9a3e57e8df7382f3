"""Where the host's settings come from: defaults, the host config file, ``AIRLOCK_*`` environment variables and
the command line, in that order of precedence (each later source overrides the earlier ones, field by field).

* **File**: ``--config PATH`` (must exist), else ``HOME/airlock.toml`` (optional): TOML whose keys are the fields
  of :class:`~airlock.host_config.HostConfig` (``[routing]`` a table). An unknown key is an error with a "did you
  mean" (``difflib``); ``home`` cannot be set in a file (the file is found through the home).
* **Environment**: ``AIRLOCK_<FIELD>`` for every field but ``home`` (its variable is ``AIRLOCK_HOME``, read by
  the ``--home`` option) and ``routing`` (a table: file only); :data:`ENV_VARS` lists them. Values are typed by the
  field: booleans ``1/true/yes/on`` or ``0/false/no/off``; integers (``_`` allowed); numbers; lists
  comma-separated; ``upstream_overrides`` as ``HOST=URL,HOST=URL``; an empty value means "unset" (``None``) for
  the fields that allow it.
  A variable that is no setting but close to one (``AIRLOCK_LISTEN_PROT``) is warned about.
* **Command line**: the options of the command that runs (``serve --port``...).

A bad value from any source is a :class:`~airlock.errors.ConfigError` of one line naming the source: the file's
path, the variable (``AIRLOCK_LISTEN_PORT='x': expected an integer``) or the option.
:func:`resolve` returns the config and, for ``airlock config show``, where each value came from.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError

from .errors import ConfigError
from .host_config import HostConfig, default_home
from .manifest.base import one_line

__all__ = ["CONFIG_FILE", "ENV_PREFIX", "ENV_VARS", "OTHER_VARS", "Settings", "env_values", "misspelled_vars",
           "parse_env", "read_file", "resolve"]

log = logging.getLogger("airlock.settings")

#: The host config file in the home.
CONFIG_FILE = "airlock.toml"
ENV_PREFIX = "AIRLOCK_"
_NOT_FROM_ENV = frozenset({"home", "routing"})
#: ``AIRLOCK_<FIELD>`` -> field name, for every field an environment variable may set.
ENV_VARS: dict[str, str] = {
    f"{ENV_PREFIX}{name.upper()}": name for name in HostConfig.model_fields if name not in _NOT_FROM_ENV
}
#: ``AIRLOCK_*`` variables that are not settings but are read elsewhere (never reported as misspelled settings).
OTHER_VARS = frozenset({"AIRLOCK_HOME", "AIRLOCK_MASTER_KEY", "AIRLOCK_NEW_MASTER_KEY",
                        # a worker's role, from its supervisor (``workers.role``)
                        "AIRLOCK_WORKER_INDEX", "AIRLOCK_WORKER_COUNT", "AIRLOCK_WORKER_SOCKETS",
                        "AIRLOCK_WORKER_READY_FD"})
#: ``difflib`` cutoff for "AIRLOCK_LISTEN_PROT is not a setting (did you mean ...)": high, so that unrelated
#: variables of other tools (``AIRLOCK_CARGO``...) are never taken for a misspelled setting.
TYPO_CUTOFF = 0.85
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

Origin = Literal["default", "file", "env", "command line"]


@dataclass(frozen=True)
class Settings:
    """The effective host config and, per field, where its value came from.

    ``origins[field]`` is ``(kind, where)``: ``("default", "")``, ``("file", "<path>")``,
    ``("env", "AIRLOCK_X")`` or ``("command line", "")``. ``file`` is the config file read, if any.
    """

    config: HostConfig
    origins: dict[str, tuple[Origin, str]]
    file: Path | None = None


def read_file(path: Path) -> dict[str, Any]:
    """The settings of a host config file.

    Raises:
        ConfigError: the file cannot be read, is not TOML, sets ``home`` or a key HostConfig does not have.
    """
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {one_line(str(exc))}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    known = [name for name in HostConfig.model_fields if name != "home"]
    for key in values:
        if key == "home":
            raise ConfigError(f"{path}: home: cannot be set in a config file (use --home or AIRLOCK_HOME)")
        if key not in HostConfig.model_fields:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: {key}: unknown setting{hint}")
    return values


def parse_env(var: str, raw: str) -> Any:
    """The value of ``AIRLOCK_<FIELD>=raw``, typed by the field (module docstring).

    Raises:
        ConfigError: ``raw`` is not a value of the field's type (one line naming the variable).
    """
    annotation = HostConfig.model_fields[ENV_VARS[var]].annotation
    return _typed(var, raw.strip(), annotation)


def _typed(var: str, raw: str, annotation: Any) -> Any:
    if get_origin(annotation) is Annotated:  # Annotated[int, Field(ge=1)]: the limits are HostConfig's to check
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if raw == "" and len(members) < len(get_args(annotation)):
            return None
        return _typed(var, raw, members[0])
    expected = {bool: "true or false", int: "an integer", float: "a number"}
    try:
        if annotation is bool:
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError
            return raw.lower() in _TRUE
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw[:80]!r}: expected {expected[annotation]}") from None
    if origin is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if origin is dict:
        return _pairs(var, raw)
    return raw  # str, Path, a Literal: validated by HostConfig


def _pairs(var: str, raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{var}: {item[:80]!r} is not HOST=URL")
        out[key.strip()] = value.strip()
    return out


def misspelled_vars(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``AIRLOCK_*`` variable that is no setting but looks like one (:data:`TYPO_CUTOFF`)."""
    out = []
    for var in sorted(environ):
        if var.startswith(ENV_PREFIX) and var not in ENV_VARS and var not in OTHER_VARS:
            close = difflib.get_close_matches(var, list(ENV_VARS), n=1, cutoff=TYPO_CUTOFF)
            if close:
                out.append(f"{var} is not a setting (did you mean {close[0]}?); ignored")
    return out


def env_values(environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """``field -> (variable, typed value)`` for every ``AIRLOCK_<FIELD>`` set in ``environ``.

    Raises:
        ConfigError: a value of the wrong type (:func:`parse_env`).
    """
    return {ENV_VARS[var]: (var, parse_env(var, raw)) for var, raw in sorted(environ.items()) if var in ENV_VARS}


def resolve(*, home: Path | None = None, home_origin: Origin = "default", config_file: Path | None = None,
            environ: Mapping[str, str] | None = None, defaults: Mapping[str, Any] | None = None,
            cli: Mapping[str, Any] | None = None) -> Settings:
    """Build the effective host config from every source (module docstring).

    Args:
        home: the home (``--home``/``AIRLOCK_HOME``; ``None``: :func:`~airlock.host_config.default_home`).
        home_origin: where ``home`` came from, for :attr:`Settings.origins`.
        config_file: ``--config``: this file instead of ``HOME/airlock.toml``; it must exist.
        environ: the environment (``os.environ`` when ``None``).
        defaults: a command's own defaults (``serve`` turns the admin listener on): below file and environment.
        cli: the command-line options given: above everything.

    Raises:
        ConfigError: a bad file, variable or value: one line naming where it came from.
    """
    environ = os.environ if environ is None else environ
    for warning in misspelled_vars(environ):
        log.warning("%s", warning)
    home = (home or default_home()).expanduser()
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"{config_file}: config file not found")
    path = config_file if config_file is not None else home / CONFIG_FILE
    from_file = read_file(path) if path.is_file() else {}
    layers: list[tuple[Origin, str, dict[str, Any]]] = [
        ("default", "", dict(defaults or {})),
        ("file", str(path), from_file),
        *[("env", var, {name: value}) for name, (var, value) in env_values(environ).items()],
        ("command line", "", dict(cli or {})),
    ]
    values: dict[str, Any] = {"home": home}
    origins: dict[str, tuple[Origin, str]] = {name: ("default", "") for name in HostConfig.model_fields}
    origins["home"] = (home_origin, "AIRLOCK_HOME" if home_origin == "env" else "")
    for kind, where, layer in layers:
        for name, value in layer.items():
            values[name] = value
            origins[name] = (kind, where)
    try:
        config = HostConfig(**values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        kind, where = origins.get(name, ("default", ""))
        env_value = f"{where}={environ.get(where, '')[:80]!r}" if kind == "env" else ""
        source = {"file": where, "env": env_value, "command line": "command line"}.get(kind, "host config")
        dotted = ".".join(str(p) for p in err["loc"]) or "value"
        msg = one_line(str(err["msg"])).removeprefix("Value error, ")
        raise ConfigError(f"{source}: {dotted}: {msg}") from None
    return Settings(config=config, origins=origins, file=path if from_file or config_file else None)
