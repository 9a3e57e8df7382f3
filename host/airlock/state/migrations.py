"""Schema migrations for the PostgreSQL state database: numbered SQL steps and a version table.

Each :class:`Migration` is one numbered step (``pg_schema.MIGRATIONS``: 1, 2, 3, ... without gaps); the table
``airlock_schema`` records the steps applied (version, name, time). :func:`migrate` applies the missing ones in
order, all in one transaction (PostgreSQL's DDL is transactional: a failed step leaves the schema as it was),
under a transaction-scoped advisory lock so that nodes starting together do not apply a step twice. A database
whose version is newer than the steps this Airlock knows is refused (an older node must not write to a schema it
does not understand). Steps are never edited once released; a change is a new step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ..errors import ConfigError

__all__ = ["LOCK_KEY", "Migration", "current_version", "migrate"]

LOCK_KEY = 0x4169726C6F636B
"""The advisory lock key held while migrating ("Airlock" in ASCII; any constant shared by every node)."""

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS airlock_schema (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    """One numbered step: ``sql`` is one or more statements separated by ``;`` (no ``;`` inside a literal)."""

    version: int
    name: str
    sql: str


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The highest applied version (0 for a database without the version table)."""
    exists = conn.execute("SELECT to_regclass('airlock_schema') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM airlock_schema").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection[Any], steps: Sequence[Migration], target: int | None = None) -> list[int]:
    """Bring the database to ``target`` (default: the last step); return the versions applied now.

    ``conn`` must be in autocommit mode (the whole upgrade is one transaction opened here).

    Raises:
        ConfigError: the database is newer than ``steps`` (upgrade Airlock), or ``steps`` are not numbered 1..n.
        psycopg.Error: a step failed (nothing was applied).
    """
    if [s.version for s in steps] != list(range(1, len(steps) + 1)):
        raise ConfigError("schema migrations must be numbered 1..n without gaps")
    goal = len(steps) if target is None else target
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(_VERSION_TABLE)
        have = current_version(conn)
        if have > len(steps):
            raise ConfigError(f"the state database has schema version {have}, newer than this Airlock knows "
                              f"({len(steps)}): upgrade Airlock on this node")
        for step in steps[have:goal]:
            for statement in step.sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO airlock_schema (version, name) VALUES (%s, %s)", (step.version, step.name))
            applied.append(step.version)
    return applied
