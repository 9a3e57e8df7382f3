"""The agents registry: who may use the agent API, and how. On SQLite state ``<home>/agents.db`` (0600); on
PostgreSQL state the state database (``state.pg_schema``, migration 11), so that every node of a cluster knows every
agent: a token made on one node authenticates on all, an Idempotency-Key answered on one is honoured on all. The same
SQL runs on both engines (``stores._sql``); ``state.backends.open_agents`` picks the engine from the state URL.

Tables::

    agents       (name PK, token_hash UNIQUE, push_url, push_secret_name, created_at)
    idempotency  (agent, key, fingerprint, status, body, created_at)   -- Idempotency-Key answers
    grants       (agent, sha256, granted_at)                          -- attachment blobs handed to an agent

Tokens are 32 random bytes (``secrets.token_urlsafe``); only their SHA-256 is stored. A salted slow hash is not
needed: a token has 256 bits of entropy, so its hash cannot be brute-forced, and a fast hash keeps every API
request cheap. The comparison after the indexed lookup is constant-time (``hmac.compare_digest``).

The push signing secret of a push agent lives in the encrypted :class:`~airlock.stores.SecretStore` under
``agent_push_<first 32 hex of sha256(name)>``: secret names are ``^[a-z0-9_]{1,64}$`` (``stores.secrets``), which an
agent name (``-``, up to 64 characters) does not always fit; the name used is kept in the row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from ._sql import SqlDb
from ._sqlite import SqliteDb
from .secrets import SecretStore

__all__ = ["AGENT_NAME_RE", "IDEMPOTENCY_TTL_S", "AgentRecord", "AgentRegistry", "StoredAnswer"]

#: Agent names: the rule of ``HostConfig.default_agent``.
AGENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Seconds an Idempotency-Key answer is remembered (24 h, as the usual HTTP APIs do).
IDEMPOTENCY_TTL_S = 24 * 3600.0
#: Longest push URL accepted (characters).
MAX_PUSH_URL_CHARS = 2048
TOKEN_BYTES = 32
PUSH_SECRET_BYTES = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, push_url TEXT, push_secret_name TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    agent TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (agent, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_at);
CREATE TABLE IF NOT EXISTS grants (
    agent TEXT NOT NULL, sha256 TEXT NOT NULL, granted_at REAL NOT NULL, PRIMARY KEY (agent, sha256)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class AgentRecord:
    """A registered agent (no secret in it). ``created_at`` is Unix seconds."""

    name: str
    push_url: str | None
    push_secret_name: str | None
    created_at: float

    @property
    def mode(self) -> str:
        return "push" if self.push_url else "pull"


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer given to an Idempotency-Key: ``fingerprint`` (method, path and body hash), HTTP status,
    JSON body text."""

    fingerprint: str
    status: int
    body: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def push_secret_name(agent: str) -> str:
    """The secret store name of ``agent``'s push signing secret (module docstring)."""
    return "agent_push_" + hashlib.sha256(agent.encode()).hexdigest()[:32]


def check_name(name: str) -> str:
    """Raises ConfigError unless ``name`` matches :data:`AGENT_NAME_RE` in full."""
    if not isinstance(name, str) or AGENT_NAME_RE.fullmatch(name) is None:
        shown = repr(name)[:80]
        raise ConfigError(f"invalid agent name {shown}: names must match ^[a-z0-9][a-z0-9_-]{{0,63}}$")
    return name


def check_push_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials, at most :data:`MAX_PUSH_URL_CHARS`.

    Raises ConfigError otherwise."""
    if len(url) > MAX_PUSH_URL_CHARS:
        raise ConfigError(f"push URL longer than {MAX_PUSH_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError for a port out of range
    except ValueError as exc:
        raise ConfigError(f"invalid push URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the push URL must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ConfigError("the push URL must not carry credentials (requests are signed instead)")
    return url


class AgentRegistry:
    """The agents registry (module docstring). Thread-safe; blocking (call from a worker thread on a loop).

    Args:
        db: the SQLite file (created 0600 with its directory if missing), or a shared database (``_sql.SqlDb``:
            the PostgreSQL state database, whose schema has the tables already).

    Raises (any method): sqlite3.Error for a SQLite file that cannot be used; on PostgreSQL
    ``errors.StateUnavailable`` when the database cannot be reached.
    """

    def __init__(self, db: Path | SqlDb) -> None:
        self._db: SqlDb = SqliteDb(db, _SCHEMA) if isinstance(db, Path) else db
        self.path = db if isinstance(db, Path) else None
        """The SQLite file, or None on PostgreSQL."""

    def close(self) -> None:
        self._db.close()

    # ---- agents ---------------------------------------------------------------------------------------------------
    def add(self, name: str, secrets_store: SecretStore | None, push_url: str | None = None,
            now: float | None = None) -> tuple[str, str | None]:
        """Register ``name``; return ``(token, push_secret)`` (shown once: only the token's hash is kept; the push
        secret, for a push agent, is kept encrypted in ``secrets_store``).

        Raises ConfigError for an invalid name or URL, a name already registered, or a push URL without a store."""
        check_name(name)
        if push_url is not None:
            check_push_url(push_url)
            if secrets_store is None:
                raise ConfigError("a push agent needs the secret store (for its signing secret)")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        secret = secrets.token_urlsafe(PUSH_SECRET_BYTES) if push_url else None
        secret_name = push_secret_name(name) if secret else None
        with self._db.transaction() as conn:
            # ON CONFLICT DO NOTHING, not an IntegrityError: one test of the outcome on both engines (on PostgreSQL
            # a second node adding the same name at once waits for the first to commit, then inserts nothing)
            added = conn.execute("INSERT INTO agents (name, token_hash, push_url, push_secret_name, created_at) "
                                 "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                 (name, hash_token(token), push_url, secret_name,
                                  time.time() if now is None else now)).rowcount
            if added != 1:
                raise ConfigError(f"agent {name!r} exists already (remove it first: airlock agents rm {name})")
            if secret_name is not None and secret is not None and secrets_store is not None:
                # inside the transaction: a failing secret store leaves no half-registered agent
                secrets_store.set(secret_name, secret)
        return token, secret

    def remove(self, name: str, secrets_store: SecretStore | None) -> bool:
        """Forget ``name`` (its token stops working at once), its push secret, answers and grants."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT push_secret_name FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM agents WHERE name = ?", (name,))
            conn.execute("DELETE FROM idempotency WHERE agent = ?", (name,))
            conn.execute("DELETE FROM grants WHERE agent = ?", (name,))
        if row[0] and secrets_store is not None:
            secrets_store.remove(str(row[0]))
        return True

    def get(self, name: str) -> AgentRecord | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT name, push_url, push_secret_name, created_at FROM agents WHERE name = ?",
                               (name,)).fetchone()
        return AgentRecord(*row) if row is not None else None

    def all(self) -> list[AgentRecord]:
        """Every agent, by name."""
        with self._db.reading() as conn:
            rows = conn.execute("SELECT name, push_url, push_secret_name, created_at FROM agents "
                                "ORDER BY name").fetchall()
        return [AgentRecord(*r) for r in rows]

    def authenticate(self, token: str) -> str | None:
        """The agent a bearer token belongs to, or None."""
        digest = hash_token(token)
        with self._db.reading() as conn:
            row = conn.execute("SELECT name, token_hash FROM agents WHERE token_hash = ?", (digest,)).fetchone()
        if row is None or not hmac.compare_digest(str(row[1]), digest):
            return None
        return str(row[0])

    # ---- idempotency ----------------------------------------------------------------------------------------------
    def answer(self, agent: str, key: str, now: float | None = None) -> StoredAnswer | None:
        """The stored answer of ``(agent, key)`` if younger than :data:`IDEMPOTENCY_TTL_S`."""
        cutoff = (time.time() if now is None else now) - IDEMPOTENCY_TTL_S
        with self._db.reading() as conn:
            row = conn.execute("SELECT fingerprint, status, body FROM idempotency WHERE agent = ? AND key = ? "
                               "AND created_at >= ?", (agent, key, cutoff)).fetchone()
        return StoredAnswer(str(row[0]), int(row[1]), str(row[2])) if row is not None else None

    def remember(self, agent: str, key: str, answer: StoredAnswer, now: float | None = None) -> StoredAnswer:
        """Store the first answer of ``(agent, key)``; return the one stored (an earlier one wins a race).
        Answers older than the TTL are dropped on the way."""
        when = time.time() if now is None else now
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM idempotency WHERE created_at < ?", (when - IDEMPOTENCY_TTL_S,))
            conn.execute("INSERT INTO idempotency (agent, key, fingerprint, status, body, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         (agent, key, answer.fingerprint, answer.status, answer.body, when))
            row = conn.execute("SELECT fingerprint, status, body FROM idempotency WHERE agent = ? AND key = ?",
                               (agent, key)).fetchone()
        return StoredAnswer(str(row[0]), int(row[1]), str(row[2]))

    # ---- attachment grants ----------------------------------------------------------------------------------------
    def grant(self, agent: str, digests: list[str], now: float | None = None) -> None:
        """``agent`` was handed messages with these attachment blobs: it may download them."""
        if digests:
            when = time.time() if now is None else now
            with self._db.transaction() as conn:
                for digest in digests:
                    conn.execute("INSERT INTO grants (agent, sha256, granted_at) VALUES (?, ?, ?) "
                                 "ON CONFLICT DO NOTHING", (agent, digest, when))

    def granted(self, agent: str, digest: str) -> bool:
        with self._db.reading() as conn:
            return conn.execute("SELECT 1 FROM grants WHERE agent = ? AND sha256 = ?",
                                (agent, digest)).fetchone() is not None

    def compact(self, now: float, retention_s: float) -> int:
        """Drop grants older than the log's retention and expired answers; return rows removed."""
        with self._db.transaction() as conn:
            removed = conn.execute("DELETE FROM grants WHERE granted_at < ?", (now - retention_s,)).rowcount
            removed += conn.execute("DELETE FROM idempotency WHERE created_at < ?",
                                    (now - IDEMPOTENCY_TTL_S,)).rowcount
        return removed
