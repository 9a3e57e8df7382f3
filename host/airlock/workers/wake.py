"""Cross-process wake-up of the agent side: ``airlock serve --workers N`` on SQLite state.

Why: the agents wait in worker 0 (``workers.role``: the in-process agent, the agent API), but any worker appends
webhooks' messages to the log. ``Inbox.appended`` wakes waiting leases only in its own process, so a message
appended by another worker waited for the inbox's periodic re-look (``messages.inbox``: up to a second) before its
agent saw it. Now every other worker tells worker 0 what it appended, after the commit is durable, with one unix
datagram per event-loop turn (the appends of that turn summed by agent) to ``HOME/run/wake.sock``; worker 0 passes
it to its ``Inbox.appended``. The re-look stays as the safety net: a wake-up lost (worker 0 restarting, its socket
buffer full) only delays a message, as before. With PostgreSQL state the cluster's own notifications do this job.

Datagram: UTF-8 lines ``<count> <agent>`` (at most :data:`MAX_WAKE_BYTES`); agent ``*`` means not known (wake every
waiter). The socket is in ``HOME/run`` (mode 0700, ``stores.files.private_dir``) and itself mode 0600: only the
gateway's user can send, and what a datagram can cause is a lease that looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..control.server import socket_address
from ..messages.inbox import Inbox
from ..messages.log import MessageLog
from ..stores.files import private_dir

__all__ = ["MAX_WAKE_BYTES", "RECONNECT_S", "ForwardingInbox", "WakeListener", "WakeSender", "wake_path"]

log = logging.getLogger("airlock.workers")

MAX_WAKE_BYTES = 4096
"""Largest wake-up datagram read or sent (bytes); a turn whose agents do not fit is sent as ``*`` (wake all)."""
RECONNECT_S = 1.0
"""After a failed send (worker 0 not listening), seconds before a sender tries to reach it again."""
_ALL = "*"


def wake_path(home: Path) -> Path:
    """``HOME/run/wake.sock``."""
    return home / "run" / "wake.sock"


def encode(counts: Counter[str]) -> bytes:
    """The datagram for ``counts`` (entries appended per agent; ``*``: agent not known), within the size limit."""
    out = b"".join(f"{n} {agent}\n".encode() for agent, n in counts.items())
    if len(out) > MAX_WAKE_BYTES or _ALL in counts:
        return f"{sum(counts.values())} {_ALL}\n".encode()  # too many agents for one datagram: wake every waiter
    return out


def decode(data: bytes) -> tuple[int, list[str] | None]:
    """(entries, their agents one name per entry, or None: wake every waiter) of a datagram; (0, []) when it is
    malformed."""
    total, agents = 0, []
    try:
        for line in data.decode().splitlines():
            n, _, agent = line.partition(" ")
            count = int(n)
            if count < 1 or not agent:
                return 0, []
            total += count
            if agent == _ALL:
                return total, None
            agents += [agent] * min(count, MAX_WAKE_BYTES)
    except ValueError:  # not UTF-8, not a number
        return 0, []
    return total, agents


class WakeListener:
    """Worker 0's end: reads wake-ups and passes them to ``inbox.appended``. ``start()`` / ``close()`` on the loop."""

    def __init__(self, home: Path, inbox: Inbox) -> None:
        self.path = wake_path(home)
        self.inbox = inbox
        self._sock: socket.socket | None = None
        self.received = 0
        """Wake-up datagrams read."""

    def start(self) -> None:
        private_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a worker 0 that died: this one takes over
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with socket_address(self.path) as address:
                sock.bind(address)
            os.chmod(self.path, 0o600)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(MAX_WAKE_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            self.received += 1
            count, agents = decode(data)
            self.inbox.appended(count, agents)

    def close(self) -> None:
        if self._sock is None:
            return
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class WakeSender:
    """Another worker's end: ``appended`` (from its ``Inbox.appended``) sums what this event-loop turn appended and
    sends it in one datagram at the end of the turn. Never blocks, never raises: a send that fails is dropped
    (module docstring)."""

    def __init__(self, home: Path) -> None:
        self.path = wake_path(home)
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._pending: Counter[str] = Counter()
        self.sent = 0
        """Wake-up datagrams sent."""

    def appended(self, count: int, agents: Sequence[str] | None) -> None:
        if count <= 0:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        if agents is None:
            self._pending[_ALL] += count
        else:
            self._pending.update(agents)

    def _flush(self) -> None:
        counts, self._pending = self._pending, Counter()
        sock = self._connected()
        if sock is None or not counts:
            return
        try:
            sock.send(encode(counts))
            self.sent += 1
        except BlockingIOError:  # worker 0's buffer is full: it is awake and looking anyway
            pass
        except OSError:  # worker 0 gone or restarting (refused): the re-look delivers; reconnect later
            self._drop()

    def _connected(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        if time.monotonic() < self._retry_at:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            with socket_address(self.path) as address:
                sock.connect(address)
        except OSError:
            sock.close()
            self._retry_at = time.monotonic() + RECONNECT_S
            return None
        self._sock = sock
        return sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._retry_at = time.monotonic() + RECONNECT_S

    def close(self) -> None:
        self._drop()


class ForwardingInbox(Inbox):
    """The inbox of a worker that is not the agent side (SQLite state): what it appends is counted here, as in any
    inbox, and sent to worker 0 (``WakeSender``), whose agents wait for it."""

    def __init__(self, log: MessageLog, capacity: int, *, visibility_s: float, home: Path) -> None:
        super().__init__(log, capacity, visibility_s=visibility_s)
        self.sender = WakeSender(home)

    def appended(self, count: int, agents: Sequence[str] | None = None) -> None:
        super().appended(count, agents)
        self.sender.appended(count, agents)
