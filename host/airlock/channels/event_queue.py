"""How websocket frames reach components of the ``near:agent`` worlds: IronClaw's event-queue contract.

Source: IronClaw's channel host (nearai/ironclaw, ``src/channels/wasm/wrapper.rs``: ``WEBSOCKET_EVENT_QUEUE_*``,
``start_websocket_runtime``; ``src/channels/wasm/host.rs``: ``append_json_text_queue``, ``move_json_text_queue``),
which its Discord, WeCom and Feishu channels are written against. Airlock's own world keeps its delivery (one
synthetic ``on-http-request`` per frame, ``socket_runtime.frame_request``).

1. Each frame the driver forwards (its raw text) is appended to a JSON array of strings at
   :data:`QUEUE_PATH` in the channel's workspace. IronClaw's key is ``channels/<name>/state/gateway_event_queue``;
   Airlock's workspace is already one namespace per channel, so the guest-visible path is the same. The array is
   bounded: at most :data:`MAX_QUEUE_ITEMS` frames and :data:`MAX_QUEUE_BYTES` of JSON, the oldest dropped
   (counted in ``SocketStatus.frames_dropped``). Normally nothing is dropped: delivery waits while the queue is
   full until the guest has taken a batch, so a slow guest slows reading (the socket's own backpressure) instead.
2. Then ``on-poll`` is driven: the host moves the whole queue to :data:`BATCH_PATH` (the queue becomes ``[]``)
   and calls ``on-poll``, again while frames keep arriving, one poll at a time on the channel's poll lane (so
   never beside a timer poll). The guest reads the batch there, handles it and clears it (writes ``[]``).
   An ``on-poll`` held back by the emit rate limit (nothing it did was applied, ``errors.EmitRateLimited``) runs
   again on the same batch after the wait it was given, since a platform does not redeliver a websocket frame.
   Otherwise, as in IronClaw, a batch the guest did not clear (its ``on-poll`` failed) is replaced by the next
   one; the host logs how many frames were lost that way.
3. Durability is the capabilities file's choice: IronClaw keeps the channel workspace in memory, and so does
   Airlock unless ``durable_workspace_paths`` covers these paths. A durable queue left over from the last run is
   handed to the guest right after the channel starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..capabilities.workspace import MAX_VALUE_BYTES, Workspace, WorkspaceConflict, WorkspaceTxn
from ..runtime.engine import World

__all__ = [
    "BATCH_PATH",
    "MAX_QUEUE_BYTES",
    "MAX_QUEUE_ITEMS",
    "QUEUE_PATH",
    "EventQueue",
    "append_frame",
    "take_batch",
    "uses_event_queue",
]

log = logging.getLogger("airlock.websocket")

QUEUE_PATH = "state/gateway_event_queue"
BATCH_PATH = "state/gateway_event_queue_processing"
MAX_QUEUE_ITEMS = 100
"""IronClaw's ``WEBSOCKET_EVENT_QUEUE_MAX_ITEMS``."""
MAX_QUEUE_BYTES = MAX_VALUE_BYTES
"""The queue is one workspace value, so it keeps the workspace's value limit (1 MiB of JSON); a single frame larger
than that is dropped."""
HOST_COMMIT_ATTEMPTS = 5
"""A host-side queue update that keeps meeting a guest commit on the same key gives up after this many tries."""
STOP_WAIT_S = 70.0
"""How long stopping waits for an on-poll already running (it ends within its own callback timeout) before
cancelling the wait, so on-shutdown does not start beside it."""

T = TypeVar("T")


def uses_event_queue(world: World) -> bool:
    """True for the ``near:agent`` worlds (0.3.0, 0.3.1), whose components take websocket frames from the queue."""
    return world.host_interface.startswith("near:agent/")


def _frames(raw: str | None) -> list[str]:
    """The queue's frames; anything that is not a JSON array of strings counts as empty (a guest may have written
    something else there)."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _host_update(workspace: Workspace, update: Callable[[WorkspaceTxn], T]) -> T:
    """Run ``update`` on a fresh transaction and commit it; re-run on a conflict with a guest's commit."""
    for _ in range(HOST_COMMIT_ATTEMPTS):
        txn = WorkspaceTxn.begin(workspace)
        result = update(txn)
        try:
            workspace.commit(txn)
        except WorkspaceConflict:
            continue
        return result
    raise WorkspaceConflict(QUEUE_PATH)


def append_frame(workspace: Workspace, text: str) -> tuple[int, int]:
    """Append one frame to the queue (oldest dropped beyond the limits): ``(frames queued, frames dropped)``.

    Blocking (a durable queue writes SQLite): call it from a worker thread. Raises ``WorkspaceConflict`` after
    :data:`HOST_COMMIT_ATTEMPTS` conflicts."""

    if len(json.dumps([text]).encode("utf-8")) > MAX_QUEUE_BYTES:
        log.warning("[%s] a websocket frame of %d bytes does not fit the event queue: dropped", workspace.channel,
                    len(text.encode("utf-8")))
        return len(_frames(workspace.get(QUEUE_PATH))), 1

    def update(txn: WorkspaceTxn) -> tuple[int, int]:
        frames = [*_frames(txn.read(QUEUE_PATH)), text]
        dropped = max(0, len(frames) - MAX_QUEUE_ITEMS)
        frames = frames[dropped:]
        encoded = json.dumps(frames)
        while frames and len(encoded.encode("utf-8")) > MAX_QUEUE_BYTES:
            frames.pop(0)
            dropped += 1
            encoded = json.dumps(frames)
        txn.write(QUEUE_PATH, encoded)
        return len(frames), dropped

    return _host_update(workspace, update)


def take_batch(workspace: Workspace) -> tuple[int, int]:
    """Move the queue to :data:`BATCH_PATH`: ``(frames moved, unconsumed frames of the previous batch replaced)``.
    Moves nothing (and writes nothing) when the queue is empty. Blocking, like :func:`append_frame`."""

    def update(txn: WorkspaceTxn) -> tuple[int, int]:
        frames = _frames(txn.read(QUEUE_PATH))
        if not frames:
            return 0, 0
        stale = len(_frames(txn.read(BATCH_PATH)))
        txn.write(BATCH_PATH, json.dumps(frames))
        txn.write(QUEUE_PATH, "[]")
        return len(frames), stale

    return _host_update(workspace, update)


Run = Callable[[Callable[[], T]], Awaitable[T]]


class EventQueue:
    """One ``near:agent`` channel's websocket delivery (see the module docstring). Lives on the event loop.

    ``run(fn)`` runs a blocking function on a worker thread; ``poll()`` runs one ``on-poll`` and dispatches what it
    emitted (the caller holds ``lane`` around it), returning ``None``, or the seconds to wait before running it
    again on the same batch (the emit rate held it back); ``lane`` is the channel's poll lane; ``on_drop(n)``
    counts frames dropped from the queue; ``wait_for_room()`` is awaited before each poll (the agent-side
    queue's backpressure, as before any guest run).
    """

    def __init__(self, channel: str, workspace: Workspace, *, run: Run[tuple[int, int]],
                 poll: Callable[[], Awaitable[float | None]], lane: asyncio.Lock,
                 on_drop: Callable[[int], None] = lambda n: None,
                 wait_for_room: Callable[[], Awaitable[None]] | None = None) -> None:
        self.channel = channel
        self.workspace = workspace
        self._run, self._poll, self._lane, self._on_drop = run, poll, lane, on_drop
        self._wait_for_room = wait_for_room
        self._lock = threading.Lock()  # host-side updates one at a time (only guest commits can conflict)
        self._queued = 0
        self._dirty = False
        self._taken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self.polls = 0

    def _locked(self, fn: Callable[[Workspace], tuple[int, int]]) -> Callable[[], tuple[int, int]]:
        def call() -> tuple[int, int]:
            with self._lock:
                return fn(self.workspace)
        return call

    async def deliver(self, text: str) -> None:
        """Queue one frame and make sure a poll will take it; waits while the queue is full."""
        while self._queued >= MAX_QUEUE_ITEMS and not self._stopping:
            self._taken.clear()
            self.kick()
            await self._taken.wait()
        queued, dropped = await self._run(self._locked(lambda ws: append_frame(ws, text)))
        self._queued = queued
        if dropped:
            self._on_drop(dropped)
            log.warning("[%s] websocket event queue full: %d oldest frame(s) dropped", self.channel, dropped)
        self.kick()

    def kick(self) -> None:
        """Drive polls until the queue is empty (a no-op task when it already is)."""
        self._dirty = True
        if not self._stopping and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain(), name=f"ws-queue-{self.channel}")

    async def _drain(self) -> None:
        while self._dirty and not self._stopping:
            self._dirty = False
            if self._wait_for_room is not None:
                await self._wait_for_room()
            async with self._lane:
                moved, stale = await self._run(self._locked(take_batch))
                self._queued = 0 if moved else self._queued
                self._taken.set()
                if not moved:
                    continue
                if stale:
                    self._on_drop(stale)
                    log.warning("[%s] %d frame(s) of the last batch were not consumed (its on-poll failed?) and "
                                "are replaced by the next batch", self.channel, stale)
                await self._poll_batch()
            self._dirty = True  # frames may have come while the poll ran: look again

    async def _poll_batch(self) -> None:
        """on-poll on the batch just taken, again after each wait the emit rate asks for (until stopping)."""
        while True:
            self.polls += 1
            wait = await self._poll()
            if wait is None or self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=wait)

    async def stop(self) -> None:
        """Stop driving polls: no new batch is taken; an on-poll already running is waited for (at most
        :data:`STOP_WAIT_S`)."""
        self._stopping = True
        self._stopped.set()
        self._taken.set()
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout=STOP_WAIT_S)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
