"""The ``state`` URL of the host config: where the message log, the durable workspace and the other shared state
live.

- ``sqlite:///state.db`` (the default): one SQLite file; a relative path is relative to the Airlock home, four
  slashes (``sqlite:////var/lib/airlock/state.db``) make it absolute (the SQLAlchemy spelling).
- ``postgresql://user:password@host:port/dbname?sslmode=...`` (or ``postgres://``): a PostgreSQL database, any
  libpq connection URI (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS).
  A password may also come from ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads them), keeping it out of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_STATE_URL", "StateUrl", "check_state_url", "parse_state_url", "redact"]

DEFAULT_STATE_URL = "sqlite:///state.db"
_PG_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class StateUrl:
    """A parsed ``state`` URL: ``kind`` and either the SQLite ``path`` or the PostgreSQL ``dsn`` (the URL as
    given, for libpq)."""

    kind: Literal["sqlite", "postgresql"]
    path: Path | None = None
    dsn: str | None = None


def check_state_url(url: str) -> str:
    """Return ``url`` if it is a ``state`` URL this host can open (module docstring), else raise ValueError."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("state must be a URL: sqlite:///FILE or postgresql://...")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest.strip("/") == "":
            raise ValueError("state: sqlite URLs name a file: sqlite:///state.db (in the home) or sqlite:////ABS/PATH")
        return url
    if scheme in _PG_SCHEMES:
        if not urlsplit(url).hostname and "host=" not in url:
            raise ValueError("state: a postgresql URL needs a host (postgresql://USER@HOST:PORT/DBNAME)")
        return url
    raise ValueError(f"state: unknown scheme {scheme!r}: use sqlite:// or postgresql://")


def parse_state_url(url: str, home: Path) -> StateUrl:
    """Parse a checked ``state`` URL; a relative SQLite path is taken under ``home``.

    Raises:
        ValueError: ``url`` fails :func:`check_state_url`.
    """
    check_state_url(url)
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        path = Path(rest[1:])  # drop the slash that ends the (empty) authority
        return StateUrl(kind="sqlite", path=path if path.is_absolute() else home / path)
    return StateUrl(kind="postgresql", dsn=url)


def redact(url: str) -> str:
    """``url`` without its password, for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
