"""``PostgresSecretStore``: the encrypted secret store in the PostgreSQL state database, for a cluster of nodes.

The same encryption as ``stores.secrets`` (AES-256-GCM, a fresh 12-byte nonce per value, the secret's name as
associated data, a key check), the same API (it *is* a :class:`~airlock.stores.secrets.SecretStore`: only the
storage layer, ``_load`` and ``_save``, is replaced), rows instead of a file (``state.pg_schema``, tables
``secrets`` and ``secret_key_check``). Values never leave a node unencrypted: PostgreSQL holds ciphertexts only.

The master key: ``AIRLOCK_MASTER_KEY`` (every node of a cluster sets the same one), else ``HOME/master.key`` as on
one machine. A node whose key does not decrypt the database's key check refuses to start (``SecretStoreError``).

Reads are served from memory, refreshed from the database in the background at most every :data:`REFRESH_S`
seconds (``_load``): another node's ``airlock secrets set`` is seen within about that time, and a read never waits
on the database (webhook verifiers look secrets up on the event loop). Writes go to the database at once and write
only what this call changed (a concurrent change of another name by another node is kept).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

from ..errors import SecretStoreError, StateUnavailable
from ..state.postgres import CLUSTER_CHANNEL, PgDb
from .files import private_dir
from .masterkey import create_key_file, read_key_file
from .secrets import KEY_ENV_VAR, KEY_FILENAME, SecretStore, parse_master_key

__all__ = ["REFRESH_S", "PostgresSecretStore"]

log = logging.getLogger("airlock.secrets")

REFRESH_S = 1.0
"""Seconds a read may be served from memory before the rows are read again."""
_WHERE = Path("postgresql:secrets")
"""What error messages name instead of a file (no server address: messages may reach a log)."""


class PostgresSecretStore(SecretStore):
    """The secret store on PostgreSQL (module docstring). Thread-safe.

    Raises (constructor): ``SecretStoreError`` when ``key`` does not decrypt the database's key check;
    ``StateUnavailable`` when the database cannot be reached.
    """

    def __init__(self, db: PgDb, key: bytes) -> None:
        self._db = db
        self._loaded_at: float | None = None  # None: never loaded (the first load waits for the database)
        self._refreshing = False
        self._saves = 0  # writes of this process: a background fetch begun before one is stale
        self._rows: dict[str, str] = {}  # what the database held at the last load or save
        self._generation = 0
        super().__init__(_WHERE, key)

    @classmethod
    def open_on(cls, db: PgDb, home: Path) -> PostgresSecretStore:
        """The store with the master key from ``AIRLOCK_MASTER_KEY``, else ``home/master.key`` (created only while
        the database holds no secrets: a new key could not decrypt them)."""
        env = os.environ.get(KEY_ENV_VAR)
        if env:
            return cls(db, parse_master_key(env))
        key_path = private_dir(Path(home)) / KEY_FILENAME
        if not key_path.exists() and _has_key_check(db):
            raise SecretStoreError(f"the state database holds secrets encrypted with a master key this node lacks: "
                                   f"set {KEY_ENV_VAR} to the cluster's key (64 hex characters)")
        created = create_key_file(key_path)
        keys = [created] if created is not None else read_key_file(key_path)
        for key in keys[:-1]:  # during a key rotation (two keys in the file): the one the database was written with
            with contextlib.suppress(SecretStoreError):
                return cls(db, key)
        return cls(db, keys[-1])

    def reload(self) -> None:
        """Read the rows now (another node changed them: ``state.cluster``). Raises StateUnavailable."""
        fetched = self._fetch()
        with self._lock:
            self._apply(*fetched)

    def signature(self) -> tuple[int, int, int]:
        """Changes when the stored values may have changed (the log redactor re-reads the values then)."""
        with self._lock:
            self._load()  # never waits: at most starts a background refresh
        return (self._generation, 0, 0)

    def _load(self) -> None:
        """Called with the lock held by every read. Never waits on the database after the first load: a stale
        copy (older than REFRESH_S) starts one refresh in a background thread and is served meanwhile, so a
        webhook's secret lookup on the event loop costs no round trip, and a database that is down costs
        nothing but staleness (the values known stay in use)."""
        if self._loaded_at is None:
            self._apply(*self._fetch())
            return
        if self._refreshing or time.monotonic() - self._loaded_at < REFRESH_S:
            return
        self._refreshing = True
        threading.Thread(target=self._refresh, name="airlock-secrets-refresh", daemon=True).start()

    def _refresh(self) -> None:
        try:
            with self._lock:
                saves = self._saves
            fetched = self._fetch()
            with self._lock:
                if self._saves != saves:  # a write of this process came between: the fetch may predate it
                    self._loaded_at = time.monotonic() - REFRESH_S
                    return
                self._apply(*fetched)
        except (StateUnavailable, SecretStoreError) as exc:
            log.warning("secret store: refresh failed, using the values known: %s", exc)
            with self._lock:
                self._loaded_at = time.monotonic()  # try again after REFRESH_S
        finally:
            self._refreshing = False

    def _fetch(self) -> tuple[dict[str, str], str | None]:
        with self._db.connection() as conn:
            rows = {str(n): str(c) for n, c in conn.execute("SELECT name, ciphertext FROM secrets").fetchall()}
            check_row = conn.execute("SELECT blob FROM secret_key_check WHERE id = 1").fetchone()
        return rows, (str(check_row[0]) if check_row is not None else None)

    def _apply(self, rows: dict[str, str], check: str | None) -> None:
        """Take fetched rows (lock held); raises SecretStoreError when the key check does not decrypt."""
        if check is not None and check != self._check:
            self._decrypt(check, b"airlock:key-check", what="the key check")
        if rows != self._rows:
            self._generation += 1
        self._data, self._rows, self._check = dict(rows), rows, check
        self._loaded_at = time.monotonic()

    def _save(self) -> None:
        if self._check is None:
            self._check = self._encrypt(b"airlock secret store v1", b"airlock:key-check")
        changed = [(n, c) for n, c in self._data.items() if self._rows.get(n) != c]
        removed = [n for n in self._rows if n not in self._data]
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO secret_key_check (id, blob) VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
                         (self._check,))
            for name, ciphertext in changed:
                conn.execute("INSERT INTO secrets (name, ciphertext, updated_at) VALUES (%s, %s, %s) "
                             "ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, "
                             "updated_at = excluded.updated_at", (name, ciphertext, now))
            for name in removed:
                conn.execute("DELETE FROM secrets WHERE name = %s", (name,))
            if changed or removed:  # every node hears it at this commit (state.cluster: channels waiting for it)
                conn.execute("SELECT pg_notify(%s, %s)", (CLUSTER_CHANNEL, json.dumps({"op": "secrets"})))
        self._rows = dict(self._data)
        self._generation += 1
        self._saves += 1
        self._loaded_at = time.monotonic() - REFRESH_S  # the next read refreshes: other nodes' changes too


def _has_key_check(db: PgDb) -> bool:
    with db.connection() as conn:
        return conn.execute("SELECT 1 FROM secret_key_check WHERE id = 1").fetchone() is not None
