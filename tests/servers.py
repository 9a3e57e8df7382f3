"""Real PostgreSQL and Redis servers for the tests: Debian's binaries (``scripts/install-servers.sh``), each server
in a temporary directory, listening on a free loopback port, started once per test session (``conftest``'s
``postgres_server`` / ``redis_server`` fixtures) and stopped at its end. No mocks: the state backends run
against the same engines an operator runs.

PostgreSQL refuses to run as root, and CI runs as root: the cluster is made and run by an unprivileged user
(``postgres``, made by Debian's package; else ``nobody``) through ``runuser``. Its data directory lives under a
``mkdtemp`` directory that user owns; ``fsync`` is off (``-F``: a test cluster needs no durability, and it makes
``CREATE DATABASE`` fast). Authentication is ``trust`` on 127.0.0.1 only.

Both classes have ``stop()`` / ``start()`` on the same port and directory, so a test can take its server away
mid-run and bring it back (``conftest.stoppable_postgres``: the database-down tests). ``create_schema()`` gives a
test a namespace of its own in milliseconds (``conftest.pg_url``); ``create_database()`` a whole database.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

INSTALL_HINT = "run `bash scripts/install-servers.sh` (make pytest does): it installs postgresql and redis-server"
START_TIMEOUT_S = 30.0
"""Seconds a server may take to accept connections before the fixture fails."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (the kernel's pick; the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    """The newest installed PostgreSQL's ``name`` binary (Debian keeps them off PATH, per version)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: {INSTALL_HINT}")
    return on_path


def _run_as() -> list[str]:
    """The command prefix that drops root for PostgreSQL (empty when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")


class PostgresServer:
    """A throw-away PostgreSQL cluster (module docstring). ``url(db)`` connects as the superuser ``airlock``."""

    USER = "airlock"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="airlock-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as = _run_as()
        if self._as:
            user = self._as[2]
            os.chown(self.root, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        self._ids = itertools.count(1)
        self._pg(_pg_bin("initdb"), "-D", str(self.data), "-U", self.USER, "-A", "trust", "-E", "UTF8",
                 "--locale=C", "--no-sync", "--no-instructions")
        self.running = False

    def _pg(self, *argv: str) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=START_TIMEOUT_S,
                              check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def start(self) -> None:
        """Start (or restart) the server on its port; returns once it accepts connections."""
        options = (f"-p {self.port} -k {self.root} -F -c listen_addresses=127.0.0.1 -c max_connections=300 "
                   "-c shared_buffers=16MB")
        self._pg(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-s",
                 "-t", str(int(START_TIMEOUT_S)), "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients and shut down cleanly; ``immediate``: like a crash)."""
        if self.running:
            self._pg(_pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-s", "-m", mode, "stop")
            self.running = False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL (each test gets its own, so tests never see each other's rows)."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, prefix: str = "s") -> str:
        """A new empty schema in the ``postgres`` database; returns a URL whose connections use it (libpq
        ``options=-csearch_path=...``). Milliseconds, where a database costs a copy of the template (~10 MB, a
        quarter of a second here): what most tests need, a namespace of their own."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A throw-away ``redis-server`` on a free 127.0.0.1 port and a unix socket, no persistence."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(f"redis-server is not installed: {INSTALL_HINT}")
        self.exe = exe
        self.root = Path(tempfile.mkdtemp(prefix="airlock-redis-"))
        self.port = free_port()
        self.socket = self.root / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server; returns once it answers PING."""
        self._proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.root), "--save", "", "--appendonly", "no",
             "--logfile", str(self.root / "server.log"), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start:\n{log}")
            time.sleep(0.02)

    def ping(self) -> bool:
        """True when the server answers ``PING`` on its TCP port (RESP: ``+PONG``)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM: Redis shuts down cleanly; nothing is saved)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL the server, like a crash (its data, in memory only, is gone; ``start()`` brings up an empty one
        on the same port)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


_Server = TypeVar("_Server", PostgresServer, RedisServer)


@contextlib.contextmanager
def running(server: _Server) -> Iterator[_Server]:
    """``server`` started for the block, destroyed at its end (its process and directory), also when the start or
    the block failed."""
    try:
        server.start()
        yield server
    finally:
        server.destroy()
