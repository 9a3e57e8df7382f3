"""The provenance record an install writes with the channel (``verify.Provenance.as_dict``, mode 0600, written
atomically): ``<name>.provenance.json`` beside the installed ``<name>.wasm`` (:func:`provenance_path`). The
functions take the record's path, so a layout that keeps versions elsewhere passes its own.

Read by ``channels list``, ``status`` and the admin API. A channel installed before records existed (or
copied in by hand) has none: it is shown as unsigned, with ``recorded: false``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ..stores.files import PRIVATE_FILE_MODE
from .verify import UNSIGNED, Provenance

__all__ = ["PROVENANCE_SUFFIX", "provenance_doc", "provenance_path", "read_provenance", "write_provenance"]

log = logging.getLogger("airlock.packages")

PROVENANCE_SUFFIX = ".provenance.json"
_MAX_RECORD_BYTES = 64 * 1024


def provenance_path(directory: Path, name: str) -> Path:
    """Where channel ``name``'s record lives, ``directory`` being the one holding ``<name>.wasm``."""
    return directory / f"{name}{PROVENANCE_SUFFIX}"


def write_provenance(dest: Path, provenance: Provenance) -> Path:
    """Write (or replace) the record at ``dest``; returns ``dest``. Raises OSError."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), PRIVATE_FILE_MODE)
            json.dump(provenance.as_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def read_provenance(path: Path) -> Provenance | None:
    """The record at ``path``, or None when there is none or it cannot be read (logged)."""
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s: cannot read: %s", path, exc.strerror)
        return None
    try:
        if len(raw) > _MAX_RECORD_BYTES:
            raise ValueError("too large")
        return Provenance.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        log.warning("%s: not a provenance record; the channel is shown as unsigned", path)
        return None


def provenance_doc(path: Path) -> dict[str, Any]:
    """The JSON shown for a channel whose record is at ``path``: the record plus ``recorded: true``, or an
    unsigned stand-in with ``recorded: false``."""
    found = read_provenance(path)
    if found is None:
        return {"signed": False, "publisher": UNSIGNED, "key_id": None, "recorded": False}
    return {**found.as_dict(), "recorded": True}
