"""The admin console's channel operations in worker 0 of ``airlock serve --workers N``: through the supervisor.

The admin API (``airlock.admin``) runs in worker 0 and calls ``channels.operations``. Called directly there, a
disable or an upgrade from the console changed worker 0 only. :class:`SupervisedOperations` sends each operation
that changes channels to the supervisor's ``HOME/control.sock`` instead, exactly as ``airlock channels ...`` does:
the supervisor has worker 0 (this process, on its private socket) apply it and the other workers follow
(``workers.fanout``). Documents (``doc``) are still read here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..channels.operations import LifecycleError, Operations
from ..control.client import ControlClient, ControlRefused
from ..control.server import SOCKET_NAME
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..channels.layout import ChannelStore
    from ..channels.manager import ChannelManager
    from ..host import AirlockHost
    from ..stores import SecretStore

__all__ = ["SupervisedOperations", "admin_operations"]


class SupervisedOperations(Operations):
    """``Operations`` whose changes go through the supervisor (module docstring). Errors: LifecycleError with the
    status and line the supervisor (or worker 0) answered; 503 when the supervisor does not answer."""

    def __init__(self, manager: ChannelManager, store: ChannelStore, secrets: SecretStore, home: Path) -> None:
        super().__init__(manager, store, secrets)
        self.control = home / SOCKET_NAME
        """The supervisor's control socket."""

    async def enable(self, name: str) -> dict[str, Any]:
        return await self._via(name, "enable")

    async def disable(self, name: str) -> dict[str, Any]:
        return await self._via(name, "disable")

    async def install(self, name: str) -> dict[str, Any]:
        return await self._via(name, "install")

    async def upgrade(self, name: str, version: str) -> dict[str, Any]:
        return await self._via(name, "upgrade", {"version": version})

    async def rollback(self, name: str, version: str | None = None) -> dict[str, Any]:
        return await self._via(name, "rollback", {"version": version} if version is not None else {})

    async def reload(self, name: str) -> dict[str, Any]:
        return await self._via(name, "reload")

    async def remove(self, name: str) -> dict[str, Any]:
        return await self._via(name, "remove")

    async def secrets_changed(self) -> dict[str, Any]:
        return await self._call("/v1/secrets/changed", {})

    async def _via(self, name: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._call(f"/v1/channels/{name}/{action}", body or {})

    async def _call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        client = ControlClient(self.control)
        try:
            return await asyncio.to_thread(client.call, "POST", route, body)
        except ControlRefused as exc:
            raise LifecycleError(exc.status, str(exc)) from None
        except ConfigError:
            raise LifecycleError(503, "the supervisor did not answer; try again in a few seconds") from None


def admin_operations(host: AirlockHost) -> Operations:
    """The operations ``host``'s admin console calls: its own in one process; under a supervisor, through it to
    every worker (module docstring)."""
    if host.role is None:
        return host.operations
    return SupervisedOperations(host.manager, host.store, host.secrets, host.config.home)
