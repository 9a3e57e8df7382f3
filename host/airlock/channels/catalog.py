"""What is installed in a channels directory, read without changing anything: the versioned instances
(``channels.layout``), each with its effective capabilities file (manifest + operator settings,
``channels.settings``), and any pair of the flat layout not migrated yet. Used by the gateway to load channels and
by the CLI to list, check and complete them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AirlockError
from ..manifest import CapabilitiesFile, load_capabilities
from ..stores.secrets import generate_value
from .layout import COMPONENT_FILE, PROVENANCE_FILE, ChannelStore
from .settings import effective_caps

__all__ = ["Entry", "find", "generate_secrets", "list_installed", "provenance_file", "secret_name_for"]

log = logging.getLogger("airlock.channels")



@dataclass
class Entry:
    """One installed channel. ``caps`` is None when its files do not load (``error`` says why, one line)."""

    name: str
    platform: str
    version: str
    component: Path
    caps: CapabilitiesFile | None
    error: str | None = None
    disabled: bool = False
    versioned: bool = True
    """False for a pair of the flat layout (``<name>.wasm`` + ``<name>.capabilities.json``) not migrated yet."""


def _quiet(fn: Callable[[], CapabilitiesFile]) -> tuple[CapabilitiesFile | None, str | None]:
    try:
        return fn(), None
    except AirlockError as exc:
        return None, " ".join(str(exc).split())


def list_installed(channels_dir: Path, *, lenient: bool = False) -> list[Entry]:
    """Every installed channel in ``channels_dir``, sorted by name: the instances, then each flat-layout
    ``<name>.capabilities.json`` of another name (its ``error`` says so when its file is invalid or its
    ``<name>.wasm`` is missing). ``lenient``: unknown keys in a capabilities file are warnings, not errors
    (``HostConfig.lenient_capabilities``, ``--lenient``)."""
    store = ChannelStore(channels_dir)
    out: list[Entry] = []
    for name in store.names():
        try:
            inst = store.get(name)
        except AirlockError as exc:
            out.append(Entry(name, name, "?", channels_dir / name, None, str(exc)))
            continue
        caps, error = _quiet(lambda n=name: effective_caps(store, n, lenient=lenient))  # type: ignore[misc]
        out.append(Entry(name, inst.platform, inst.active, store.component(name, inst.active), caps, error,
                         disabled=inst.disabled))
    taken = {e.name for e in out}
    for caps_path in sorted(channels_dir.glob("*.capabilities.json")) if channels_dir.is_dir() else []:
        name = caps_path.name.removesuffix(".capabilities.json")
        if name in taken:
            continue
        wasm = channels_dir / f"{name}.wasm"
        caps, error = _quiet(lambda p=caps_path: load_capabilities(p, lenient=lenient))  # type: ignore[misc]
        if caps is not None and not wasm.is_file():
            caps, error = None, f"{wasm.name} is missing"
        out.append(Entry(name, caps.name if caps else name, caps.version if caps else "?", wasm, caps, error,
                         versioned=False))
    return sorted(out, key=lambda e: e.name)


def find(channels_dir: Path, name: str, *, lenient: bool = False) -> Entry | None:
    """The installed channel ``name``, or None."""
    return next((e for e in list_installed(channels_dir, lenient=lenient) if e.name == name), None)


def provenance_file(component: Path, name: str) -> Path:
    """The provenance record (``airlock.packages``) of the installed component at ``component``: the version's
    ``provenance.json``, or ``<name>.provenance.json`` beside a flat-layout component."""
    if component.name == COMPONENT_FILE:
        return component.parent / PROVENANCE_FILE
    return component.parent / f"{name}.provenance.json"


def secret_name_for(entry_name: str, platform: str, secret: str) -> str:
    """The name under which instance ``entry_name`` stores ``secret`` (``channels.services.namespaced_lookup``)."""
    return secret if entry_name == platform else f"{entry_name}/{secret}"


def generate_secrets(caps: CapabilitiesFile, instance: str, exists: Callable[[str], bool],
                     store: Callable[[str, str], None]) -> list[str]:
    """Create the ``auto_generate`` secrets of ``caps`` that instance ``instance`` lacks (random letters and
    digits, the declared length); returns the stored names. Values are never logged."""
    made = []
    for spec in caps.setup.required_secrets if caps.setup else []:
        name = secret_name_for(instance, caps.name, spec.name)
        if spec.auto_generate is not None and not exists(name):
            store(name, generate_value(spec.auto_generate.length))
            log.info("generated secret %s (%d characters)", name, spec.auto_generate.length)
            made.append(name)
    return made
