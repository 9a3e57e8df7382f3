"""The ``workspace-read`` / ``workspace-write`` host functions: a per-channel key-value store.

Paths are relative keys such as ``state/offset``: absolute paths, ``..`` segments, NUL, backslashes,
empty segments and paths over 256 bytes are refused with a WIT error; values over 1 MiB are refused, and so are
writes past 4 MiB in one callback or past 32 MiB for the channel's whole workspace (counted conservatively: a
rewrite counts its new size until it is committed).
Keys are namespaced per channel (one ``Workspace`` per channel; the durable store keys rows by channel).

Consistency: a callback reads from a snapshot taken when it starts and buffers its writes; on success the
writes are committed atomically under the channel's lock, on failure they are dropped. Commits use
optimistic concurrency: a key the callback read and then wrote must not have been changed by another
commit since the snapshot, otherwise the commit is refused with ``WorkspaceConflict`` and the caller
re-runs the callback (no lost update). Blind writes (written without reading) never conflict.
Paths listed in ``durable_workspace_paths`` (exact, or a prefix ending in ``/``) are persisted through
the durable backend (the message log) in the same commit as the callback's messages; other paths live in
memory only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..runtime.linker import GuestFault
from ..state.leases import COMMIT_FENCE

if TYPE_CHECKING:
    from ..messages.model import NewEntry
    from ..state.leases import Fence

MAX_PATH_BYTES = 256
MAX_VALUE_BYTES = 1024 * 1024
MAX_WRITES_PER_CALLBACK = 1000
MAX_CALLBACK_WRITE_BYTES = 4 * 1024 * 1024
"""Bytes of values one callback may write (4 MiB): 1000 writes of 1 MiB each would be 1 GiB of host memory."""
MAX_CHANNEL_BYTES = 32 * 1024 * 1024
"""Bytes of paths and values a channel's workspace may hold in all (32 MiB, in host memory and on disk)."""


def _size(path: str, value: str) -> int:
    return len(path.encode("utf-8")) + len(value.encode("utf-8"))


class WorkspaceConflict(Exception):
    """Another commit changed a key this callback read and wrote; re-run the callback."""


class DurableBackend(Protocol):
    """Where durable paths live: the message log (``messages.log.MessageLog``), so a callback's durable writes and
    the messages it emitted commit in one transaction."""

    def load_workspace(self, instance: str) -> dict[str, str]: ...
    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: Fence | None = None) -> list[NewEntry]: ...


def validate_path(path: str) -> str:
    """Return ``path`` if it is an acceptable workspace key, else raise ``GuestFault``."""
    if not path:
        raise GuestFault("workspace path is empty")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise GuestFault(f"workspace path longer than {MAX_PATH_BYTES} bytes")
    if "\x00" in path:
        raise GuestFault("workspace path contains NUL")
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise GuestFault("workspace path must be relative")
    parts = path.split("/")
    if any(p in ("..", ".") for p in parts):
        raise GuestFault("workspace path may not contain '.' or '..' segments")
    if any(p == "" for p in parts):
        raise GuestFault("workspace path has an empty segment")
    return path


class Workspace:
    """One channel's workspace: committed values with per-key versions. Thread-safe."""

    def __init__(
        self, channel: str, durable_paths: Iterable[str] = (), backend: DurableBackend | None = None
    ) -> None:
        self.channel = channel
        self._durable = tuple(durable_paths)
        self._backend = backend
        self._lock = threading.Lock()
        self._values: dict[str, str] = backend.load_workspace(channel) if backend is not None else {}
        self._versions: dict[str, int] = dict.fromkeys(self._values, 0)
        self.total_bytes = sum(_size(k, v) for k, v in self._values.items())
        """Bytes of paths and values held (the :data:`MAX_CHANNEL_BYTES` quota)."""
        self._clock = 0

    def is_durable(self, path: str) -> bool:
        return any(path == d or (d.endswith("/") and path.startswith(d)) for d in self._durable)

    def snapshot(self) -> tuple[dict[str, str], dict[str, int], int]:
        with self._lock:
            return dict(self._values), dict(self._versions), self.total_bytes

    def get(self, path: str) -> str | None:
        with self._lock:
            return self._values.get(path)

    def reload(self) -> None:
        """Take the durable values from the backend again: another process committed them (a poller's lease moved
        here, ``channels.poll_lease``). Changed keys get a new version, so a callback that read the old value
        conflicts. Blocking (a database read)."""
        if self._backend is None:
            return
        fresh = {k: v for k, v in self._backend.load_workspace(self.channel).items() if self.is_durable(k)}
        with self._lock:
            self._clock += 1
            for key in [k for k in self._values if self.is_durable(k) and k not in fresh]:
                self.total_bytes -= _size(key, self._values.pop(key))
                self._versions[key] = self._clock
            for key, value in fresh.items():
                old = self._values.get(key)
                if old == value:
                    continue
                self.total_bytes += _size(key, value) - (_size(key, old) if old is not None else 0)
                self._values[key] = value
                self._versions[key] = self._clock

    def commit(self, txn: WorkspaceTxn, entries: Sequence[NewEntry] = ()) -> list[NewEntry]:
        """Apply ``txn``'s writes atomically, with ``entries`` (messages for the log) in the same durable
        transaction; return the entries the backend appended (duplicates dropped; all of them without a
        backend). Raises WorkspaceConflict (see module docstring), before anything is written."""
        if not txn.writes and not entries:
            return []
        with self._lock:
            for key in txn.reads.keys() & txn.writes.keys():
                if self._versions.get(key, -1) != txn.reads[key]:
                    raise WorkspaceConflict(key)
            durable = {k: v for k, v in txn.writes.items() if self.is_durable(k)}
            appended = list(entries)
            if (durable or entries) and self._backend is not None:
                # a poller's commit carries its lease's fencing token (``channels.poll_lease``): LeaseLost, nothing
                # applied, once another process holds the lease
                source = COMMIT_FENCE.get()
                appended = self._backend.commit(self.channel, durable, entries, time.time(),
                                                fence=source.fence if source is not None else None)
            self._clock += 1
            for key, value in txn.writes.items():
                old = self._values.get(key)
                self.total_bytes += _size(key, value) - (_size(key, old) if old is not None else 0)
                self._values[key] = value
                self._versions[key] = self._clock
            return appended


@dataclass
class WorkspaceTxn:
    """One callback's view: a snapshot, the versions of keys it read, and its buffered writes."""

    values: dict[str, str]
    versions: dict[str, int]
    reads: dict[str, int] = field(default_factory=dict)
    writes: dict[str, str] = field(default_factory=dict)
    base_bytes: int = 0
    """The workspace's size when the callback started; with ``written`` it bounds the quota."""
    written: int = 0
    """Bytes of values written by this callback (:data:`MAX_CALLBACK_WRITE_BYTES`)."""

    @classmethod
    def begin(cls, workspace: Workspace) -> WorkspaceTxn:
        values, versions, total = workspace.snapshot()
        return cls(values=values, versions=versions, base_bytes=total)

    def read(self, path: str) -> str | None:
        validate_path(path)
        if path in self.writes:
            return self.writes[path]
        self.reads.setdefault(path, self.versions.get(path, -1))
        return self.values.get(path)

    def write(self, path: str, content: str) -> None:
        validate_path(path)
        if len(content.encode("utf-8")) > MAX_VALUE_BYTES:
            raise GuestFault(f"workspace value larger than {MAX_VALUE_BYTES} bytes")
        if path not in self.writes and len(self.writes) >= MAX_WRITES_PER_CALLBACK:
            raise GuestFault(f"more than {MAX_WRITES_PER_CALLBACK} workspace writes in one callback")
        size = len(content.encode("utf-8"))
        if self.written + size > MAX_CALLBACK_WRITE_BYTES:
            raise GuestFault(f"more than {MAX_CALLBACK_WRITE_BYTES} bytes of workspace writes in one callback")
        if self.base_bytes + self.written + size + len(path) > MAX_CHANNEL_BYTES:
            raise GuestFault(f"the workspace would hold more than {MAX_CHANNEL_BYTES} bytes")
        self.written += size
        self.writes[path] = content

