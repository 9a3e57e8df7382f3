"""One SQL dialect for the small stores on both engines: the stores write SQLite-style SQL (``?`` placeholders,
``ON CONFLICT``, ``rowid``) against :class:`SqlDb`, which is either ``_sqlite.SqliteDb`` or :class:`PgQmarkDb`
(a PostgreSQL ``state.postgres.PgDb`` whose connections turn ``?`` into ``%s``; the PostgreSQL tables that the
stores order by ``rowid`` have an identity column of that name, ``state.pg_schema``).

Why not an ORM: four small stores with a dozen statements each, all portable but the placeholder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from ..state.postgres import PgConn, PgDb

__all__ = ["PgQmarkDb", "SqlConn", "SqlCursor", "SqlDb"]


class SqlCursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...


class SqlConn(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> SqlCursor: ...


class SqlDb(Protocol):
    """``transaction()``: one transaction (committed at the end of the block, rolled back on an exception);
    ``reading()``: statements outside a transaction."""

    def transaction(self) -> AbstractContextManager[SqlConn]: ...
    def reading(self) -> AbstractContextManager[SqlConn]: ...
    def close(self) -> None: ...


class _QmarkConn:
    def __init__(self, conn: PgConn) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> SqlCursor:
        # the stores' SQL has no '?' or '%' inside literals: a plain replace is exact
        return self._conn.execute(sql.replace("?", "%s"), parameters)


class PgQmarkDb:
    """:class:`SqlDb` on a ``PgDb`` (module docstring); ``close()`` closes the pool only when ``owns_db``."""

    def __init__(self, db: PgDb, *, owns_db: bool = False) -> None:
        self.pg = db
        self._owns_db = owns_db

    @contextmanager
    def transaction(self) -> Iterator[SqlConn]:
        with self.pg.transaction() as conn:
            yield _QmarkConn(conn)

    @contextmanager
    def reading(self) -> Iterator[SqlConn]:
        with self.pg.connection() as conn:
            yield _QmarkConn(conn)

    def close(self) -> None:
        if self._owns_db:
            self.pg.close()
