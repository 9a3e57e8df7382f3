"""Pairing: how an unknown direct-message sender becomes an allowed one.

A channel in ``dm_policy: pairing`` mode answers a stranger with a short code
(:meth:`PairingStore.upsert_request`); the operator approves it out of band
(``airlock pairing approve <channel> <code>`` -> :meth:`PairingStore.approve`), after which the sender's
external id is paired (allowed, and bound to an owner id).

Codes are 8 characters from ``ABCDEFGHJKLMNPQRSTUVWXYZ23456789`` (no 0/O, 1/I), drawn with
:func:`secrets.choice`, unique among a channel's pending requests, and live for 15 minutes. Times are
Unix seconds (floats) from an injectable clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.errors import PairingError

from ._sql import PgQmarkDb, SqlConn, SqlDb
from ._sqlite import SqliteDb

__all__ = [
    "MAX_PENDING_PER_CHANNEL",
    "PAIRING_CODE_ALPHABET",
    "PAIRING_CODE_LENGTH",
    "PAIRING_TTL_SECS",
    "PairedSender",
    "PairingRequest",
    "PairingStore",
]

#: Alphabet of pairing codes (32 symbols, no look-alikes).
PAIRING_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#: Length of a pairing code, in characters (40 bits).
PAIRING_CODE_LENGTH = 8
#: How long a pairing request stays valid, in seconds.
PAIRING_TTL_SECS = 15 * 60
#: Default cap on live pending requests per channel; beyond it the oldest are dropped.
MAX_PENDING_PER_CHANNEL = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairing_requests (
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    code        TEXT NOT NULL,
    meta_json   TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (channel, external_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS pairing_requests_code ON pairing_requests (channel, code);
CREATE TABLE IF NOT EXISTS paired (
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    paired_at   REAL NOT NULL,
    PRIMARY KEY (channel, external_id)
);
"""

_COLUMNS = "channel, external_id, code, meta_json, created_at, expires_at"


@dataclass(frozen=True)
class PairingRequest:
    """A pairing request. ``meta_json`` is opaque JSON text from the channel (e.g. the sender's display
    name); ``created_at`` / ``expires_at`` are Unix seconds."""

    channel: str
    external_id: str
    code: str
    meta_json: str
    created_at: float
    expires_at: float

    def is_live(self, now: float) -> bool:
        """True if the request has not expired at ``now`` (Unix seconds)."""
        return now < self.expires_at


@dataclass(frozen=True)
class PairedSender:
    """An approved sender: its ``external_id`` on ``channel``, the ``owner_id`` it is bound to, and when it
    was approved (``paired_at``, Unix seconds)."""

    channel: str
    external_id: str
    owner_id: str
    paired_at: float


def _new_code() -> str:
    return "".join(secrets.choice(PAIRING_CODE_ALPHABET) for _ in range(PAIRING_CODE_LENGTH))


def normalize_code(code: str) -> str:
    """Uppercase and strip a code typed by an operator (``" abcd2345 "`` -> ``"ABCD2345"``)."""
    return code.strip().upper()


class PairingStore:
    """Pending pairing requests and paired identities, per channel, in SQLite or PostgreSQL. Thread-safe.

    Args:
        db_path: SQLite file (created with its directory if missing), or a shared database (``_sql.SqlDb``: the
            PostgreSQL state database, ``state = "postgresql://..."``; schema ``state.pg_schema``).
        clock: returns the current time in Unix seconds (inject a fake in tests).
        max_pending_per_channel: live pending requests kept per channel; when a new one would exceed it,
            the oldest are dropped, so a flood of strangers cannot grow the database without bound.

    Raises (any method):
        sqlite3.Error: the database cannot be opened or written (a host problem); on PostgreSQL
            ``errors.StateUnavailable`` when it cannot be reached.
    """

    def __init__(
        self,
        db_path: Path | SqlDb,
        *,
        clock: Callable[[], float] = time.time,
        max_pending_per_channel: int = MAX_PENDING_PER_CHANNEL,
    ) -> None:
        if max_pending_per_channel < 1:
            raise ValueError("max_pending_per_channel must be >= 1")
        self._db: SqlDb = SqliteDb(db_path, _SCHEMA) if isinstance(db_path, Path) else db_path
        self._clock = clock
        self._max_pending = max_pending_per_channel

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> PairingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upsert_request(self, channel: str, external_id: str, meta_json: str = "{}") -> tuple[str, bool]:
        """Return ``(code, created)`` for a sender asking to pair.

        Idempotent: while a live request exists for ``(channel, external_id)`` its code is returned with
        ``created=False`` (its ``meta_json`` is left as it was). An expired one is replaced by a new
        request with a new code (``created=True``). Does not check whether the sender is already paired.
        """
        now = self._clock()
        with self._db.transaction() as conn:
            self._exclusive(conn, channel)
            conn.execute("DELETE FROM pairing_requests WHERE channel = ? AND expires_at <= ?", (channel, now))
            row = conn.execute(
                "SELECT code FROM pairing_requests WHERE channel = ? AND external_id = ?",
                (channel, external_id),
            ).fetchone()
            if row is not None:
                return str(row[0]), False
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM pairing_requests WHERE channel = ?", (channel,)
            ).fetchone()
            excess = int(count) - self._max_pending + 1
            if excess > 0:
                conn.execute(
                    "DELETE FROM pairing_requests WHERE rowid IN (SELECT rowid FROM pairing_requests "
                    "WHERE channel = ? ORDER BY created_at, rowid LIMIT ?)",
                    (channel, excess),
                )
            while True:
                code = _new_code()
                taken = conn.execute(
                    "SELECT 1 FROM pairing_requests WHERE channel = ? AND code = ?", (channel, code)
                ).fetchone()
                if taken is None:
                    break
            conn.execute(
                f"INSERT INTO pairing_requests ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (channel, external_id, code, meta_json, now, now + PAIRING_TTL_SECS),
            )
            return code, True

    def _exclusive(self, conn: SqlConn, channel: str) -> None:
        """Serialise the writers of one channel's requests (the cap and the unique code are read, then written).
        SQLite's ``BEGIN IMMEDIATE`` does it already; PostgreSQL's READ COMMITTED needs a lock: a transaction-scoped
        advisory lock on the channel's name, released at commit."""
        if isinstance(self._db, PgQmarkDb):
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"airlock:pairing:{channel}",))

    def approve(self, channel: str, code: str, owner_id: str | None = None) -> PairingRequest:
        """Approve the live request with ``code`` (case-insensitive, surrounding spaces ignored).

        The request is consumed and its external id becomes paired, bound to ``owner_id`` (default: the
        external id itself). Returns the approved request.

        Raises:
            PairingError: no live request with this code on this channel (unknown or expired).
        """
        now = self._clock()
        with self._db.transaction() as conn:
            req = _take_by_code(conn, channel, code, now)
            conn.execute(
                "DELETE FROM pairing_requests WHERE channel = ? AND external_id = ?",
                (channel, req.external_id),
            )
            conn.execute(
                "INSERT INTO paired (channel, external_id, owner_id, paired_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (channel, external_id) DO UPDATE SET "
                "owner_id = excluded.owner_id, paired_at = excluded.paired_at",
                (channel, req.external_id, owner_id if owner_id is not None else req.external_id, now),
            )
        return req

    def resolve_identity(self, channel: str, external_id: str) -> str | None:
        """The owner id a paired sender is bound to, or ``None`` if the sender is not paired."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT owner_id FROM paired WHERE channel = ? AND external_id = ?", (channel, external_id)
            ).fetchone()
        return None if row is None else str(row[0])

    def allow_from(self, channel: str) -> list[str]:
        """External ids paired on ``channel``, sorted."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT external_id FROM paired WHERE channel = ? ORDER BY external_id", (channel,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def pending(self, channel: str) -> list[PairingRequest]:
        """Live (unexpired) pending requests on ``channel``, oldest first."""
        now = self._clock()
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM pairing_requests WHERE channel = ? AND expires_at > ? "
                "ORDER BY created_at, rowid",
                (channel, now),
            ).fetchall()
        return [_request(r) for r in rows]

    def revoke(self, channel: str, external_id: str) -> bool:
        """Unpair ``external_id`` and drop any pending request of it; True if anything was removed."""
        with self._db.transaction() as conn:
            a = conn.execute(
                "DELETE FROM paired WHERE channel = ? AND external_id = ?", (channel, external_id)
            ).rowcount
            b = conn.execute(
                "DELETE FROM pairing_requests WHERE channel = ? AND external_id = ?", (channel, external_id)
            ).rowcount
        return (a + b) > 0

    def deny(self, channel: str, code: str) -> PairingRequest:
        """Refuse the pending request with ``code`` (case-insensitive): it is deleted, its sender stays
        unpaired and gets a new code if it writes again. Returns the refused request.

        Raises:
            PairingError: no live request with this code on this channel (unknown or expired).
        """
        now = self._clock()
        with self._db.transaction() as conn:
            return _take_by_code(conn, channel, code, now)

    def paired(self, channel: str) -> list[PairedSender]:
        """Approved senders on ``channel``, by external id."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT channel, external_id, owner_id, paired_at FROM paired WHERE channel = ? "
                "ORDER BY external_id", (channel,)
            ).fetchall()
        return [PairedSender(str(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in rows]


def _request(row: Sequence[Any]) -> PairingRequest:
    """A ``pairing_requests`` row, selected as ``_COLUMNS``."""
    return PairingRequest(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]), float(row[5]))


def _take_by_code(conn: SqlConn, channel: str, code: str, now: float) -> PairingRequest:
    """Delete the request with ``code`` (case-insensitive) on ``channel`` and return it (``approve`` and ``deny``).

    Raises:
        PairingError: no request with this code, or only an expired one.
    """
    norm = normalize_code(code)
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM pairing_requests WHERE channel = ? AND code = ?", (channel, norm)
    ).fetchone()
    if row is not None:
        conn.execute("DELETE FROM pairing_requests WHERE channel = ? AND code = ?", (channel, norm))
    if row is None or now >= float(row[5]):
        raise PairingError(f"unknown or expired pairing code for channel {channel!r}")
    return _request(row)
