"""Content-addressed blob stores for attachments (inbound ones, and reply files uploaded by agents): the
:class:`Blobs` interface; :class:`BlobStore`, files ``<home>/blobs/<ab>/<sha256>`` (0600, dirs 0700), the embedded
default; ``messages.blobs_pg.PostgresBlobStore``, rows of the PostgreSQL state database, for a cluster of nodes
(``state.backends.open_blobs`` picks one from the state URL).

A blob is written (temp file, fsync, rename) *before* the log transaction that references it, so a committed
entry never points at a missing blob; a crash in between leaves an unreferenced blob, removed by ``gc``. Sizes
are bounded upstream (the attachments capability's per-callback limits).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..stores.files import private_dir

__all__ = ["BlobStore", "Blobs", "is_blob_name"]


def is_blob_name(name: str) -> bool:
    """Whether ``name`` is a blob's name: 64 lowercase hex characters (a SHA-256)."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


class Blobs(Protocol):
    """A blob store (blocking, thread-safe). Names are SHA-256 hex digests of the bytes.

    ``put``: store bytes (idempotent; a new reference makes an old blob young again, so ``gc`` spares it while its
    reference is being committed) and return the name. ``get`` / ``size``: the bytes / their length, None when not
    stored or not a blob name. ``gc``: delete the blobs not in ``referenced`` last put more than ``older_than_s``
    seconds before ``now`` (default: the clock); return how many."""

    def put(self, data: bytes) -> str: ...
    def get(self, sha256: str) -> bytes | None: ...
    def size(self, sha256: str) -> int | None: ...
    def gc(self, referenced: Iterable[str], older_than_s: float, now: float | None = None) -> int: ...


class BlobStore:
    """Blobs as files named by their SHA-256 (64 lowercase hex characters): :class:`Blobs` on the home's disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """The file of a blob. Raises ValueError for a name that is not 64 hex characters."""
        if not is_blob_name(sha256):
            raise ValueError("not a sha256 blob name")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.exists():
            # a new reference to an old blob: make it young again, so gc (which spares young files while their
            # reference is being committed) cannot remove it between this put and that commit
            os.utime(final)
            return digest
        private_dir(final.parent)
        tmp = final.with_name(f".{digest}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        return digest

    def get(self, sha256: str) -> bytes | None:
        """The blob's bytes, or None when it is not stored."""
        try:
            return self.path(sha256).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def size(self, sha256: str) -> int | None:
        """The blob's size in bytes, or None when it is not stored (or the name is not a SHA-256)."""
        try:
            return self.path(sha256).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    def gc(self, referenced: Iterable[str], older_than_s: float, now: float | None = None) -> int:
        """Delete blobs not in ``referenced`` whose file is older than ``older_than_s``; return how many."""
        keep = set(referenced)
        cutoff = (now if now is not None else time.time()) - older_than_s
        removed = 0
        for file in self.root.glob("*/*") if self.root.is_dir() else []:
            if file.name not in keep and file.stat().st_mtime < cutoff:
                file.unlink(missing_ok=True)
                removed += 1
        return removed
