"""Open a host's state backends from its config's ``state`` URL: the message log with the durable workspace (and,
as they move, the other shared stores) on SQLite in the home or on one PostgreSQL database whose connection pool
they share."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..host_config import HostConfig
from ..messages.blobs import Blobs, BlobStore
from ..messages.log import MessageLog
from ..stores._sql import PgQmarkDb
from ..stores.agents import AgentRegistry
from ..stores.pairing import PairingStore
from ..stores.secrets import SecretStore
from .leases import Leases, PostgresLeases, SqliteLeases
from .postgres import PgDb
from .url import redact

__all__ = ["State", "open_agents", "open_blobs", "open_log", "open_pairing", "open_secrets", "open_state"]

logger = logging.getLogger("airlock.state")


@dataclass
class State:
    """The opened backends. ``db`` is the shared PostgreSQL pool (None on SQLite); ``close()`` closes all."""

    log: MessageLog
    leases: Leases
    pairing: PairingStore
    db: PgDb | None = None

    def close(self) -> None:
        self.log.close()
        self.leases.close()
        self.pairing.close()
        if self.db is not None:
            self.db.close()


def open_state(config: HostConfig, *, import_legacy: bool = True, log: MessageLog | None = None) -> State:
    """Open the backends named by ``config.state`` (``state.url``).

    ``import_legacy``: on SQLite, copy an older home's ``workspace.db`` into the log once (``SqliteMessageLog``).
    ``log``: another message log to use instead of the state URL's (closed with the state).

    Raises:
        StateUnavailable: PostgreSQL cannot be reached (within ``postgres.CONNECT_WAIT_S``).
        ConfigError: the PostgreSQL schema is newer than this Airlock.
        sqlite3.Error / OSError: the SQLite file cannot be opened.
    """
    url = config.state_url
    if url.kind == "sqlite":
        from ..messages.sqlite import SqliteMessageLog

        assert url.path is not None
        legacy = config.workspace_db if import_legacy else None
        if log is None:
            log = SqliteMessageLog(url.path, legacy_workspace_db=legacy, synchronous=config.log_synchronous)
        return State(log=log, leases=SqliteLeases(url.path), pairing=PairingStore(config.pairing_db))
    assert url.dsn is not None
    db = PgDb(url.dsn)
    logger.info("state on PostgreSQL: %s", redact(url.dsn))
    if log is None:
        log = _pg_log(config, db)
    return State(log=log, leases=PostgresLeases(db), pairing=PairingStore(PgQmarkDb(db)), db=db)


def _pg_log(config: HostConfig, db: PgDb) -> MessageLog:
    """The PostgreSQL log, delivering through Redis when ``config.bus`` is set (``messages.redisbus``)."""
    if config.bus is None:
        from ..messages.postgres import PostgresMessageLog

        return PostgresMessageLog(db)
    from ..messages.redisbus import RedisBusLog

    logger.info("delivery to agents through Redis: %s", redact(config.bus))
    return RedisBusLog(db, config.bus)


def open_log(config: HostConfig) -> MessageLog:
    """The message log alone (the CLI): ``state.db`` (no legacy import), or PostgreSQL on a pool of its own (closed
    with the log; through Redis when ``bus`` is set, so an ack or release of the CLI reaches the streams too)."""
    url = config.state_url
    if url.kind == "sqlite":
        from ..messages.sqlite import SqliteMessageLog

        assert url.path is not None
        return SqliteMessageLog(url.path)
    assert url.dsn is not None
    if config.bus is not None:
        from ..messages.redisbus import RedisBusLog

        return RedisBusLog.open_bus(url.dsn, config.bus)
    from ..messages.postgres import PostgresMessageLog

    return PostgresMessageLog.open(url.dsn)


def open_pairing(config: HostConfig) -> PairingStore:
    """The pairing store alone (the CLI): ``pairing.db`` in the home, or the PostgreSQL state database on a pool of
    its own (closed with the store)."""
    url = config.state_url
    if url.kind == "sqlite":
        return PairingStore(config.pairing_db)
    assert url.dsn is not None
    return PairingStore(PgQmarkDb(PgDb(url.dsn, max_size=2), owns_db=True))


def open_agents(config: HostConfig, db: PgDb | None = None) -> AgentRegistry:
    """The agents registry (``stores.agents``): ``HOME/agents.db`` on SQLite state, the PostgreSQL state database
    otherwise (on ``db`` if given, else a small pool of its own, closed with the registry).

    Raises StateUnavailable when PostgreSQL cannot be reached."""
    url = config.state_url
    if url.kind == "sqlite":
        return AgentRegistry(config.agents_db)
    if db is not None:
        return AgentRegistry(PgQmarkDb(db))
    assert url.dsn is not None
    return AgentRegistry(PgQmarkDb(PgDb(url.dsn, max_size=2), owns_db=True))


def open_blobs(config: HostConfig, db: PgDb | None) -> Blobs:
    """The attachment blob store: files under ``HOME/blobs`` on SQLite state (``db`` None), the PostgreSQL state
    database ``db`` otherwise (``messages.blobs_pg``: every node reads every node's blobs)."""
    if db is None:
        return BlobStore(config.blobs_dir)
    from ..messages.blobs_pg import PostgresBlobStore

    return PostgresBlobStore(db)


def open_secrets(config: HostConfig, db: PgDb | None = None) -> SecretStore:
    """The encrypted secret store: ``HOME/secrets.json`` on SQLite state, the PostgreSQL state database otherwise
    (on ``db`` if given, else a small pool of its own, left open for the process's life: the CLI's commands end
    with the process).

    Raises:
        SecretStoreError: the master key is missing, malformed or wrong (``stores.secrets``, ``stores.secrets_pg``).
        StateUnavailable: PostgreSQL cannot be reached.
    """
    url = config.state_url
    if url.kind == "sqlite":
        return SecretStore.open(config.home)
    from ..stores.secrets_pg import PostgresSecretStore

    assert url.dsn is not None
    return PostgresSecretStore.open_on(db if db is not None else PgDb(url.dsn, max_size=2), config.home)
