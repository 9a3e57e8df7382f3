"""Installed channels on disk: one directory per channel instance, one sub-directory per kept version.

    HOME/channels/
        telegram/                    an instance; its directory name is the channel's name in the gateway
            instance.json            {"platform", "active", "history", "disabled"} (written atomically)
            operator.json            the operator's settings (``channels.settings``): survive every upgrade
            0.2.2+1a2b3c4d/          a kept version
                component.wasm
                capabilities.json    the plugin's manifest, byte for byte as installed
                provenance.json      {"source": "bare" | "package", "sha256": {...}, "installed_at", ...}
        support-bot/                 a second instance of the same component (``install --as support-bot``)

Version names: a package's own version (its manifest's, checked by ``packages``); a bare ``.wasm`` + ``.json``
install is ``<capabilities file version>+<first 8 hex digits of sha256(sha256(component) + sha256(file))>`` (SemVer
build metadata), so two different builds that both say ``0.2.2`` are two versions, and installing the same bytes
again is the same version. A version name is one path component: ``^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$``.

``history`` lists the versions activated, oldest first (the active one last); rollback goes to the one before.
At most :data:`KEEP_VERSIONS` versions are kept on disk: :meth:`ChannelStore.prune` drops the oldest others.

The layout before versions (``channels/<name>.wasm`` + ``channels/<name>.capabilities.json``) is migrated by
:meth:`ChannelStore.migrate` (``AirlockHost.start`` and every ``airlock channels`` command call it): each pair
becomes version ``<version>+<hash>`` of instance ``<name>``, the file kept byte for byte as that version's manifest,
and its whole ``config`` and ``capabilities`` recorded as the operator's settings (nothing tells the operator's
edits from the plugin's defaults, so all of it is kept; ``airlock channels config unset`` hands a key back to the
plugin). The flat files are removed only after the new directory is complete; a crash in between leaves both, and
the next start finishes the job. A component or capabilities file without its partner is left where it is. A
``<name>.provenance.json`` beside the pair (a package's record) becomes that version's ``provenance.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..stores.files import private_dir

__all__ = [
    "CAPS_FILE",
    "COMPONENT_FILE",
    "INSTANCE_FILE",
    "KEEP_VERSIONS",
    "OPERATOR_FILE",
    "PROVENANCE_FILE",
    "ChannelStore",
    "Installed",
    "bare_version",
    "check_instance_name",
    "check_version",
]

log = logging.getLogger("airlock.channels")

KEEP_VERSIONS = 5
"""Versions of one instance kept on disk (the active one and the one rollback would pick are never dropped)."""
COMPONENT_FILE = "component.wasm"
CAPS_FILE = "capabilities.json"
PROVENANCE_FILE = "provenance.json"
INSTANCE_FILE = "instance.json"
OPERATOR_FILE = "operator.json"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
_LEGACY_SUFFIX = ".capabilities.json"
LEGACY_PROVENANCE_SUFFIX = ".provenance.json"
"""``<name>.provenance.json`` beside a flat pair: kept as that version's provenance when it is migrated."""


def check_instance_name(name: str) -> str:
    """``name`` if it is a valid channel (instance) name, else ConfigError (one line)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{str(name)[:80]!r} is not a channel name (must match ^[a-z0-9][a-z0-9_-]{{0,62}}$)")
    return name


def check_version(version: str) -> str:
    """``version`` if it is a valid version name (one path component), else ConfigError."""
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version) or ".." in version:
        raise ConfigError(f"{str(version)[:80]!r} is not a version name (^[0-9A-Za-z][0-9A-Za-z.+_-]{{0,63}}$)")
    return version


def bare_version(declared: str, wasm: bytes, caps: bytes) -> str:
    """The version name of a bare install (module docstring)."""
    digest = hashlib.sha256(hashlib.sha256(wasm).digest() + hashlib.sha256(caps).digest()).hexdigest()[:8]
    base = re.sub(r"[^0-9A-Za-z._-]", "-", declared.split("+", 1)[0])[:54] or "0"
    if not base[0].isalnum():
        base = "v" + base
    return check_version(f"{base}+{digest}")


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write ``doc`` as JSON to ``path`` through a temporary file, fsynced, then renamed (mode 0600)."""
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    write_bytes_atomic(path, data)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{"source": "migrated"}`` when there is none (or it is not one)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"source": "migrated"}
    return doc if isinstance(doc, dict) else {"source": "migrated"}


@dataclass
class Installed:
    """One installed instance: ``name``, the component's ``platform`` (its capabilities file's name), the
    ``active`` version, ``history`` (activated versions, oldest first), ``versions`` on disk (sorted by install
    time), and whether the operator ``disabled`` it."""

    name: str
    platform: str
    active: str
    history: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    disabled: bool = False

    @property
    def previous(self) -> str | None:
        """The version rollback goes to: the last one activated before ``active`` that is still on disk."""
        for version in reversed(self.history[:-1]):
            if version != self.active and version in self.versions:
                return version
        return None


class ChannelStore:
    """The installed channels under ``root`` (``HostConfig.channels_dir``). Every change is atomic per file and
    leaves a consistent tree after a crash (module docstring). Not safe for two writers at once: a running gateway
    makes the changes itself, and the CLI edits the home directly only when no gateway serves it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- reading --------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Installed instance names, sorted (directories holding an ``instance.json``)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _NAME_RE.fullmatch(p.name) and (p / INSTANCE_FILE).is_file())

    def exists(self, name: str) -> bool:
        return _NAME_RE.fullmatch(name) is not None and (self.root / name / INSTANCE_FILE).is_file()

    def get(self, name: str) -> Installed:
        """The instance ``name``. Raises ConfigError when it is not installed or its ``instance.json`` is broken."""
        check_instance_name(name)
        path = self.root / name / INSTANCE_FILE
        if not path.is_file():
            raise ConfigError(f"no channel named {name!r} is installed in {self.root}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            inst = Installed(name=name, platform=str(doc["platform"]), active=check_version(str(doc["active"])),
                             history=[str(v) for v in doc.get("history", [])], disabled=bool(doc.get("disabled")))
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise ConfigError(f"{path}: unreadable ({type(exc).__name__}); fix or remove the file") from None
        inst.versions = self._versions(name)
        return inst

    def _versions(self, name: str) -> list[str]:
        base = self.root / name
        found = [p for p in base.iterdir() if p.is_dir() and _VERSION_RE.fullmatch(p.name)
                 and (p / COMPONENT_FILE).is_file() and (p / CAPS_FILE).is_file()]
        return [p.name for p in sorted(found, key=lambda p: ((p / CAPS_FILE).stat().st_mtime_ns, p.name))]

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / check_instance_name(name) / check_version(version)

    def component(self, name: str, version: str) -> Path:
        return self.version_dir(name, version) / COMPONENT_FILE

    def manifest(self, name: str, version: str) -> Path:
        return self.version_dir(name, version) / CAPS_FILE

    def provenance(self, name: str, version: str) -> dict[str, Any]:
        path = self.version_dir(name, version) / PROVENANCE_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"source": "unknown"}
        return doc if isinstance(doc, dict) else {"source": "unknown"}

    def operator_path(self, name: str) -> Path:
        return self.root / check_instance_name(name) / OPERATOR_FILE

    # ---- writing --------------------------------------------------------------------------------------------

    def stage(self, name: str, version: str, wasm: bytes, caps: bytes, provenance: dict[str, Any]) -> bool:
        """Write version ``version`` of ``name`` (not activated). False when that version is already there with
        the same bytes; ConfigError when it is there with other bytes (a package must not reuse a version)."""
        dest = self.version_dir(name, version)
        if dest.is_dir():
            same = (dest / COMPONENT_FILE).read_bytes() == wasm and (dest / CAPS_FILE).read_bytes() == caps
            if same:
                return False
            raise ConfigError(f"version {version} of {name} is installed with other contents; a new build needs a "
                              f"new version")
        private_dir(dest.parent)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{version}."))
        try:
            (tmp / COMPONENT_FILE).write_bytes(wasm)
            (tmp / CAPS_FILE).write_bytes(caps)
            doc = {**provenance, "installed_at": time.time(),
                   "sha256": {COMPONENT_FILE: hashlib.sha256(wasm).hexdigest(),
                              CAPS_FILE: hashlib.sha256(caps).hexdigest()}}
            (tmp / PROVENANCE_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            for f in tmp.iterdir():
                os.chmod(f, 0o600)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True

    def create(self, name: str, platform: str, version: str) -> Installed:
        """Record a new instance whose first version ``version`` is staged; it becomes the active one."""
        doc = {"platform": platform, "active": version, "history": [version], "disabled": False}
        write_json_atomic(self.root / name / INSTANCE_FILE, doc)
        return self.get(name)

    def _save(self, inst: Installed) -> None:
        doc = {"platform": inst.platform, "active": inst.active, "history": inst.history[-4 * KEEP_VERSIONS:],
               "disabled": inst.disabled}
        write_json_atomic(self.root / inst.name / INSTANCE_FILE, doc)

    def activate(self, name: str, version: str) -> Installed:
        """Make ``version`` (already on disk) the active one of ``name``."""
        inst = self.get(name)
        if version not in inst.versions:
            raise ConfigError(f"{name} has no version {version!r} (kept: {', '.join(inst.versions)})")
        if inst.active != version:
            inst.active = version
            inst.history = [v for v in inst.history if v != version] + [version]
            self._save(inst)
        return inst

    def set_disabled(self, name: str, disabled: bool) -> Installed:
        inst = self.get(name)
        if inst.disabled != disabled:
            inst.disabled = disabled
            self._save(inst)
        return inst

    def remove(self, name: str) -> None:
        """Delete the instance's directory (every version and its operator settings). Its secrets, workspace and
        pairings are kept (they are in the secret store and ``state.db`` / ``pairing.db``)."""
        self.get(name)
        base = self.root / name
        trash = self.root / f".removed-{name}-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(base, trash)  # one rename: the instance is gone at once, even if the delete below is cut short
        shutil.rmtree(trash, ignore_errors=True)

    def prune(self, name: str) -> list[str]:
        """Drop the oldest versions past :data:`KEEP_VERSIONS`, never the active one or the rollback target."""
        inst = self.get(name)
        keep = {inst.active, inst.previous}
        extra = [v for v in inst.versions if v not in keep]
        dropped = extra[:max(0, len(inst.versions) - KEEP_VERSIONS)]
        for version in dropped:
            shutil.rmtree(self.version_dir(name, version), ignore_errors=True)
        return dropped

    # ---- the layout before versions -------------------------------------------------------------------------

    def legacy_pairs(self) -> list[tuple[str, Path, Path]]:
        """``(name, <name>.wasm, <name>.capabilities.json)`` of the flat layout, sorted by name."""
        if not self.root.is_dir():
            return []
        out = []
        for caps in sorted(self.root.glob(f"*{_LEGACY_SUFFIX}")):
            name = caps.name.removesuffix(_LEGACY_SUFFIX)
            wasm = self.root / f"{name}.wasm"
            if _NAME_RE.fullmatch(name) and wasm.is_file() and caps.is_file():
                out.append((name, wasm, caps))
        return out

    def migrate(self) -> list[str]:
        """Move every flat ``<name>.wasm`` + ``<name>.capabilities.json`` into the versioned layout (module
        docstring); returns the names migrated. A pair that cannot be read is left as it is, with a warning."""
        from .settings import OperatorSettings, save_settings

        done = []
        for name, wasm_path, caps_path in self.legacy_pairs():
            try:
                wasm, caps = wasm_path.read_bytes(), caps_path.read_bytes()
                doc = json.loads(caps)
                declared = str(doc.get("version", "0")) if isinstance(doc, dict) else "0"
                platform = str(doc.get("name", name)) if isinstance(doc, dict) else name
            except (OSError, ValueError) as exc:
                log.warning("channel %s not migrated to the versioned layout: %s", name, exc)
                continue
            version = bare_version(declared, wasm, caps)
            with contextlib.suppress(ConfigError):  # an instance of that name with other contents: keep both
                if self.exists(name) and version not in self.get(name).versions:
                    log.warning("channel %s: %s and %s left in place: an installed %s/ already exists", name,
                                wasm_path.name, caps_path.name, name)
                    continue
                record = self.root / f"{name}{LEGACY_PROVENANCE_SUFFIX}"  # a package's, written before versions
                self.stage(name, version, wasm, caps, {**_read_object(record), "migrated_from": caps_path.name})
                if not self.exists(name):
                    settings = OperatorSettings(
                        config=dict(doc.get("config") or {}) if isinstance(doc, dict) else {},
                        capabilities=dict(doc.get("capabilities") or {}) if isinstance(doc, dict) else {})
                    save_settings(self.operator_path(name), settings)
                    self.create(name, platform, version)
                wasm_path.unlink()
                caps_path.unlink()
                record.unlink(missing_ok=True)
                done.append(name)
                log.info("channel %s moved to %s/%s (its config and capabilities kept as the operator's settings)",
                         name, name, version)
        return done
