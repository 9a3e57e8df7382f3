"""The control socket: ``HOME/control.sock``, a unix socket (mode 0600, in the 0700 home) served by a running
gateway for the operator's CLI on the same machine. HTTP/1.1 with JSON bodies:

    GET  /v1/channels                          {"pid", "channels": [doc, ...]}  (``Operations.doc``)
    POST /v1/channels/{name}/{action}  {"version"?: "..."}
         action: enable | disable | install | upgrade | rollback | reload | remove   -> doc
    POST /v1/secrets/changed                   {"changed": [doc, ...]}
    POST /v1/config/reload                     {"applied": [...], "restart_needed": [...]} (as SIGHUP)
    POST /v1/channels/{name}/sync      {"restart"?: bool}  -> doc, or {"name", "removed": true}
    POST /v1/sync                              {"channels": [doc, ...], "changed": [doc, ...]}

The two ``sync`` routes are how the supervisor of ``airlock serve --workers N`` tells its other workers what
worker 0 changed in the home (``workers.fanout``): the running channel is made to match the home
(``Operations.sync``), nothing is written. Each worker serves them on a private socket ``HOME/run/worker-<i>.sock``
(same mode and peer check); the supervisor serves ``HOME/control.sock`` and forwards to them.

Errors: ``{"error": "<one line>"}`` with the operation's status (400, 404, 409). Who may connect: the socket
file's mode, and the peer's uid (``SO_PEERCRED``) must be this process's (or root's); others get 403.

A socket path longer than :data:`MAX_DIRECT_PATH` (the kernel's limit is 108 bytes with the NUL) is bound and
reached through ``/proc/self/fd/<home directory fd>/control.sock``, so a deep home works too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..channels.operations import LifecycleError, Operations
from ..errors import ConfigError

__all__ = ["MAX_BODY_BYTES", "MAX_DIRECT_PATH", "SOCKET_NAME", "ControlServer", "bind_private", "error",
           "owner_only", "socket_address", "worker_socket"]

log = logging.getLogger("airlock.control")

SOCKET_NAME = "control.sock"
MAX_DIRECT_PATH = 100
"""Longest socket path bound directly (bytes); a longer one goes through ``/proc/self/fd`` (module docstring)."""
MAX_BODY_BYTES = 4096
"""Largest request body (the operations take a version name at most)."""
ACTIONS = ("enable", "disable", "install", "upgrade", "rollback", "reload", "remove")

ConfigReload = Callable[[], Awaitable[dict[str, Any]]]


def worker_socket(home: Path, index: int) -> Path:
    """``HOME/run/worker-<index>.sock``: worker ``index``'s private control socket (module docstring)."""
    return home / "run" / f"worker-{index}.sock"


@contextlib.contextmanager
def socket_address(path: Path) -> Any:
    """The address to bind or connect for ``path`` (module docstring), valid inside the ``with``."""
    if len(os.fsencode(str(path))) <= MAX_DIRECT_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _peer_uid(request: web.Request) -> int | None:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


class ControlServer:
    """Serve ``Operations`` (and a config reload) on ``home/control.sock``. ``await start()``, ``await stop()``."""

    def __init__(self, home: Path, operations: Operations, reload_config: ConfigReload | None = None, *,
                 path: Path | None = None) -> None:
        """``path``: the socket (default ``home/control.sock``; a worker's: :func:`worker_socket`)."""
        self.path = path if path is not None else home / SOCKET_NAME
        self.operations = operations
        self.reload_config = reload_config
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind the socket. ConfigError when another gateway answers on it (a stale file is replaced)."""
        sock = await bind_private(self.path)
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[owner_only])
        app.router.add_get("/v1/channels", self._channels)
        app.router.add_post("/v1/channels/{name}/sync", self._sync_one)
        app.router.add_post("/v1/channels/{name}/{action}", self._action)
        app.router.add_post("/v1/secrets/changed", self._secrets)
        app.router.add_post("/v1/config/reload", self._reload)
        app.router.add_post("/v1/sync", self._sync_all)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("control socket %s", self.path)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _channels(self, request: web.Request) -> web.Response:
        ops = self.operations
        docs = [ops.doc(n) for n in sorted(set(ops.manager.slots) | set(ops.store.names()))]
        return web.json_response({"pid": os.getpid(), "channels": docs})

    async def _action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ACTIONS:
            return error(404, f"unknown action {action[:32]!r} ({', '.join(ACTIONS)})")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return error(400, "the body is not JSON")
        version = body.get("version") if isinstance(body, dict) else None
        if version is not None and not isinstance(version, str):
            return error(400, "version must be a string")
        ops = self.operations
        try:
            if action == "upgrade":
                if version is None:
                    return error(400, "upgrade needs a version")
                doc = await ops.upgrade(name, version)
            elif action == "rollback":
                doc = await ops.rollback(name, version)
            else:
                doc = await getattr(ops, action)(name)
        except LifecycleError as exc:
            return error(exc.status, str(exc))
        except ConfigError as exc:
            return error(400, " ".join(str(exc).split()))
        return web.json_response(doc)

    async def _secrets(self, request: web.Request) -> web.Response:
        return web.json_response(await self.operations.secrets_changed())

    async def _reload(self, request: web.Request) -> web.Response:
        if self.reload_config is None:
            return error(404, "this gateway has no host config to reload")
        try:
            return web.json_response(await self.reload_config())
        except ConfigError as exc:
            return error(400, " ".join(str(exc).split()))

    async def _sync_one(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return error(400, "the body is not JSON")
        restart = body.get("restart", False) if isinstance(body, dict) else False
        if not isinstance(restart, bool):
            return error(400, "restart must be true or false")
        try:
            return web.json_response(await self.operations.sync(request.match_info["name"], restart=restart))
        except LifecycleError as exc:
            return error(exc.status, str(exc))
        except ConfigError as exc:
            return error(400, " ".join(str(exc).split()))

    async def _sync_all(self, request: web.Request) -> web.Response:
        return web.json_response(await self.operations.sync_all())


async def bind_private(path: Path) -> socket.socket:
    """A unix socket bound on ``path``, mode 0600. ConfigError when something answers there already (another
    gateway); a stale file (its gateway was killed) is replaced."""
    if path.exists() or path.is_symlink():
        if await _answers(path):
            raise ConfigError(f"{path}: another gateway serves this home")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with socket_address(path) as address:
            sock.bind(address)
        os.chmod(path, 0o600)  # the 0700 home already keeps others out while it is looser
    except BaseException:
        sock.close()
        raise
    return sock


def error(status: int, message: str) -> web.Response:
    """The error answer: ``{"error": message}`` with ``status``."""
    return web.json_response({"error": message}, status=status)


@web.middleware
async def owner_only(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Refuse (403) a peer whose uid is neither this process's nor root's (``SO_PEERCRED``)."""
    uid = _peer_uid(request)
    if uid is None or uid not in (os.getuid(), 0):
        log.warning("control socket: refused a peer with uid %s", uid)
        return error(403, "forbidden")
    return await handler(request)


async def _answers(path: Path) -> bool:
    """True if something accepts connections on the unix socket ``path``."""
    def probe() -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            with socket_address(path) as address:
                s.connect(address)
            return True
        except OSError:
            return False
        finally:
            s.close()

    return await asyncio.to_thread(probe)
