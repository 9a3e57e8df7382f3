"""``AirlockHost``: the gateway in one object, and the agent-side Python API.

    async with AirlockHost(HostConfig.build(home=...)) as host:
        async for message in host.messages():
            await host.send_status(message, "thinking")
            await host.respond(message, f"echo: {message.content}")

Start-up: open the secret store, pairing and workspace databases (under ``config.home``), generate any
missing ``auto_generate`` secrets, load every channel in ``config.channels_dir`` (compile cache under
``config.cache_dir``), call ``on-start``, register webhooks and pollers, and serve HTTP on
``listen_host:listen_port`` (port 0 picks a free one; see ``port``). With ``config.admin``, also the admin
listener (API, console, ``/metrics``) on ``admin_host:admin_port`` (``admin_url``); the admin token made at the
first such start is in ``admin_token``, to be shown once. With ``config.metrics`` (default), callbacks are
counted and recorded (``observability``); secret values are redacted from the ``airlock`` logs while it runs.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
import string
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

from aiohttp import web

from .agents.bus import MessageBus
from .capabilities.egress import Egress
from .channels.channel import CallOutcome, HostServices
from .channels.manager import ChannelManager, Delivery
from .channels.socket_runtime import SocketSettings
from .config import HostConfig, load_capabilities
from .errors import AirlockError, ConfigError
from .inbound.listener import ConnectionGate, GatedTCPSite, install_quiet_parse_errors, runner_kwargs
from .inbound.server import build_app
from .observability import REDACTOR, CallObserver
from .runtime import pooling
from .runtime.engine import Runtime
from .runtime.instance import Sandbox
from .stores import DurableWorkspaceStore, PairingStore, SecretStore
from .stores.files import private_dir

if TYPE_CHECKING:
    from .admin import AdminServer

log = logging.getLogger("airlock")

_ALPHABET = string.ascii_letters + string.digits


class AirlockHost:
    """The running gateway. Use as an async context manager, or ``start()`` / ``stop()``."""

    def __init__(self, config: HostConfig, *, secrets: SecretStore | None = None) -> None:
        self.config = config
        private_dir(config.home)
        self.secrets = secrets if secrets is not None else SecretStore.open(config.home)
        self.pairing = PairingStore(config.pairing_db)
        self.durable = DurableWorkspaceStore(config.workspace_db)
        self.runtime = Runtime(config.cache_dir, pooling=pooling.for_host(config))
        self.egress = Egress(upstream_overrides=config.upstream_overrides,
                             allow_private_hosts=config.allow_private_hosts)
        self.bus = MessageBus(config.bus_capacity)
        self.observer = CallObserver() if config.metrics else None
        services = HostServices(
            sandbox=Sandbox(self.runtime, fastpath=config.fastpath, max_guest_list_bytes=config.max_guest_list_bytes),
            secret_lookup=self.secrets.get,
            pairing=self.pairing,
            durable=self.durable, egress=self.egress, memory_limit_bytes=config.memory_limit_bytes,
            fuel_per_callback=config.fuel_per_callback, log_bytes_per_minute=config.log_bytes_per_minute,
            observer=self.observer,
        )
        sockets = SocketSettings(upstream_overrides=config.upstream_overrides,
                                 allow_private_hosts=config.allow_private_hosts)
        self.manager = ChannelManager(self.runtime, services, self.bus,
                                      min_poll_interval_override_ms=config.min_poll_interval_override_ms,
                                      sockets=sockets, inline=config.inline_callbacks)
        self._runner: web.AppRunner | None = None
        self.site: GatedTCPSite | None = None
        self.port: int | None = None
        if self.observer is not None:
            self.observer.metrics.watch(self.manager, self._pool_slots)
        self.admin: AdminServer | None = None
        self.admin_token: str | None = None
        """The admin token made at this start (the home had none): show it once; only its hash is kept."""

    @property
    def base_url(self) -> str:
        return f"http://{self.config.listen_host}:{self.port}"

    async def start(self, *, serve_http: bool = True) -> None:
        """Load and start every installed channel, then serve HTTP (unless ``serve_http`` is false)."""
        REDACTOR.watch(self.secrets)
        self._generate_missing_secrets()
        if serve_http:
            await self._serve()
            if self.config.admin:
                await self._serve_admin()
        await self.manager.load_dir(self.config.channels_dir)
        active = [n for n, s in self.manager.slots.items() if s.active]
        log.info("airlock ready: %d channel(s), active: %s", len(self.manager.slots), ", ".join(active) or "none")

    def _generate_missing_secrets(self) -> None:
        for wasm, caps_path in self.manager.discover(self.config.channels_dir):
            try:
                caps = load_capabilities(caps_path)
            except Exception as exc:  # this channel only: the others still get their secrets
                reason = str(exc) if isinstance(exc, AirlockError) else f"{type(exc).__name__}: {exc}"
                log.warning("channel %s: no secrets generated: %s", wasm.stem, " ".join(reason.split()))
                continue
            for spec in caps.setup.required_secrets if caps.setup else []:
                if spec.auto_generate is not None and not self.secrets.exists(spec.name):
                    value = "".join(pysecrets.choice(_ALPHABET) for _ in range(spec.auto_generate.length))
                    self.secrets.set(spec.name, value)
                    log.info("generated secret %s (%d characters)", spec.name, spec.auto_generate.length)

    async def _serve(self) -> None:
        limits = self.config.listener_limits
        install_quiet_parse_errors()
        self._runner = web.AppRunner(build_app(self.manager, limits), access_log=None, **runner_kwargs(limits))
        await self._runner.setup()
        self.site = GatedTCPSite(self._runner, self.config.listen_host, self.config.listen_port,
                                 ConnectionGate(limits))
        await self.site.start()
        self.port = self.site.port
        log.info("listening on %s", self.base_url)

    async def stop(self) -> None:
        """on-shutdown for every channel, then close the server, the egress and the stores."""
        if self.admin is not None:
            await self.admin.stop()
        await self.manager.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.egress.close()
        self.runtime.close()
        self.pairing.close()
        self.durable.close()
        REDACTOR.unwatch(self.secrets)

    # ---- admin listener and observability --------------------------------------------------------

    @property
    def admin_url(self) -> str | None:
        """The admin console's URL, or None when the admin listener is off."""
        return self.admin.url if self.admin is not None and self.admin.port is not None else None

    def _pool_slots(self) -> int:
        return self.runtime.pooling.slots if self.runtime.pooling is not None else 0

    async def _serve_admin(self) -> None:
        from .admin import AdminServer, AdminState
        from .admin.auth import LoginLimiter, Sessions, TokenFile

        tokens = TokenFile(self.config.home)
        self.admin_token = tokens.ensure()
        state = AdminState(manager=self.manager, secrets=self.secrets, pairing=self.pairing,
                           observer=self.observer, tokens=tokens, sessions=Sessions(tokens),
                           limiter=LoginLimiter(), home=self.config.home)
        self.admin = AdminServer(state, self.config.admin_host, self.config.admin_port)
        try:
            await self.admin.start()
        except OSError as exc:
            self.admin = None
            raise ConfigError(f"cannot listen on {self.config.admin_host}:{self.config.admin_port} for the admin "
                              f"console: {exc.strerror or exc}") from None

    async def __aenter__(self) -> AirlockHost:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # ---- the agent-side API ----------------------------------------------------------------------

    async def messages(self) -> AsyncIterator[Delivery]:
        """Yield every admitted inbound message, in arrival order, forever."""
        while True:
            yield await self.next_message()

    async def next_message(self) -> Delivery:
        """Wait for the next admitted inbound message. Its ``id`` is unique within this host's run."""
        inbound = await self.bus.get()
        return Delivery(id=f"{inbound.channel}:{self.bus.delivered}", inbound=inbound)

    async def respond(self, message: Delivery, reply: str) -> CallOutcome:
        """Send ``reply`` through the channel's on-respond with ``message``'s original metadata."""
        return await self.manager.respond(message, reply)

    async def broadcast(self, channel: str, user_id: str, content: str) -> CallOutcome:
        """A proactive message to ``user_id`` on ``channel`` (on-broadcast)."""
        return await self.manager.broadcast(channel, user_id, content)

    async def send_status(self, message: Delivery, status: str, text: str = "") -> CallOutcome:
        """on-status; "thinking" refreshes typing every 4 s until the reply."""
        return await self.manager.send_status(message, status, text)
