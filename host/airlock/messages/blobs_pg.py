"""``PostgresBlobStore``: attachment blobs in the PostgreSQL state database, so that every node of a cluster reads
what any node stored: an attachment received by one node's webhook is downloaded through another node's agent API,
and a reply file uploaded to one node is sent by whichever node's outbox sender claims the reply.

One row per blob (``state.pg_schema``, table ``blobs``): the bytes as ``bytea``, their size, and ``touched_at``, the
last time a ``put`` stored or referenced it (Unix seconds): the same rule as the file store's modification time, so
that ``gc`` spares a blob whose reference is being committed. The callers' limits bound every blob
(``capabilities.attachments.MAX_ATTACHMENT_BYTES`` per inbound attachment, ``reply_files.MAX_REPLY_ATTACHMENT_BYTES``
per upload); :data:`MAX_BLOB_BYTES` refuses anything larger here too, so a caller that forgot its limit cannot fill
the database (PostgreSQL itself takes up to 1 GB in one ``bytea``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

from ..capabilities.attachments import MAX_ATTACHMENT_BYTES
from ..state.postgres import PgDb
from .blobs import is_blob_name

__all__ = ["MAX_BLOB_BYTES", "PostgresBlobStore"]

MAX_BLOB_BYTES = MAX_ATTACHMENT_BYTES
"""The largest blob stored, bytes: the largest any caller may write (an inbound attachment, 20 MiB)."""


class PostgresBlobStore:
    """:class:`~airlock.messages.blobs.Blobs` on a PostgreSQL state database (module docstring). Thread-safe.

    Raises (any method): ``errors.StateUnavailable`` when the database cannot be reached; ``put`` raises ValueError
    for more than :data:`MAX_BLOB_BYTES` bytes."""

    def __init__(self, db: PgDb) -> None:
        self._db = db

    def put(self, data: bytes) -> str:
        if len(data) > MAX_BLOB_BYTES:
            raise ValueError(f"a blob is at most {MAX_BLOB_BYTES} bytes")
        digest = hashlib.sha256(data).hexdigest()
        now = time.time()
        with self._db.connection() as conn:
            # touch first: an old blob's bytes are not sent again (one short statement for a repeated upload)
            touched = conn.execute("UPDATE blobs SET touched_at = %s WHERE sha256 = %s", (now, digest)).rowcount
            if not touched:
                conn.execute("INSERT INTO blobs (sha256, data, size, touched_at) VALUES (%s, %s, %s, %s) "
                             "ON CONFLICT (sha256) DO UPDATE SET touched_at = excluded.touched_at",
                             (digest, data, len(data), now))
        return digest

    def get(self, sha256: str) -> bytes | None:
        if not is_blob_name(sha256):
            return None
        with self._db.connection() as conn:
            row = conn.execute("SELECT data FROM blobs WHERE sha256 = %s", (sha256,)).fetchone()
        return bytes(row[0]) if row is not None else None

    def size(self, sha256: str) -> int | None:
        if not is_blob_name(sha256):
            return None
        with self._db.connection() as conn:
            row = conn.execute("SELECT size FROM blobs WHERE sha256 = %s", (sha256,)).fetchone()
        return int(row[0]) if row is not None else None

    def gc(self, referenced: Iterable[str], older_than_s: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._db.connection() as conn:
            return conn.execute("DELETE FROM blobs WHERE touched_at < %s AND NOT (sha256 = ANY(%s))",
                                (cutoff, sorted(set(referenced)))).rowcount
