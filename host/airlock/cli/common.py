"""Helpers shared by several command groups: the engine, loading a component with a clear error, the
secret store, reading capabilities files, and atomic file copies."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from ..channels.catalog import Entry, list_installed, secret_name_for
from ..channels.layout import ChannelStore
from ..errors import AirlockError, ComponentError, ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile, load_capabilities
from ..runtime.engine import LoadedComponent, Runtime
from ..state.backends import open_secrets as state_secrets
from ..stores import SecretStore

__all__ = [
    "NAME_RE",
    "LenientOption",
    "check_channel_name",
    "check_file_against_schema",
    "complete_channel",
    "component_problem",
    "copy_atomic",
    "installed_caps",
    "lazy_store",
    "lenient_note",
    "load_component",
    "migrate_quietly",
    "missing_secrets",
    "open_secrets",
    "read_caps_quietly",
    "require_file",
    "runtime_for",
]

log = logging.getLogger("airlock.cli")

#: A channel name, as the capabilities file requires it (``manifest.base.NAME_RE``).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CORE_MODULE_VERSION = b"\x01\x00\x00\x00"


LenientOption = Annotated[bool, typer.Option(
    "--lenient", help="Unknown keys in the capabilities file are warnings (and ignored) instead of errors.")]
"""``--lenient`` of ``channels check`` and ``channels install`` (``manifest.strict``)."""


def lenient_note(caps: Path, config: HostConfig) -> None:
    """After a lenient install: say that the gateway reads installed files strictly unless told otherwise."""
    if not config.lenient_capabilities:
        log.warning("%s: installed leniently; airlock serve refuses a file with unknown keys unless it runs with "
                    "--lenient (or lenient_capabilities = true in airlock.toml)", caps)


def check_file_against_schema(path: Path, *, lenient: bool) -> None:
    """Validate the (already loaded, so readable JSON) file at ``path`` against the published JSON Schema.

    Raises:
        CapabilitiesError: the first mismatch, one line (``manifest.schema.check_against_schema``).
    """
    from ..manifest.schema import check_against_schema

    obj = json.loads(path.read_bytes().decode("utf-8-sig"))
    check_against_schema(obj, str(path), lenient=lenient)


def require_file(path: Path, what: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` is an existing regular file."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found" if not path.exists() else f"{path}: not a file")


@contextlib.contextmanager
def runtime_for(config: HostConfig) -> Iterator[Runtime]:
    """A Runtime on the home's compile cache, closed on exit. No instance pool: a command compiles, inspects or
    runs one callback at a time, and a pool would only reserve address space (and memory mappings)."""
    runtime = Runtime(config.cache_dir, pooling=None)
    try:
        yield runtime
    finally:
        runtime.close()


def component_problem(path: Path, reason: str) -> str:
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


def load_component(runtime: Runtime, path: Path) -> LoadedComponent:
    """Load ``path``; a ComponentError names the file and says clearly what is wrong with it."""
    require_file(path, "component")
    try:
        return runtime.load(path)
    except ComponentError as exc:
        reason = str(exc).removeprefix(f"{path.name}: ")
        raise ComponentError(f"{path}: {component_problem(path, reason)}") from None


def open_secrets(config: HostConfig, *, create: bool = True) -> SecretStore | None:
    """The home's secret store (``state.backends.open_secrets``: the file in the home, or PostgreSQL); ``None`` if
    ``create`` is false and no store file exists yet (SQLite state)."""
    if not create and config.state_url.kind == "sqlite" and not config.secrets_path.exists():
        return None
    return state_secrets(config)


def missing_secrets(caps: CapabilitiesFile, store: Callable[[], SecretStore], *,
                    instance: str | None = None) -> list[str]:
    """Required (non-optional) secrets not stored yet, as ``airlock secrets set`` takes them (``NAME``, or
    ``INSTANCE/NAME`` for a second account of a platform). Auto-generated ones are created by ``serve``."""
    if caps.setup is None:
        return []
    name = instance or caps.name
    wanted = [secret_name_for(name, caps.name, s.name) for s in caps.setup.required_secrets
              if not s.optional and s.auto_generate is None]
    if not wanted:
        return []
    secrets = store()
    return [n for n in wanted if not secrets.exists(n)]


def migrate_quietly(store: ChannelStore) -> None:
    """Move the flat layout into the versioned one (``ChannelStore.migrate``); a directory that cannot be written
    is left as it is (read-only homes still list)."""
    with contextlib.suppress(OSError):
        store.migrate()


def lazy_store(config: HostConfig) -> Callable[[], SecretStore]:
    """A getter that opens the secret store on first use (listing channels without secrets needs no key)."""
    opened: list[SecretStore] = []

    def get() -> SecretStore:
        if not opened:
            opened.append(state_secrets(config))
        return opened[0]

    return get


def read_caps_quietly(path: Path, *, lenient: bool = False) -> CapabilitiesFile | None:
    """Load a capabilities file without warnings; ``None`` if it is invalid."""
    config_log = logging.getLogger("airlock.manifest")
    saved = config_log.level
    config_log.setLevel(logging.ERROR)
    try:
        return load_capabilities(path, lenient=lenient)
    except AirlockError:
        return None
    finally:
        config_log.setLevel(saved)


def installed_caps(config: HostConfig) -> list[Entry]:
    """The installed channels (``channels.catalog``), sorted by name (empty if the directory is missing)."""
    return list_installed(config.channels_dir, lenient=config.lenient_capabilities)


def complete_channel(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: installed channel names starting with ``incomplete`` (never raises)."""
    try:
        home = ctx.find_root().params.get("home")
        config = HostConfig.build(**({"home": home} if isinstance(home, Path) else {}))
        names = [e.name for e in installed_caps(config)]
    except (AirlockError, OSError):
        return []
    return [n for n in names if n.startswith(incomplete)]


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through a temporary file in the same directory (never a half-written file)."""
    data = src.read_bytes()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_channel_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a valid channel name (so it is safe in a path)."""
    if not NAME_RE.match(name):
        raise ConfigError(f"{name!r} is not a channel name (must match ^[a-z0-9][a-z0-9_-]{{0,62}}$)")
