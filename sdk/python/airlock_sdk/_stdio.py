"""``print()`` and ``sys.stderr`` inside a component go to the host log.

Inside a component ``sys.stdout``/``sys.stderr`` are replaced by ``HostLogStream`` (see ``_wit``): lines
written during a callback become host log entries (stdout at info, stderr at warn); output written
outside a callback (e.g. while the app module is imported at build time) is dropped. This also keeps
``print`` working when the component is built with ``--stub-wasi`` (no WASI imports at all).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from . import host

__all__ = ["STDERR", "STDOUT", "HostLogStream", "begin_callback", "callback_scope", "end_callback"]

_MAX_PENDING = 64 * 1024


class HostLogStream(io.TextIOBase):
    def __init__(self, level: str, name: str) -> None:
        super().__init__()
        self.level = level
        self._name = name
        self._pending = ""
        self.active = False

    @property
    def name(self) -> str:
        return self._name

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: str) -> int:
        if not self.active:
            return len(s)
        self._pending += s
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            host.log(self.level, line)
        if len(self._pending) > _MAX_PENDING:
            self.flush()
        return len(s)

    def flush(self) -> None:
        if self.active and self._pending:
            pending, self._pending = self._pending, ""
            host.log(self.level, pending)


STDOUT = HostLogStream("info", "<stdout>")
STDERR = HostLogStream("warn", "<stderr>")


def begin_callback() -> None:
    """Route output to the host log from now on (call ``end_callback`` in a ``finally``)."""
    STDOUT.active = STDERR.active = True


def end_callback() -> None:
    """Flush what the callback printed and stop routing output to the host log."""
    with suppress(Exception):  # logging must never turn a callback result into a trap
        STDOUT.flush()
        STDERR.flush()
    STDOUT.active = STDERR.active = False


@contextmanager
def callback_scope() -> Iterator[None]:
    """Route output to the host log for the duration of one callback."""
    begin_callback()
    try:
        yield
    finally:
        end_callback()
