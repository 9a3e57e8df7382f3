"""Writing a channel into the home: a new instance, or a new version of an installed one (``channels.layout``).

:func:`stage` is the one way in for every source: the CLI's bare ``.wasm`` + ``.capabilities.json`` and a verified
package (``airlock.packages`` hands over the component and capabilities bytes it checked, its version and its
provenance). It validates before anything is written: the capabilities file parses (with the instance's operator
settings applied, for an upgrade), the instance name is valid, and an upgrade keeps the platform (a Slack component
cannot become a new version of a Telegram instance). The component itself is loaded by the caller first (it needs
the engine). Nothing is activated here unless the instance is new: :class:`Staged` says what to do next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..manifest import CapabilitiesFile, parse_capabilities
from .layout import ChannelStore, bare_version, check_instance_name, check_version
from .settings import OperatorSettings, effective_doc, load_settings

__all__ = ["Staged", "stage"]


@dataclass
class Staged:
    """A version written to the home: ``name`` (instance), ``version``, ``caps`` (effective), ``new_instance``
    (created and active now), ``fresh`` (False when that exact version was already kept)."""

    name: str
    version: str
    caps: CapabilitiesFile
    new_instance: bool
    fresh: bool


def stage(store: ChannelStore, wasm: bytes, caps_bytes: bytes, *, source: str, as_name: str | None = None,
          upgrade: bool = False, version: str | None = None,
          provenance: dict[str, Any] | None = None, lenient: bool = False) -> Staged:
    """Write ``wasm`` + ``caps_bytes`` as a version of instance ``as_name`` (default: the file's ``name``).

    ``upgrade``: the instance must exist (else it must not); ``version``: the package's version (default: the bare
    rule, ``layout.bare_version``); ``source``: what the file was called, for error messages; ``provenance``: kept
    in the version's ``provenance.json`` (default ``{"source": "bare", "signed": false}``); ``lenient``: unknown keys
    are warnings (``manifest.parse_capabilities``).

    Raises:
        ConfigError: one line, nothing written.
    """
    doc = parse_capabilities(caps_bytes, source, lenient=lenient)
    name = check_instance_name(as_name or doc.name)
    exists = store.exists(name)
    if exists and not upgrade:
        raise ConfigError(f"channel {name!r} is already installed in {store.root} (airlock channels upgrade {name} "
                          f"WASM CAPS, or --force)")
    if upgrade and not exists:
        raise ConfigError(f"no channel named {name!r} is installed in {store.root} (airlock channels install)")
    settings = OperatorSettings()
    if exists:
        inst = store.get(name)
        if inst.platform != doc.name:
            raise ConfigError(f"{source}: $.name: {doc.name!r}, but {name} runs a {inst.platform!r} component; "
                              f"install it as a channel of its own (--as NAME)")
        settings = load_settings(store.operator_path(name))
    raw = json.loads(caps_bytes)
    effective = parse_capabilities(json.dumps(effective_doc(raw, settings)), f"{source} (with {name}'s settings)",
                                   lenient=lenient)
    chosen = check_version(version) if version is not None else bare_version(doc.version, wasm, caps_bytes)
    fresh = store.stage(name, chosen, wasm, caps_bytes, provenance or {"source": "bare", "signed": False})
    if not exists:
        store.create(name, doc.name, chosen)
    return Staged(name=name, version=chosen, caps=effective, new_instance=not exists, fresh=fresh)
