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

Durable commits leave the callback's lane at once (group commit; issue 8's speed target). ``stage`` checks the
conflicts, applies the writes to the in-memory values at once (an *overlay* of not-yet-durable writes: the next
callback of the channel starts against it, so it sees every earlier callback's writes) and queues the durable part;
it returns a future resolved when the writes and messages are on disk. One flusher per channel at a time (threads
of a shared pool, :data:`FLUSH_THREADS`) takes everything the channel staged meanwhile, in order, and writes it in
ONE backend commit (the workspace writes merged, later over earlier; the messages in staging order), so commits of
one channel keep their order and the backend's own group commit (``messages.group_commit``) lets the flushers of
several channels and the agents' replies share a transaction and an fsync. Whoever must not answer before the
writes are durable (a webhook's 200, a poll cursor's next use by the platform) waits for the future.
A commit that only writes memory-only paths resolves at once, unless commits of the channel are still queued: then
it queues behind them (it may have read their values, and it is undone with them). A callback that wrote nothing
and emitted nothing resolves at once, whatever is queued (an on-respond must not wait for other webhooks' fsync);
what it read may be staged values not durable yet, as a read of another transaction's committed but unsynced
write would be.
A failed backend commit fails every staged commit of the channel from the first one it held (all of them were
built on its writes): their futures raise :class:`CommitFailed`, their writes are undone in the overlay (newest
first), and every transaction begun before the failure conflicts at commit (``epoch``), so its callback is re-run
against the rolled-back values.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import AirlockError, LeaseLost, StateUnavailable
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
FLUSH_THREADS = 8
"""Threads writing staged commits to the durable backend, shared by every channel (a channel uses one at a time;
with more busy channels than threads, a channel waits for a free one and then writes all it staged meanwhile)."""
MAX_MERGED_COMMITS = 256
"""Staged commits of one channel merged into one backend commit at most."""
MAX_MERGED_BYTES = 8 * 1024 * 1024
"""Bytes of durable values merged into one backend commit at most (a single larger commit still goes alone)."""

log = logging.getLogger("airlock.workspace")
_flushers = ThreadPoolExecutor(max_workers=FLUSH_THREADS, thread_name_prefix="airlock-commit")


def _size(path: str, value: str) -> int:
    return len(path.encode("utf-8")) + len(value.encode("utf-8"))


class WorkspaceConflict(Exception):
    """Another commit changed a key this callback read and wrote; re-run the callback."""


class CommitFailed(AirlockError):
    """The durable backend could not write a staged commit (or one it was built on); nothing of it was kept and
    nothing may be acknowledged (a webhook answers 503). The message is generic; the cause is in the host log.
    ``unavailable``: the cause was the state database being unreachable (``errors.StateUnavailable``)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


@dataclass
class _Staged:
    """One staged commit: its durable writes and messages, how to undo its overlay writes, its future."""

    durable: dict[str, str]
    entries: list[NewEntry]
    undo: list[tuple[str, str | None, int | None]]
    """``(path, value before, version before)`` of every write, in write order (None: the path was absent)."""
    future: Future[list[NewEntry]]
    fence: Fence | None = None
    """The lease that fences it (``state.leases.COMMIT_FENCE`` when it was staged): a poller's cursor commit."""

    @property
    def size(self) -> int:
        return sum(_size(k, v) for k, v in self.durable.items())


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
    """One channel's workspace: committed values (with the staged overlay) and per-key versions. Thread-safe."""

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
        self.epoch = 0
        """Bumped when staged commits are rolled back: a transaction begun before conflicts (module docstring)."""
        self._staged: list[_Staged] = []
        self._flushing: list[_Staged] = []
        self._flusher_running = False

    def is_durable(self, path: str) -> bool:
        return any(path == d or (d.endswith("/") and path.startswith(d)) for d in self._durable)

    def snapshot(self) -> tuple[dict[str, str], dict[str, int], int, int]:
        """``(values, versions, total bytes, epoch)``, consistent with each other."""
        with self._lock:
            return dict(self._values), dict(self._versions), self.total_bytes, self.epoch

    def get(self, path: str) -> str | None:
        with self._lock:
            return self._values.get(path)

    def reload(self) -> None:
        """Take the durable values from the backend again: another process committed them (a poller's lease moved
        here, ``channels.poll_lease``). Changed keys get a new version, so a callback that read the old value
        conflicts. Blocking (a database read)."""
        if self._backend is None:
            return
        # staged commits first: what they write is what the database will say (a failed one was undone in memory;
        # the database has the values from before it)
        with contextlib.suppress(CommitFailed):
            self.flushed().result()
        fresh = {k: v for k, v in self._backend.load_workspace(self.channel).items() if self.is_durable(k)}
        with self._lock:
            # keys of commits staged since: this process's newer values, on their way to the database
            pending = {k for item in self._staged + self._flushing for k in item.durable}
            self._reload_locked(fresh, pending)

    def _reload_locked(self, fresh: Mapping[str, str], pending: set[str]) -> None:
        """Replace the durable values but ``pending`` by ``fresh`` (the caller holds the lock)."""
        self._clock += 1
        for key in [k for k in self._values if self.is_durable(k) and k not in fresh and k not in pending]:
            self.total_bytes -= _size(key, self._values.pop(key))
            self._versions[key] = self._clock
        for key, value in fresh.items():
            old = self._values.get(key)
            if old == value or key in pending:
                continue
            self.total_bytes += _size(key, value) - (_size(key, old) if old is not None else 0)
            self._values[key] = value
            self._versions[key] = self._clock

    def commit(self, txn: WorkspaceTxn, entries: Sequence[NewEntry] = ()) -> list[NewEntry]:
        """:meth:`stage` and wait until durable: the entries the backend appended (duplicates dropped; all of them
        without a backend). Raises WorkspaceConflict before anything is written, CommitFailed after."""
        return self.stage(txn, entries).result()

    def stage(self, txn: WorkspaceTxn, entries: Sequence[NewEntry] = ()) -> Future[list[NewEntry]]:
        """Apply ``txn``'s writes to the values now and queue them, with ``entries`` (messages for the log), for
        one durable transaction (module docstring). The future gives the entries the backend appended, or raises
        :class:`CommitFailed`. Raises WorkspaceConflict (module docstring) before anything is applied."""
        fut: Future[list[NewEntry]] = Future()
        if not txn.writes and not entries:  # nothing to apply or to order (on-respond, most polls): done now
            fut.set_result([])
            return fut
        with self._lock:
            if txn.epoch != self.epoch:
                raise WorkspaceConflict("(staged commits were rolled back)")
            for key in txn.reads.keys() & txn.writes.keys():
                if self._versions.get(key, -1) != txn.reads[key]:
                    raise WorkspaceConflict(key)
            durable = {k: v for k, v in txn.writes.items() if self.is_durable(k)}
            undo = self._apply(txn.writes)
            backend_work = self._backend is not None and bool(durable or entries)
            if not backend_work and (self._backend is None or not (self._staged or self._flushing)):
                fut.set_result(list(entries))  # nothing to write, nothing queued to wait for
                return fut
            # a poller's commit carries its lease's fencing token (``channels.poll_lease``): LeaseLost, nothing of
            # its batch applied, once another process holds the lease
            source = COMMIT_FENCE.get()
            self._staged.append(_Staged(durable, list(entries), undo, fut,
                                        source.fence if source is not None else None))
            if not self._flusher_running:
                self._flusher_running = True
                _flushers.submit(self._flush)
        return fut

    def flushed(self) -> Future[list[NewEntry]]:
        """A future resolved once every commit staged so far is durable, or raising :class:`CommitFailed` if one
        failed (a shutdown waits for it before the backend is closed)."""
        fut: Future[list[NewEntry]] = Future()
        with self._lock:
            if self._backend is None or not (self._staged or self._flushing):
                fut.set_result([])
            else:  # an empty commit queued behind the others: done when they are
                self._staged.append(_Staged({}, [], [], fut))
        return fut

    def _apply(self, writes: Mapping[str, str]) -> list[tuple[str, str | None, int | None]]:
        """Write into the values (the caller holds the lock); return the undo record."""
        self._clock += 1
        undo: list[tuple[str, str | None, int | None]] = []
        for key, value in writes.items():
            old = self._values.get(key)
            undo.append((key, old, self._versions.get(key)))
            self.total_bytes += _size(key, value) - (_size(key, old) if old is not None else 0)
            self._values[key] = value
            self._versions[key] = self._clock
        return undo

    def _flush(self) -> None:
        """The channel's flusher: write everything staged, one merged backend commit at a time, until none is left."""
        while True:
            with self._lock:
                batch = self._take()
                if not batch:
                    self._flusher_running = False
                    return
            durable: dict[str, str] = {}
            entries: list[NewEntry] = []
            for item in batch:
                durable.update(item.durable)
                entries.extend(item.entries)
            try:
                appended = self._commit_batch(durable, entries, batch[0].fence) if durable or entries else []
            except Exception as exc:  # storage failure (or a host bug): fail the batch and all built on it
                self._fail(batch, exc)
                continue
            kept = {e.id for e in appended}
            with self._lock:
                self._flushing = []
            for item in batch:
                item.future.set_result([e for e in item.entries if e.id in kept])

    def _commit_batch(self, durable: Mapping[str, str], entries: Sequence[NewEntry],
                      fence: Fence | None) -> list[NewEntry]:
        assert self._backend is not None  # only channels with a backend stage commits
        if fence is None:  # unfenced: as every backend was called before leases (bench/memlog.py, test doubles)
            return self._backend.commit(self.channel, durable, entries, time.time())
        return self._backend.commit(self.channel, durable, entries, time.time(), fence=fence)

    def _take(self) -> list[_Staged]:
        """The next batch (the caller holds the lock): staged commits in order, within the merge limits."""
        batch: list[_Staged] = []
        size = 0
        while self._staged and len(batch) < MAX_MERGED_COMMITS:
            size += self._staged[0].size
            if batch and (size > MAX_MERGED_BYTES or self._staged[0].fence != batch[0].fence):
                break  # a fenced commit is never merged with commits of another fence (or none)
            batch.append(self._staged.pop(0))
        self._flushing = batch
        return batch

    def _fail(self, batch: list[_Staged], exc: Exception) -> None:
        with self._lock:
            chain = batch + self._staged
            self._staged, self._flushing = [], []
            for item in reversed(chain):
                for key, old, version in reversed(item.undo):
                    new = self._values.get(key)
                    if new is not None:
                        self.total_bytes -= _size(key, new)
                    if old is None:
                        self._values.pop(key, None)
                        self._versions.pop(key, None)
                    else:
                        self.total_bytes += _size(key, old)
                        self._values[key] = old
                        self._versions[key] = version if version is not None else 0
            self.epoch += 1
        # a poller whose lease moved to another process (``channels.poll_lease``) is expected now and then
        log.log(logging.WARNING if isinstance(exc, LeaseLost) else logging.ERROR,
                "[%s] durable commit failed, %d staged commit(s) rolled back: %s: %s", self.channel, len(chain),
                type(exc).__name__, exc)
        down = isinstance(exc, StateUnavailable)
        for item in chain:
            item.future.set_exception(CommitFailed("the message log could not store this callback's writes",
                                                   unavailable=down))


@dataclass
class WorkspaceTxn:
    """One callback's view: a snapshot, the versions of keys it read, and its buffered writes."""

    values: dict[str, str]
    versions: dict[str, int]
    reads: dict[str, int] = field(default_factory=dict)
    writes: dict[str, str] = field(default_factory=dict)
    base_bytes: int = 0
    """The workspace's size when the callback started; with ``written`` it bounds the quota."""
    epoch: int = 0
    """The workspace's ``epoch`` when the callback started (a rollback since then makes the commit conflict)."""
    written: int = 0
    """Bytes of values written by this callback (:data:`MAX_CALLBACK_WRITE_BYTES`)."""

    @classmethod
    def begin(cls, workspace: Workspace) -> WorkspaceTxn:
        values, versions, total, epoch = workspace.snapshot()
        return cls(values=values, versions=versions, base_bytes=total, epoch=epoch)

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

