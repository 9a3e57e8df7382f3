"""The supervisor of ``airlock serve --workers N``: owns the listening sockets, runs N worker processes, restarts
those that die, reports them, and stops them all on SIGTERM / SIGINT.

Sockets: the supervisor binds the listeners once and keeps them for its whole life: one webhook socket per worker
slot, all on the same port with ``SO_REUSEPORT`` (the kernel spreads new connections over them by a hash of the
addresses), and the admin and agent API sockets for worker 0 (``workers.role``). A worker inherits its slot's
socket; a restarted worker inherits the same one, so connections that were queued on it while the worker died
are accepted by its successor, not reset (a socket of a worker's own would be closed with it). The trade-off:
connections hashed to a slot whose worker is restarting wait for it (seconds) instead of going to another
worker. Not one socket shared by all workers: an asyncio server accepts every queued connection on each wake-up,
so the first worker to wake took all of a burst of keep-alive connections (measured: the other worker idle).

Start-up: worker 0 first (it generates missing secrets, the admin token, and fills the compile cache), the
others once it is ready, so they load compiled components from the shared on-disk cache instead of compiling
them N times at once. Restarts: ``workers.policy`` (backoff, crash loop). A crash loop of worker 0 (the agent
side) stops the gateway with exit code 1, since replies could not be delivered any more.

Stop: SIGTERM (or SIGINT) is passed to every worker, which finishes its in-flight callbacks and stops its
channels; a worker still running after ``stop_grace_s`` (``HostConfig.worker_stop_grace_s``, default
``policy.STOP_GRACE_S``: 30 s) is killed.

Control: the supervisor serves ``HOME/control.sock`` and forwards each operation to its workers
(``workers.fanout``); SIGHUP is passed to every worker, which reads the host config again.

Status: ``HOME/run/workers.json`` (atomic rewrite on every change), read by ``airlock status``, ``/health`` and
``/metrics``::

    {"supervisor_pid": 1234, "count": 2, "updated_at": 1700000000.0,
     "workers": [{"index": 0, "pid": 1240, "state": "ready", "restarts": 1, "last_exit": -9,
                  "started_at": 1700000000.0}]}

``state`` is ``starting``, ``ready``, ``restarting``, ``crash-loop`` or ``stopped``; ``last_exit`` is the
last exit code (negative: killed by that signal), null before the first death.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from prometheus_client import multiprocess

from ..capabilities.emit_shared import windows_path
from ..observability.multiproc import ENV_DIR as METRICS_ENV
from ..observability.multiproc import metrics_dir
from ..stores.files import private_dir
from .fanout import Fanout
from .policy import STOP_GRACE_S, RestartPolicy
from .role import ENV_COUNT, ENV_INDEX, ENV_READY_FD, ENV_SOCKETS

__all__ = ["STOP_GRACE_S", "Supervisor", "read_status", "status_path"]

log = logging.getLogger("airlock.workers")

_mark_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)  # untyped in prometheus-client

READY_TIMEOUT_S = 120.0
"""Seconds the others wait for worker 0's first start (compiling every channel) before starting anyway."""


def status_path(home: Path) -> Path:
    """``HOME/run/workers.json``."""
    return home / "run" / "workers.json"


def read_status(home: Path) -> dict[str, Any] | None:
    """The supervisor's status file, or None (absent, unreadable, or its supervisor is gone)."""
    try:
        doc = json.loads(status_path(home).read_text())
        os.kill(int(doc["supervisor_pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass
class _Slot:
    index: int
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    proc: asyncio.subprocess.Process | None = None
    state: str = "starting"
    restarts: int = 0
    last_exit: int | None = None
    started_at: float | None = None
    spawned_at: float = 0.0
    """Monotonic time of the last spawn (``workers.fanout``: changes made while it started)."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def doc(self) -> dict[str, Any]:
        return {"index": self.index, "pid": self.proc.pid if self.proc is not None else None, "state": self.state,
                "restarts": self.restarts, "last_exit": self.last_exit, "started_at": self.started_at}


class Supervisor:
    """Runs ``count`` workers (module docstring). ``await run()`` returns the exit code.

    Args:
        command: the worker's command line (``python -m airlock.cli ... serve ...``); the role goes in the
            environment (``workers.role``).
        count: workers, >= 1.
        sockets: listening sockets by name (``webhook/<i>`` for worker i; ``admin``, ``agent`` for worker 0).
        home: where the status file goes.
        policy: a restart policy per slot (tests shorten it).
    """

    def __init__(self, command: Sequence[str], count: int, sockets: Mapping[str, socket.socket], home: Path, *,
                 stop_grace_s: float = STOP_GRACE_S, policy: RestartPolicy | None = None) -> None:
        if count < 1:
            raise ValueError("workers must be at least 1")
        self.command = list(command)
        self.sockets = dict(sockets)
        self.home = home
        self.stop_grace_s = stop_grace_s
        rules = policy if policy is not None else RestartPolicy()
        self.slots = [_Slot(i, dataclasses.replace(rules, deaths=deque())) for i in range(count)]
        self._stopping = asyncio.Event()
        self._fatal = False
        self.fanout = Fanout(home, self.slots)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._hangup)
        private_dir(self.home / "run")
        self._fresh_metrics()
        self._write_status()
        try:
            await self.fanout.start()
            tasks = [asyncio.create_task(self._keep(slot), name=f"worker-{slot.index}") for slot in self.slots]
            every: asyncio.Future[list[BaseException | None]] = asyncio.gather(*tasks, return_exceptions=True)
            stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait([stopping, every], return_when=asyncio.FIRST_COMPLETED)  # a signal, or all gave up
            self._stopping.set()
            await self.fanout.stop()  # no operation reaches a stopping worker
            await self._stop_all()
            await every
        finally:
            await self.fanout.stop()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(OSError):
                status_path(self.home).unlink()
        log.info("all workers stopped")
        return 1 if self._fatal else 0

    def _on_signal(self, name: str) -> None:
        if not self._stopping.is_set():
            log.info("%s received; stopping %d worker(s)", name, len(self.slots))
        self._stopping.set()

    def _fresh_metrics(self) -> None:
        """An empty ``HOME/run/metrics`` for this start's workers (``observability.multiproc``): the files of an
        earlier start would add its totals to this one's; and no shared emit window (``capabilities.emit_shared``)."""
        path = metrics_dir(self.home)
        shutil.rmtree(path, ignore_errors=True)
        private_dir(path)
        windows = windows_path(self.home)  # the emit windows start empty, as in one process
        for leftover in (windows, windows.with_name(windows.name + "-wal"), windows.with_name(windows.name + "-shm")):
            leftover.unlink(missing_ok=True)

    def _hangup(self) -> None:
        """SIGHUP: every ready worker reads the host config again (``AirlockHost.reload_host_config``); one that is
        starting or restarting reads it at its start (and a SIGHUP before its handler is set would kill it)."""
        live = [s.proc for s in self.slots if s.proc is not None and s.proc.returncode is None and s.state == "ready"]
        log.info("SIGHUP received; passed to %d worker(s)", len(live))
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGHUP)

    async def _keep(self, slot: _Slot) -> None:
        """Run one slot's worker until the gateway stops or the slot crash-loops."""
        if slot.index > 0:  # after worker 0's first start (module docstring), unless the gateway stops first
            waits = [asyncio.ensure_future(self.slots[0].ready.wait()), asyncio.ensure_future(self._stopping.wait())]
            await asyncio.wait(waits, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        while not self._stopping.is_set():
            proc = await self._spawn(slot)
            code = await proc.wait()
            slot.last_exit = code
            # its counters stay in the totals; its live gauges (instances in use) go
            _mark_dead(proc.pid, os.fspath(metrics_dir(self.home)))
            if self._stopping.is_set():
                break
            delay = slot.policy.died(time.monotonic())
            if delay is None:
                slot.state = "crash-loop"
                log.error("worker %d died %d times within %.0f s (last exit %d): crash loop, not restarted",
                          slot.index, slot.policy.deaths_for_loop, slot.policy.window_s, code)
                self._write_status()
                if slot.index == 0 or all(s.state == "crash-loop" for s in self.slots):
                    log.error("stopping the gateway: %s", "worker 0 (agent side) is down" if slot.index == 0
                              else "no worker left")
                    self._fatal = True
                    self._stopping.set()
                return
            slot.state = "restarting"
            slot.restarts += 1
            log.warning("worker %d (pid %d) exited with %d; restarting in %.1f s", slot.index, proc.pid, code, delay)
            self._write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        slot.state = "stopped"
        self._write_status()

    async def _spawn(self, slot: _Slot) -> asyncio.subprocess.Process:
        names = {"webhook": f"webhook/{slot.index}"}
        if slot.index == 0:
            names.update(admin="admin", agent="agent")
        fds = {role: self.sockets[key].fileno() for role, key in names.items() if key in self.sockets}
        ready_r, ready_w = os.pipe()
        env = dict(os.environ)
        env.update({ENV_INDEX: str(slot.index), ENV_COUNT: str(len(self.slots)), ENV_READY_FD: str(ready_w),
                    ENV_SOCKETS: ",".join(f"{n}={fd}" for n, fd in fds.items()),
                    METRICS_ENV: os.fspath(metrics_dir(self.home))})
        try:
            proc = await asyncio.create_subprocess_exec(*self.command, env=env, pass_fds=(*fds.values(), ready_w))
        finally:
            os.close(ready_w)
        slot.proc, slot.state, slot.started_at, slot.spawned_at = proc, "starting", time.time(), time.monotonic()
        self._watch_ready(slot, ready_r)
        log.info("worker %d started (pid %d)", slot.index, proc.pid)
        self._write_status()
        return proc

    def _watch_ready(self, slot: _Slot, fd: int) -> None:
        loop = asyncio.get_running_loop()

        def readable() -> None:
            loop.remove_reader(fd)
            try:
                line = os.read(fd, 64)
            finally:
                os.close(fd)
            if line.startswith(b"ready") and slot.state == "starting":
                slot.state = "ready"
                slot.ready.set()
                self._write_status()
                task = asyncio.create_task(self.fanout.on_ready(slot), name=f"sync-{slot.index}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        loop.add_reader(fd, readable)  # EOF (the worker died first) is readable too: the pipe is closed

    async def _stop_all(self) -> None:
        live = [s.proc for s in self.slots if s.proc is not None and s.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not live:
            return
        _, pending = await asyncio.wait([asyncio.create_task(p.wait()) for p in live], timeout=self.stop_grace_s)
        for proc in live:
            if proc.returncode is None:
                log.error("worker pid %d still running after %.0f s: killed", proc.pid, self.stop_grace_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if pending:
            await asyncio.wait(pending)

    def _write_status(self) -> None:
        doc = {"supervisor_pid": os.getpid(), "count": len(self.slots), "updated_at": time.time(),
               "workers": [s.doc() for s in self.slots]}
        path = status_path(self.home)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(doc, out)
            os.replace(tmp, path)
        except OSError as exc:  # status is a report: a full disk must not stop the supervisor
            log.warning("cannot write %s: %s", path, exc)


def worker_command() -> list[str]:
    """This process's command line, run again as a worker (the role comes from the environment)."""
    return [sys.executable, "-m", "airlock.cli", *sys.argv[1:]]
