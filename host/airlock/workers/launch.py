"""Glue between ``airlock serve`` and the supervisor: bind the listeners once, start the supervisor; and the worker
side's watch for a supervisor that vanished."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from ..errors import ConfigError
from ..host_config import HostConfig
from .policy import RestartPolicy
from .supervisor import Supervisor, worker_command

__all__ = ["LISTEN_BACKLOG", "ORPHAN_CHECK_S", "bind_listeners", "run_supervisor", "watch_parent"]

log = logging.getLogger("airlock.workers")

LISTEN_BACKLOG = 1024
"""Connections each webhook socket queues while its worker is busy (or restarting)."""
ORPHAN_CHECK_S = 1.0
"""How often a worker checks that its supervisor is still its parent (a supervisor killed with -9 cannot stop
its workers; they stop themselves)."""


def _listen(what: str, host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} for {what}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)  # passed to workers explicitly (pass_fds), never to anything else
    return sock


def bind_listeners(config: HostConfig, count: int) -> dict[str, socket.socket]:
    """The listening sockets: ``webhook/<i>`` for each worker slot (``SO_REUSEPORT``, one port: the kernel
    spreads connections over them), and ``admin`` / ``agent`` for worker 0 when they are on."""
    first = _listen("webhooks", config.listen_host, config.listen_port, reuse_port=True)
    port = first.getsockname()[1]  # port 0: the others join the port the first one got
    socks = {"webhook/0": first}
    try:
        for i in range(1, count):
            socks[f"webhook/{i}"] = _listen("webhooks", config.listen_host, port, reuse_port=True)
        if config.admin:
            socks["admin"] = _listen("the admin console", config.admin_host, config.admin_port)
        if config.agent_api_enabled:
            socks["agent"] = _listen("the agent API", config.agent_api_host, config.agent_api_bind_port)
    except BaseException:
        for sock in socks.values():
            sock.close()
        raise
    return socks


def run_supervisor(config: HostConfig, count: int) -> int:
    """Bind, run ``count`` workers until SIGTERM / SIGINT (``workers.supervisor``); the exit code."""
    socks = bind_listeners(config, count)
    ports = {name: sock.getsockname()[1] for name, sock in socks.items()}
    log.info("supervisor %d: %d workers on http://%s:%d%s", os.getpid(), count, config.listen_host,
             ports["webhook/0"], "".join(f", {n} port {p}" for n, p in ports.items() if "/" not in n))
    try:
        policy = RestartPolicy(base_s=config.worker_restart_backoff_s, deaths_for_loop=config.worker_crash_loop_deaths,
                               window_s=config.worker_crash_window_s)
        supervisor = Supervisor(worker_command(), count, socks, config.home, policy=policy,
                                stop_grace_s=config.worker_stop_grace_s)
        return asyncio.run(supervisor.run())
    finally:
        for sock in socks.values():
            sock.close()


async def watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` once this worker's parent (the supervisor) is gone (it was re-parented)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(ORPHAN_CHECK_S)
        if os.getppid() != parent:
            log.error("supervisor %d is gone; stopping this worker", parent)
            stop.set()
