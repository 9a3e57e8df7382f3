"""What a worker process learns from its supervisor: its index, the listening sockets it inherited, where to say
it is ready. Passed in the environment (names below) and as inherited file descriptors, because a worker is a
fresh ``python -m airlock serve`` process (never a fork of the supervisor: a forked wasmtime engine or SQLite
connection is not safe to use).

- ``AIRLOCK_WORKER_INDEX``: ``0..N-1``. Worker 0 is the agent side (agent API, admin console, in-process agent,
  outbox sender, compaction, secret generation); every worker answers webhooks and may hold poller leases.
- ``AIRLOCK_WORKER_COUNT``: N.
- ``AIRLOCK_WORKER_SOCKETS``: ``name=fd`` pairs, comma separated (``webhook``, and for worker 0 ``admin`` and
  ``agent``): listening sockets the supervisor bound once, so a restarted worker takes over the same queue and
  no connection waiting in it is lost.
- ``AIRLOCK_WORKER_READY_FD``: a pipe; the worker writes one line to it once it serves.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ENV_COUNT", "ENV_INDEX", "ENV_READY_FD", "ENV_SOCKETS", "WorkerRole", "current"]

ENV_INDEX = "AIRLOCK_WORKER_INDEX"
ENV_COUNT = "AIRLOCK_WORKER_COUNT"
ENV_SOCKETS = "AIRLOCK_WORKER_SOCKETS"
ENV_READY_FD = "AIRLOCK_WORKER_READY_FD"


@dataclass
class WorkerRole:
    """This process's place in a multi-worker gateway (``current()``); None of it applies to a plain serve."""

    index: int
    count: int
    socket_fds: dict[str, int] = field(default_factory=dict)
    ready_fd: int | None = None

    @property
    def agent_side(self) -> bool:
        """Worker 0 runs the agent side (module docstring)."""
        return self.index == 0

    def listening_socket(self, name: str) -> socket.socket | None:
        """The inherited listening socket ``name`` (taken once: a second call returns None)."""
        fd = self.socket_fds.pop(name, None)
        if fd is None:
            return None
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        return sock

    def ready(self) -> None:
        """Tell the supervisor this worker serves (once)."""
        if self.ready_fd is None:
            return
        fd, self.ready_fd = self.ready_fd, None
        try:
            os.write(fd, b"ready\n")
        finally:
            os.close(fd)


def current(environ: Mapping[str, str] | None = None) -> WorkerRole | None:
    """The role given by the supervisor, or None when this process was not started by one."""
    env = os.environ if environ is None else environ
    if ENV_INDEX not in env:
        return None
    fds: dict[str, int] = {}
    for pair in filter(None, env.get(ENV_SOCKETS, "").split(",")):
        name, _, fd = pair.partition("=")
        fds[name] = int(fd)
    ready = env.get(ENV_READY_FD)
    return WorkerRole(index=int(env[ENV_INDEX]), count=int(env.get(ENV_COUNT, "1")), socket_fds=fds,
                      ready_fd=int(ready) if ready else None)
