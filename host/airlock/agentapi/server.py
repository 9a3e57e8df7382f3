"""``AgentApi``: the agent API's own listener (``HostConfig.agent_api_host``/``agent_api_port``, default
127.0.0.1:8789) and the supervisor of push workers.

It listens apart from the webhook server on purpose: the webhook port faces the platforms (often the internet),
the agent port faces the operator's agents (loopback by default). The push supervisor looks at the registry every
:data:`REFRESH_S` seconds, so ``airlock agents add NAME --push-url URL`` on a running gateway takes effect without
a restart (and ``agents rm`` stops the worker); pull agents need nothing: tokens are checked per request. With
PostgreSQL state a push agent's worker runs on one node at a time, the holder of its lease (``push_lease``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import ConfigError
from ..inbound.listener import forget_stopped_apps
from ..stores.agents import AgentRecord, AgentRegistry
from .auth import REGISTRY, api_middleware
from .models import MAX_BODY_BYTES
from .push import PushWorker
from .push_lease import PushLeases
from .routes import SERVICE, add_routes
from .service import AgentService
from .stream import add_stream

if TYPE_CHECKING:
    from ..host import AirlockHost

log = logging.getLogger("airlock.agentapi")

#: Seconds between looks at the registry for push agents added or removed.
REFRESH_S = 2.0


def build_app(service: AgentService) -> web.Application:
    """The aiohttp application of the agent API (no listener)."""
    app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY_BYTES)
    app[REGISTRY] = service.registry
    app[SERVICE] = service
    add_routes(app)
    add_stream(app)
    return app


class AgentApi:
    """The agent API of one host. ``start()`` / ``stop()`` on the host's event loop."""

    def __init__(self, host: AirlockHost, registry: AgentRegistry) -> None:
        self.host = host
        self.registry = registry
        self.service = AgentService(host, registry)
        self._runner: web.AppRunner | None = None
        self._workers: dict[str, PushWorker] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self.push_leases: PushLeases | None = None
        """On PostgreSQL state: the push agents this node may push to (``push_lease``); None: all of them."""
        if host.state.db is not None:
            from ..channels.poll_lease import holder_id

            self.push_leases = PushLeases(host.state.leases, holder_id(), host.config.lease_ttl_s)
        self.port: int | None = None
        self.sock: socket.socket | None = None
        """A listening socket inherited from the supervisor of ``--workers N`` (used instead of binding)."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host.config.agent_api_host}:{self.port}"

    async def start(self) -> None:
        config = self.host.config
        self._runner = web.AppRunner(build_app(self.service), access_log=None)
        await self._runner.setup()
        site: web.BaseSite = (web.SockSite(self._runner, self.sock) if self.sock is not None
                              else web.TCPSite(self._runner, config.agent_api_host, config.agent_api_bind_port))
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            why = exc.strerror or str(exc)
            raise ConfigError(f"cannot listen on {config.agent_api_host}:{config.agent_api_bind_port} for the agent "
                              f"API: {why} (choose another with --agent-api-port, 0 picks a free one)") from None
        addresses = self._runner.addresses  # the bound (host, port, ...): port 0 needs the real one
        self.port = int(addresses[0][1]) if addresses else config.agent_api_bind_port
        self._supervisor = asyncio.create_task(self._supervise(), name="airlock-agent-push")
        log.info("agent API on %s", self.base_url)

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await asyncio.gather(*(w.stop() for w in self._workers.values()), return_exceptions=True)
        self._workers.clear()
        if self.push_leases is not None:
            try:
                await asyncio.to_thread(self.push_leases.release_all)
            except Exception as exc:  # the database is down: the leases expire by themselves
                log.warning("agent API: push leases not given back: %s", exc)
        if self._runner is not None:
            await self._runner.cleanup()
            forget_stopped_apps()

    async def _supervise(self) -> None:
        while True:
            try:
                records = await asyncio.to_thread(self.registry.all)
                wanted = {r.name: r for r in records if r.push_url}
                if self.push_leases is not None:
                    held = await asyncio.to_thread(self.push_leases.hold, list(wanted), time.time())
                    wanted = {n: r for n, r in wanted.items() if n in held}
                await self._sync(wanted)
            except Exception:  # registry trouble: keep the workers as they are and look again
                log.exception("agent API: could not read the agents registry")
            await asyncio.sleep(REFRESH_S)

    async def _sync(self, wanted: dict[str, AgentRecord]) -> None:
        for name, worker in list(self._workers.items()):
            if wanted.get(name) != worker.record:
                del self._workers[name]
                await worker.stop()
        for name, record in wanted.items():
            if name not in self._workers:
                secret = self.host.secrets.get(record.push_secret_name or "")
                if not secret:
                    log.error("push agent %s has no signing secret in the secret store; not pushing", name)
                    continue
                worker = self._workers[name] = PushWorker(self.service, record, secret)
                worker.start()
