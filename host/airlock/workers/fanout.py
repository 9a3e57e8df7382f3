"""The supervisor's control socket: ``airlock channels ...`` / ``secrets ...`` and SIGHUP reach every worker of
``airlock serve --workers N`` (issue 12; the live lifecycle of issue 9, item 3).

The supervisor serves ``HOME/control.sock`` with the routes of ``control.server`` (same mode 0600 and peer-uid
check) and forwards each request to its workers' private sockets (``HOME/run/worker-<i>.sock``):

- an operation that writes the home (``POST /v1/channels/{name}/{action}``) goes to worker 0 first, which changes
  the home and its own channels exactly as a one-process gateway does (``channels.operations``); only if it
  succeeded, the other ready workers are told to follow the home (``POST /v1/channels/{name}/sync``, in
  parallel). Worker 0 goes first because the home must hold the change before the others read it, and a refused
  operation (a version that does not start) must change nothing anywhere;
- ``POST /v1/secrets/changed``: worker 0, then the others (each starts or stops the channels concerned);
- ``POST /v1/config/reload``: every ready worker reads the host config again;
- ``GET /v1/channels``: worker 0's answer.

The answer is worker 0's, with ``"workers": [{"index", "pid", "state", "status" | "error" | "note"}]`` added:
what each worker did. A worker that is not ready (starting, restarting, crash loop) is not asked: it reads the
home when it starts; one that was starting while a change was made is told to sync every channel once it is ready
(``on_ready``), since it may have read the home before the change. Worker 0 not ready: 503, nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from ..control.client import ControlClient, ControlRefused
from ..control.server import MAX_BODY_BYTES, SOCKET_NAME, bind_private, error, owner_only, worker_socket
from ..errors import ConfigError

__all__ = ["Fanout", "WorkerView"]

log = logging.getLogger("airlock.workers")

WRITE_ACTIONS = ("enable", "disable", "install", "upgrade", "rollback", "reload", "remove")
"""The actions of ``control.server`` that write the home (worker 0 first, the others follow)."""


class WorkerView(Protocol):
    """What the fan-out reads of a supervisor's worker slot (``supervisor._Slot``)."""

    index: int
    state: str
    spawned_at: float

    @property
    def pid(self) -> int | None: ...


class Fanout:
    """Serve ``HOME/control.sock`` for a supervisor (module docstring): ``await start()``, ``await stop()``."""

    def __init__(self, home: Path, slots: Sequence[WorkerView]) -> None:
        self.home = home
        self.path = home / SOCKET_NAME
        self.slots = slots
        self.changed_at = 0.0
        """Monotonic time of the last change forwarded: a worker spawned before it and not told syncs at ready."""
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()  # one operation at a time, as in one process (``channels.operations``)

    async def start(self) -> None:
        sock = await bind_private(self.path)
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[owner_only])
        app.router.add_get("/v1/channels", self._channels)
        app.router.add_post("/v1/channels/{name}/{action}", self._action)
        app.router.add_post("/v1/secrets/changed", self._secrets)
        app.router.add_post("/v1/config/reload", self._reload)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("control socket %s (forwarded to %d workers)", self.path, len(self.slots))

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            self.path.unlink(missing_ok=True)

    # ---- routes -------------------------------------------------------------------------------------------

    async def _channels(self, request: web.Request) -> web.Response:
        return await self._first("GET", "/v1/channels", None, follow=None)

    async def _action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in WRITE_ACTIONS:
            return error(404, f"unknown action {action[:32]!r} ({', '.join(WRITE_ACTIONS)})")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return error(400, "the body is not a JSON object")
        follow = (f"/v1/channels/{name}/sync", {"restart": action == "reload"})
        return await self._first("POST", f"/v1/channels/{name}/{action}", body, follow=follow)

    async def _secrets(self, request: web.Request) -> web.Response:
        return await self._first("POST", "/v1/secrets/changed", {}, follow=("/v1/secrets/changed", {}))

    async def _reload(self, request: web.Request) -> web.Response:
        ready = [s for s in self.slots if s.state == "ready"]
        if not ready:
            return error(503, "no worker is ready; try again in a few seconds")
        answers = await asyncio.gather(*(self._ask(s, "POST", "/v1/config/reload", {}) for s in ready))
        docs = dict(zip((s.index for s in ready), answers, strict=True))
        first = next((d for d in answers if "error" not in d), answers[0])
        return web.json_response({**first, "workers": self._report(docs)})

    # ---- forwarding ---------------------------------------------------------------------------------------

    async def _first(self, method: str, route: str, body: dict[str, Any] | None,
                     follow: tuple[str, dict[str, Any]] | None) -> web.Response:
        """Ask worker 0; if it succeeded and ``follow`` is given, then the other ready workers."""
        async with self._lock:
            head = self.slots[0]
            if head.state != "ready":
                return error(503, f"worker 0 (the agent side) is {head.state}; try again in a few seconds")
            if follow is not None:
                self.changed_at = time.monotonic()
            try:
                doc = await asyncio.to_thread(ControlClient(worker_socket(self.home, 0)).call, method, route, body)
            except ControlRefused as exc:
                return error(exc.status, str(exc))
            except ConfigError:
                return error(503, "worker 0 (the agent side) did not answer; try again in a few seconds")
            docs: dict[int, dict[str, Any]] = {0: doc}
            if follow is not None:
                self.changed_at = time.monotonic()  # after worker 0 wrote the home: a worker starting now reads it
                others = [s for s in self.slots[1:] if s.state == "ready"]
                answers = await asyncio.gather(*(self._ask(s, "POST", *follow) for s in others))
                docs.update(zip((s.index for s in others), answers, strict=True))
            return web.json_response({**doc, "workers": self._report(docs)})

    async def _ask(self, slot: WorkerView, method: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """Worker ``slot``'s answer, or ``{"error": one line}`` (refused, or it did not answer)."""
        try:
            return await asyncio.to_thread(ControlClient(worker_socket(self.home, slot.index)).call, method, route,
                                           body)
        except ControlRefused as exc:
            log.error("worker %d: %s %s refused: %s", slot.index, method, route, exc)
            return {"error": str(exc)}
        except ConfigError:
            log.warning("worker %d did not answer %s %s (it gets the change from the home at its start)",
                        slot.index, method, route)
            return {"error": "did not answer (it gets the change from the home at its start)"}

    def _report(self, docs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for slot in self.slots:
            row: dict[str, Any] = {"index": slot.index, "pid": slot.pid, "state": slot.state}
            doc = docs.get(slot.index)
            if doc is None:
                row["note"] = "not ready: it reads the home when it starts"
            elif "error" in doc:
                row["error"] = doc["error"]
            else:
                row["status"] = doc.get("status") or ("removed" if doc.get("removed") else "ok")
            out.append(row)
        return out

    async def on_ready(self, slot: WorkerView) -> None:
        """``slot`` became ready: if a change was forwarded after it was spawned, it may have read the home before
        the change, so have it sync every channel (``Operations.sync_all``)."""
        if self.changed_at <= slot.spawned_at:
            return
        async with self._lock:
            doc = await self._ask(slot, "POST", "/v1/sync", {})
        if "error" not in doc:
            log.info("worker %d brought in line with the home (changed while it started)", slot.index)
