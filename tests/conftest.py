"""Shared fixtures: a per-test Airlock home whose compile cache is shared by the whole session (so the
18 MB CPython guest compiles once), a master key in the environment, and paths to built guests."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import PostgresServer, RedisServer, running

from airlock.messages.log import MessageLog
from airlock.messages.postgres import PostgresMessageLog
from airlock.messages.redisbus import RedisBusLog
from airlock.messages.sqlite import SqliteMessageLog
from airlock.runtime.engine import Runtime
from airlock.runtime.instance import Sandbox

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BUILT_CHANNELS = REPO / "build" / "channels"
sys.path.insert(0, str(Path(__file__).parent / "guests"))
sys.path.insert(0, str(Path(__file__).parent / "fakes"))


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compile-cache")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole session (``tests/servers.py``), started by the first test that asks."""
    with running(PostgresServer()) as server:
        yield server


@pytest.fixture(scope="session")
def _stoppable_server() -> Iterator[PostgresServer]:
    with running(PostgresServer()) as server:
        yield server


@pytest.fixture
def stoppable_postgres(_stoppable_server: PostgresServer) -> Iterator[PostgresServer]:
    """A PostgreSQL server the test may stop and start again (the database-down tests), apart from the session's
    shared one; one per session, running again after each test."""
    yield _stoppable_server
    if not _stoppable_server.running:
        _stoppable_server.start()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty namespace on the session's PostgreSQL (a schema of its own, on the connection's search path):
    ``postgresql://airlock@127.0.0.1:PORT/postgres?options=-csearch_path%3DNAME``."""
    return postgres_server.create_schema()


LOG_BACKENDS = ("sqlite", "postgresql", "redisbus")
OpenLog = Callable[[], MessageLog]


@pytest.fixture(params=LOG_BACKENDS)
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenLog]:
    """``open_log()`` opens (again) one message log on the parametrised backend: SQLite (``tmp_path/state.db``),
    PostgreSQL (a fresh database on the session's real server), or PostgreSQL delivering through the session's
    Redis (``messages.redisbus``); every log opened is closed at the end."""
    opened: list[MessageLog] = []
    if request.param == "sqlite":
        def make() -> MessageLog:
            return SqliteMessageLog(tmp_path / "state.db")
    elif request.param == "redisbus":  # PostgreSQL delivering through Redis Streams, in a key namespace of its own
        url, redis_url = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_server").url
        namespace = f"{url.rsplit('/', 1)[-1]}:"

        def make() -> MessageLog:
            return RedisBusLog.open_bus(url, redis_url, namespace=namespace)
    else:
        url = request.getfixturevalue("pg_url")

        def make() -> MessageLog:
            return PostgresMessageLog.open(url)

    def tracked() -> MessageLog:
        opened.append(make())
        return opened[-1]

    yield tracked
    for log in opened:
        log.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis for the whole session (``tests/servers.py``), started by the first test that asks."""
    with running(RedisServer()) as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own: its keys (``airlock:*``) are no other test's, and a test may kill, stop and start
    it (on the same port, with no data after a kill)."""
    with running(RedisServer()) as server:
        yield server


@pytest.fixture(scope="module")
def runtime(compile_cache: Path) -> Iterator[Runtime]:
    """A Runtime (engine + epoch ticker) on the session's compile cache, one per test module."""
    rt = Runtime(compile_cache)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def sandbox(runtime: Runtime) -> Sandbox:
    return Sandbox(runtime)


@pytest.fixture(autouse=True)
def agent_api_port_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """`airlock serve` subprocesses started by tests inherit AIRLOCK_AGENT_API_PORT=0: they never take the fixed
    agent API port 8789, so test runs side by side do not collide (in-process hosts with listen_port=0 pick one
    anyway: HostConfig.agent_api_bind_port)."""
    monkeypatch.setenv("AIRLOCK_AGENT_API_PORT", "0")


@pytest.fixture(autouse=True)
def _free_engines() -> Iterator[None]:
    """Collect garbage after a test that made a Runtime: a stopped host's wasmtime engine waits in reference cycles
    for the collector, and a pooling engine holds a large address-space reservation; a few uncollected ones make
    the next engine fail to reserve its pool (which aborts the process)."""
    before = Runtime.created
    yield
    if Runtime.created != before:
        gc.collect()


_LOGGERS = ("airlock", "airlock.guest", "airlock.channel")


@pytest.fixture(autouse=True)
def _restore_airlock_loggers() -> Iterator[None]:
    """Give every test the airlock loggers as it found them: a CLI run in process (``setup_logging``) changes
    levels and handlers, and a later test's caplog would miss INFO lines."""
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in map(logging.getLogger, _LOGGERS)]
    yield
    for lg, level, handlers, propagate in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


@pytest.fixture(autouse=True)
def master_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = secrets.token_hex(32)
    monkeypatch.setenv("AIRLOCK_MASTER_KEY", key)
    return key


@pytest.fixture
def airlock_home(tmp_path: Path, compile_cache: Path) -> Path:
    """An empty Airlock home (channels/ inside) sharing the session's compile cache."""
    home = tmp_path / "home"
    (home / "channels").mkdir(parents=True)
    (home / "cache").symlink_to(compile_cache, target_is_directory=True)
    return home


@pytest.fixture(scope="session")
def wat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wat-guests")


InstallFn = Callable[..., Path]


@pytest.fixture
def install_channel(airlock_home: Path) -> Iterator[InstallFn]:
    """install_channel(wasm, caps_dict_or_path, name=None, **config_overrides) -> caps path in the home."""

    def install(wasm: Path, caps: dict[str, Any] | Path, **config: Any) -> Path:
        data = json.loads(caps.read_text()) if isinstance(caps, Path) else json.loads(json.dumps(caps))
        data.setdefault("config", {}).update(config)
        name = data["name"]
        dest = airlock_home / "channels"
        shutil.copy(wasm, dest / f"{name}.wasm")
        path = dest / f"{name}.capabilities.json"
        path.write_text(json.dumps(data, indent=2))
        return path

    yield install


def minimal_caps(name: str = "minimal", **channel: Any) -> dict[str, Any]:
    """A capabilities file for the WAT test guest (open DMs, its webhook allowed)."""
    chan = {"allowed_paths": [f"/webhook/{name}"], "allow_polling": True}
    chan.update(channel)
    return {"name": name, "version": "0.1.0", "wit_version": "0.1.0",
            "capabilities": {"channel": chan}, "config": {"dm_policy": "open"}}


@contextlib.contextmanager
def cli_logging_restored() -> Iterator[None]:
    """The CLI configures the ``airlock`` loggers (levels and handlers) when it runs in-process; they are put back
    at the end of the block, so later tests log as before."""
    from airlock import cli  # not at module level: most test modules never run the CLI in-process

    names = ("airlock", *cli._QUIETABLE)
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    try:
        yield
    finally:
        for name, (level, handlers) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.handlers[:] = handlers


@pytest.fixture
def restore_cli_logging() -> Iterator[None]:
    """``cli_logging_restored`` around a test (``pytestmark = pytest.mark.usefixtures("restore_cli_logging")``)."""
    with cli_logging_restored():
        yield
