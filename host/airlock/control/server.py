"""The control socket: ``HOME/control.sock``, a unix socket (mode 0600, in the 0700 home) served by a running
gateway for the operator's CLI on the same machine. HTTP/1.1 with JSON bodies:

    GET  /v1/channels                          {"pid", "channels": [doc, ...]}  (``Operations.doc``)
    POST /v1/channels/{name}/{action}  {"version"?: "..."}
         action: enable | disable | install | upgrade | rollback | reload | remove   -> doc
    POST /v1/secrets/changed                   {"changed": [doc, ...]}
    POST /v1/config/reload                     {"applied": [...], "restart_needed": [...]} (as SIGHUP)

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

__all__ = ["MAX_BODY_BYTES", "MAX_DIRECT_PATH", "SOCKET_NAME", "ControlServer", "socket_address"]

log = logging.getLogger("airlock.control")

SOCKET_NAME = "control.sock"
MAX_DIRECT_PATH = 100
"""Longest socket path bound directly (bytes); a longer one goes through ``/proc/self/fd`` (module docstring)."""
MAX_BODY_BYTES = 4096
"""Largest request body (the operations take a version name at most)."""
ACTIONS = ("enable", "disable", "install", "upgrade", "rollback", "reload", "remove")

ConfigReload = Callable[[], Awaitable[dict[str, Any]]]


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

    def __init__(self, home: Path, operations: Operations, reload_config: ConfigReload | None = None) -> None:
        self.path = home / SOCKET_NAME
        self.operations = operations
        self.reload_config = reload_config
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind the socket. ConfigError when another gateway answers on it (a stale file is replaced)."""
        if self.path.exists() or self.path.is_symlink():
            if await _answers(self.path):
                raise ConfigError(f"{self.path}: another gateway serves this home")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_address(self.path) as address:
                sock.bind(address)
            os.chmod(self.path, 0o600)  # the 0700 home already keeps others out while it is looser
        except BaseException:
            sock.close()
            raise
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_owner_only])
        app.router.add_get("/v1/channels", self._channels)
        app.router.add_post("/v1/channels/{name}/{action}", self._action)
        app.router.add_post("/v1/secrets/changed", self._secrets)
        app.router.add_post("/v1/config/reload", self._reload)
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
            return _error(404, f"unknown action {action[:32]!r} ({', '.join(ACTIONS)})")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(400, "the body is not JSON")
        version = body.get("version") if isinstance(body, dict) else None
        if version is not None and not isinstance(version, str):
            return _error(400, "version must be a string")
        ops = self.operations
        try:
            if action == "upgrade":
                if version is None:
                    return _error(400, "upgrade needs a version")
                doc = await ops.upgrade(name, version)
            elif action == "rollback":
                doc = await ops.rollback(name, version)
            else:
                doc = await getattr(ops, action)(name)
        except LifecycleError as exc:
            return _error(exc.status, str(exc))
        except ConfigError as exc:
            return _error(400, " ".join(str(exc).split()))
        return web.json_response(doc)

    async def _secrets(self, request: web.Request) -> web.Response:
        return web.json_response(await self.operations.secrets_changed())

    async def _reload(self, request: web.Request) -> web.Response:
        if self.reload_config is None:
            return _error(404, "this gateway has no host config to reload")
        try:
            return web.json_response(await self.reload_config())
        except ConfigError as exc:
            return _error(400, " ".join(str(exc).split()))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _owner_only(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    uid = _peer_uid(request)
    if uid is None or uid not in (os.getuid(), 0):
        log.warning("control socket: refused a peer with uid %s", uid)
        return _error(403, "forbidden")
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
