"""The operator's settings of an installed channel, kept apart from the plugin's manifest so that they survive
every upgrade and rollback: ``HOME/channels/<name>/operator.json``::

    {"config": {"owner_id": "123", "dm_policy": "allowlist"},
     "capabilities": {"http": {"rate_limit": {"requests_per_minute": 10}}}}

The effective capabilities file of a version = its manifest (``capabilities.json`` in the version's directory)
with these settings applied:

- ``config``: each key the operator set replaces the manifest's value of that key (``null`` is a value too); every
  other key keeps the manifest's value, so a new default in a new version applies exactly where the operator set
  nothing;
- ``capabilities``: a JSON Merge Patch (RFC 7396, section 2) over the manifest's ``capabilities``: objects merge key
  by key, any other value (an array too) replaces the manifest's, and ``null`` removes the key (withdraws a grant).

Edited with ``airlock channels config set|unset|show NAME`` (a running gateway restarts the channel with them).
A key is ``KEY`` or ``config.KEY`` for the config, ``capabilities.A.B`` for a capabilities patch path. The result
must validate as a capabilities file, or nothing is written.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..manifest import CapabilitiesFile, parse_capabilities
from .layout import ChannelStore, write_json_atomic

__all__ = [
    "MAX_SETTING_BYTES",
    "OperatorSettings",
    "effective_doc",
    "load_settings",
    "merge_patch",
    "save_settings",
    "with_setting",
]

MAX_SETTING_BYTES = 64 * 1024
"""Largest JSON value ``channels config set`` takes for one key (bytes)."""
_KEY_PART_MAX = 64


@dataclass
class OperatorSettings:
    """``config``: keys that replace the manifest's; ``capabilities``: an RFC 7396 merge patch."""

    config: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, Any] = field(default_factory=dict)

    def as_doc(self) -> dict[str, Any]:
        return {"config": self.config, "capabilities": self.capabilities}


def load_settings(path: Path) -> OperatorSettings:
    """The settings in ``path`` (empty when there is no file). ConfigError for a file that is not such an object."""
    if not path.is_file():
        return OperatorSettings()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict) \
            or not isinstance(doc.get("capabilities", {}), dict) or set(doc) - {"config", "capabilities"}:
        raise ConfigError(f"{path}: must be an object with only \"config\" and \"capabilities\" objects")
    return OperatorSettings(config=dict(doc.get("config", {})), capabilities=dict(doc.get("capabilities", {})))


def save_settings(path: Path, settings: OperatorSettings) -> None:
    write_json_atomic(path, settings.as_doc())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 section 2 ``MergePatch(Target, Patch)``; returns a new value, the arguments are not changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def effective_doc(manifest: dict[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """The manifest with the operator's settings applied (module docstring)."""
    doc = copy.deepcopy(manifest)
    config = _object(doc.get("config"))
    doc["config"] = {**config, **copy.deepcopy(settings.config)}
    if settings.capabilities:
        doc["capabilities"] = merge_patch(doc.get("capabilities") or {}, settings.capabilities)
    return doc


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a capabilities file must be a JSON object")
    return doc


def effective_caps(store: ChannelStore, name: str, version: str | None = None,
                   settings: OperatorSettings | None = None, *, lenient: bool = False) -> CapabilitiesFile:
    """The validated capabilities file ``name`` runs with at ``version`` (default: the active one); ``lenient`` as
    ``manifest.parse_capabilities``'s."""
    inst = store.get(name)
    path = store.manifest(name, version or inst.active)
    chosen = settings if settings is not None else load_settings(store.operator_path(name))
    doc = effective_doc(read_manifest(path), chosen)
    return parse_capabilities(json.dumps(doc), f"{name} ({path.parent.name} with {store.operator_path(name).name})",
                              lenient=lenient)


def _parse_key(key: str) -> tuple[str, list[str]]:
    """``("config", [KEY])`` or ``("capabilities", [A, B, ...])``; ConfigError for anything else."""
    parts = key.split(".")
    if parts[0] == "capabilities":
        section, path = "capabilities", parts[1:]
    else:
        section, path = "config", parts[1:] if parts[0] == "config" else parts
        if len(path) != 1:
            raise ConfigError(f"{key[:80]!r}: a config key is one name (config.KEY); capabilities.A.B for grants")
    if not path or any(not p or len(p) > _KEY_PART_MAX or not p.replace("_", "").replace("-", "").isalnum()
                       for p in path):
        raise ConfigError(f"{key[:80]!r} is not a setting key (KEY, config.KEY or capabilities.A.B)")
    return section, path


def parse_value(text: str) -> Any:
    """A setting's value from the command line: JSON when it parses (``123``, ``true``, ``["a"]``, ``null``),
    else the text itself as a string."""
    if len(text.encode()) > MAX_SETTING_BYTES:
        raise ConfigError(f"the value is over {MAX_SETTING_BYTES} bytes")
    try:
        return json.loads(text)
    except ValueError:
        return text


def with_setting(settings: OperatorSettings, key: str, value: Any, *, unset: bool = False) -> OperatorSettings:
    """A copy of ``settings`` with ``key`` set to ``value`` (or removed from the operator's settings with
    ``unset``: the plugin's value applies again). ConfigError for a bad key, or unset of a key not set."""
    section, path = _parse_key(key)
    out = OperatorSettings(config=copy.deepcopy(settings.config), capabilities=copy.deepcopy(settings.capabilities))
    node: dict[str, Any] = out.config if section == "config" else out.capabilities
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if unset:
                raise ConfigError(f"{key} is not among the operator's settings")
            child = node[part] = {}
        node = child
    if unset:
        if path[-1] not in node:
            raise ConfigError(f"{key} is not among the operator's settings")
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def config_sources(manifest: dict[str, Any], settings: OperatorSettings) -> dict[str, dict[str, Any]]:
    """Each effective config key: ``{"value", "source": "operator" | "plugin", "plugin": manifest value}``."""
    plugin = _object(manifest.get("config"))
    keys = sorted(set(plugin) | set(settings.config))
    out = {}
    for k in keys:
        mine = k in settings.config
        out[k] = {"value": settings.config[k] if mine else plugin.get(k),
                  "source": "operator" if mine else "plugin", "plugin": plugin.get(k)}
    return out
