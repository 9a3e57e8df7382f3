"""The host config's ``state`` URL: SQLite paths (relative to the home, or absolute), PostgreSQL URLs, refusals with
a one-line reason, and passwords kept out of logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.errors import ConfigError
from airlock.host_config import HostConfig
from airlock.state.url import parse_state_url, redact


def test_default_is_state_db_in_the_home(tmp_path: Path) -> None:
    config = HostConfig.build(home=tmp_path)
    assert config.state == "sqlite:///state.db"
    assert config.state_url.kind == "sqlite" and config.state_db == tmp_path / "state.db"


@pytest.mark.parametrize(("url", "path"), [("sqlite:///data/log.db", "HOME/data/log.db"),
                                           ("sqlite:////var/lib/airlock/state.db", "/var/lib/airlock/state.db")])
def test_sqlite_paths(tmp_path: Path, url: str, path: str) -> None:
    parsed = parse_state_url(url, tmp_path)
    assert parsed.kind == "sqlite" and str(parsed.path) == path.replace("HOME", str(tmp_path))


@pytest.mark.parametrize("url", ["postgresql://airlock@db.internal:5432/airlock?sslmode=require",
                                 "postgres://u:p@127.0.0.1/x"])
def test_postgresql_urls_are_kept_for_libpq(tmp_path: Path, url: str) -> None:
    config = HostConfig.build(home=tmp_path, state=url)
    assert config.state_url.kind == "postgresql" and config.state_url.dsn == url


@pytest.mark.parametrize(("url", "reason"), [
    ("state.db", "must be a URL"), ("sqlite://", "name a file"), ("sqlite:///", "name a file"),
    ("mysql://x@h/db", "unknown scheme"), ("postgresql:///db", "needs a host"),
])
def test_refused_with_a_reason(tmp_path: Path, url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        HostConfig.build(home=tmp_path, state=url)


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert redact("postgresql://bob@db/x") == "postgresql://bob@db/x"
