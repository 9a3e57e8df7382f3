"""``AirlockHost``: the gateway in one object, and the agent-side Python API.

    async with AirlockHost(HostConfig.build(home=...)) as host:
        async for message in host.messages():
            await host.send_status(message, "thinking")
            await host.respond(message, f"echo: {message.content}")

Every admitted message is appended to the message log (``messages``; ``state.db``, with the durable workspace)
before its webhook is answered; agents lease, acknowledge and reply through the log; replies go out through the
outbox with retries. Start-up: open the secret store, pairing database and message log (under ``config.home``),
generate any
missing ``auto_generate`` secrets, load every channel in ``config.channels_dir`` (compile cache under
``config.cache_dir``), call ``on-start``, register webhooks and pollers, and serve HTTP on
``listen_host:listen_port`` (port 0 picks a free one; see ``port``). With ``config.admin``, also the admin
listener (API, console, ``/metrics``) on ``admin_host:admin_port`` (``admin_url``); the admin token made at the
first such start is in ``admin_token``, to be shown once. With ``config.metrics`` (default), callbacks are
counted and recorded (``observability``); secret values are redacted from the ``airlock`` logs while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from .agentapi import AgentApi
from .agents.api import DURABLE_WAITERS, AgentSideApi
from .capabilities.egress import Egress
from .capabilities.emit_shared import open_windows
from .channels.catalog import generate_secrets, list_installed
from .channels.channel import HostServices
from .channels.layout import ChannelStore
from .channels.manager import ChannelManager
from .channels.operations import Operations, load_installed
from .channels.poll_lease import PollLeasing, holder_id
from .channels.socket_runtime import SocketSettings
from .errors import ConfigError
from .host_cluster import join_cluster
from .host_config import HostConfig
from .host_reload import apply_reload
from .inbound.listener import ConnectionGate, GatedTCPSite, install_quiet_parse_errors, runner_kwargs
from .inbound.server import WorkerInfo, build_app
from .inbound.verifiers.base import ReplayFactory
from .messages.inbound import BindingRouter, InboundPipeline
from .messages.inbox import Inbox
from .messages.log import MessageLog
from .messages.outbox import OutboxSender
from .messages.reply_files import payload_refs
from .messages.streaming import StreamService
from .observability import REDACTOR, CallObserver
from .runtime import pooling
from .runtime.engine import Runtime
from .runtime.instance import Sandbox
from .state.backends import open_agents, open_blobs, open_secrets, open_state
from .state.replay import SharedReplayCache
from .stores import SecretStore
from .stores.files import private_dir
from .workers.role import WorkerRole
from .workers.wake import ForwardingInbox, WakeListener

if TYPE_CHECKING:
    from .admin import AdminServer
    from .control import ControlServer
    from .observability.multiproc import Publisher
    from .state.cluster_sync import ClusterSync
    from .state.nodes import NodeBeacon

log = logging.getLogger("airlock")
T = TypeVar("T")

COMPACT_EVERY_S = 3600.0
"""Seconds between compactions of the message log (and blob garbage collection)."""



class AirlockHost(AgentSideApi):
    """The running gateway. Use as an async context manager, or ``start()`` / ``stop()``."""

    def __init__(self, config: HostConfig, *, secrets: SecretStore | None = None,
                 log: MessageLog | None = None, role: WorkerRole | None = None, control: bool = False,
                 reload_config: Callable[[], HostConfig] | None = None) -> None:
        """``log``: another :class:`~airlock.messages.log.MessageLog` implementation (closed by ``stop``); by
        default the state's (``state.backends.open_state``: SQLite ``state.db`` or PostgreSQL). ``role``: a worker
        of ``airlock serve --workers N`` (``workers.role``). ``control``: serve the control socket
        ``HOME/control.sock`` (``airlock.control``; a worker's ``HOME/run/worker-<i>.sock``); ``reload_config``: how
        to read the host config again (SIGHUP, ``reload_host_config``)."""
        self.config = config
        self.role = role
        """A worker of ``airlock serve --workers N`` (``workers.role``), or None: one process does everything."""
        private_dir(config.home)
        self.state = open_state(config, log=log)
        self.secrets = secrets if secrets is not None else open_secrets(config, self.state.db)
        self.log: MessageLog = self.state.log
        self.pairing = self.state.pairing
        self.blobs = open_blobs(config, self.state.db)
        self.runtime = Runtime(config.cache_dir, pooling=pooling.for_host(config))
        self.egress = Egress(upstream_overrides=config.upstream_overrides,
                             allow_private_hosts=config.allow_private_hosts)
        self.bus = Inbox(self.log, config.bus_capacity, visibility_s=config.agent_visibility_timeout_s) \
            if not self._wakes_worker_0 else \
            ForwardingInbox(self.log, config.bus_capacity, visibility_s=config.agent_visibility_timeout_s,
                            home=config.home)
        self._wake: WakeListener | None = None
        self.observer = CallObserver() if config.metrics else None
        # workers and nodes share each channel's emit window (``capabilities.emit_shared``); one process keeps its own
        self.emit_windows = open_windows(config.home, role is not None,
                                         self.state.db if config.emit_limit_scope == "cluster" else None)
        services = HostServices(
            sandbox=Sandbox(self.runtime, fastpath=config.fastpath, max_guest_list_bytes=config.max_guest_list_bytes),
            secret_lookup=self.secrets.get,
            pairing=self.pairing,
            durable=self.log, egress=self.egress, memory_limit_bytes=config.memory_limit_bytes,
            fuel_per_callback=config.fuel_per_callback, log_bytes_per_minute=config.log_bytes_per_minute,
            inbound=InboundPipeline(BindingRouter(config.routing), self.blobs),
            observer=self.observer, replay=self._replay_factory(),
            emit_windows=self.emit_windows.window if self.emit_windows is not None else None,
        )
        sockets = SocketSettings(upstream_overrides=config.upstream_overrides,
                                 allow_private_hosts=config.allow_private_hosts)
        self.manager = ChannelManager(self.runtime, services, self.bus,
                                      min_poll_interval_override_ms=config.min_poll_interval_override_ms,
                                      sockets=sockets, inline=config.inline_callbacks,
                                      public_base_url=config.public_base_url, leasing=self._leasing())
        self.manager.lenient_capabilities = config.lenient_capabilities
        self.streams = StreamService(self.log, self._can_edit, self._wake_outbox, write=self.durable)
        self.outbox = OutboxSender(self.log, self.streams.deliverer(self._deliver), self.manager.send_rate)
        self.agents = open_agents(config, self.state.db)
        self.agent_api = AgentApi(self, self.agents) if config.agent_api_enabled and self.agent_side else None
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._published: asyncio.Task[None] | None = None
        self._durable_pool = ThreadPoolExecutor(max_workers=DURABLE_WAITERS, thread_name_prefix="airlock-durable")
        self._runner: web.AppRunner | None = None
        self.site: GatedTCPSite | None = None
        self.port: int | None = None
        self._publisher: Publisher | None = None  # a worker's metrics for worker 0's (``observability.multiproc``)
        if self.observer is not None:
            self.observer.metrics.watch(self.manager, self._pool_slots)
            if role is not None:
                from .observability.multiproc import share
                from .workers.supervisor import read_status

                self._publisher = share(self.observer.metrics, self.manager, self._pool_slots, self.agent_side,
                                        lambda: read_status(config.home))
        self.store = ChannelStore(config.channels_dir)
        self.operations = Operations(self.manager, self.store, self.secrets)
        joined = join_cluster(config, self.state.db, self.manager, self.operations, self.secrets, self.bus,
                              self.agent_side)
        self.node: NodeBeacon | None = joined[0] if joined else None
        """This node in the cluster's registry (``state.nodes``): PostgreSQL state only."""
        self.cluster: ClusterSync | None = joined[1] if joined else None
        """Channels installed once and hot changes from the other nodes (``state.cluster``): PostgreSQL only."""
        self._reload_config = reload_config
        self.control: ControlServer | None = None
        if control:  # a worker's is private, its supervisor serves HOME/control.sock (``workers.fanout``)
            from .control import ControlServer
            from .control.server import worker_socket

            path = worker_socket(config.home, role.index) if role is not None else None
            self.control = ControlServer(config.home, self.operations, self.reload_host_config, path=path)
        self.admin: AdminServer | None = None
        self.admin_token: str | None = None
        """The admin token made at this start (the home had none): show it once; only its hash is kept."""

    @property
    def agent_side(self) -> bool:
        """Whether this process runs the agent side: the agent API, admin listener, outbox sender, compaction and
        secret generation (worker 0 of several; a single process always). The other workers only answer webhooks
        and poll where they hold a lease, so a reply is never sent twice by two outbox senders."""
        return self.role is None or self.role.agent_side

    @property
    def _wakes_worker_0(self) -> bool:
        """A worker of several on SQLite state, not the agent side: it tells worker 0 what it appended
        (``workers.wake``; with PostgreSQL the cluster notifies)."""
        return self.role is not None and not self.role.agent_side and self.state.db is None

    def _leasing(self) -> PollLeasing | None:
        """Pollers and websockets run where their lease is held (``channels.poll_lease``) under a supervisor and on
        PostgreSQL state (other nodes); one process on SQLite (its home locked, ``serve.lock``) runs them itself."""
        if self.role is None and self.state.db is None:
            return None
        return PollLeasing(self.state.leases, holder_id(), self.config.lease_ttl_s)

    def _replay_factory(self) -> ReplayFactory | None:
        """With PostgreSQL state, webhook replay caches shared by every node (``state.replay``); else in memory."""
        db = self.state.db
        if db is None:
            return None
        return lambda channel: SharedReplayCache(db, channel)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.listen_host}:{self.port}"

    @property
    def agent_api_port(self) -> int | None:
        """The agent API's bound port once started (None when it is disabled or not started)."""
        return self.agent_api.port if self.agent_api is not None else None

    @property
    def agent_api_url(self) -> str | None:
        """The agent API's base URL once started (``http://HOST:PORT``), or None (disabled or not started)."""
        port = self.agent_api_port
        return None if port is None else f"http://{self.config.agent_api_host}:{port}"

    async def start(self, *, serve_http: bool = True) -> None:
        """Load and start every installed channel, then serve HTTP (unless ``serve_http`` is false)."""
        REDACTOR.watch(self.secrets)
        if self.cluster is not None and self.agent_side:  # once per node, before anything reads the home
            await asyncio.to_thread(self.cluster.materialise)
        if self.agent_side:  # worker 0 starts before the others (``workers.supervisor``)
            self._generate_missing_secrets()
        # A worker's listening socket was bound by its supervisor: connections wait in it (not answered 404 for a
        # channel not loaded yet) until the channels are loaded; a single process listens first, as it always did.
        self.manager.loading = True  # until load_installed: webhooks for channels not loaded yet get 503, not 404
        if serve_http and self.role is None:
            await self._serve()
        if serve_http and self.config.admin and self.agent_side:
            await self._serve_admin()
        await load_installed(self.manager, self.store, migrate=self.agent_side)  # worker 0 migrates, first
        if self._publisher is not None:
            self._published = asyncio.create_task(self._publisher.run(self._stopping), name="airlock-metrics")
        if self.cluster is not None:
            await self.cluster.start()
        if serve_http and self.role is not None:
            await self._serve()
        if self.control is not None:
            await self.control.start()
        if not self.agent_side:
            log.info("airlock worker %d ready", self.role.index if self.role is not None else 0)
            return
        if self.role is not None and self.state.db is None:  # SQLite workers: the others' appends wake the agents
            self._wake = WakeListener(self.config.home, self.bus)
            self._wake.start()
        self.outbox.start()
        if self.agent_api is not None:
            if self.role is not None:
                self.agent_api.sock = self.role.listening_socket("agent")
            await self.agent_api.start()
        if self.node is not None:
            await self.node.start(self._urls(serve_http))
        self._housekeeping = asyncio.create_task(self._compact_forever(), name="airlock-compaction")
        active = [n for n, s in self.manager.slots.items() if s.active]
        log.info("airlock ready: %d channel(s), active: %s", len(self.manager.slots), ", ".join(active) or "none")

    def _urls(self, serving: bool) -> dict[str, str]:
        """This node's listeners, as the node registry records them."""
        urls = {"webhooks": self.base_url if serving else None, "public": self.config.public_base_url,
                "admin": self.admin_url, "agent_api": self.agent_api_url}
        return {k: v for k, v in urls.items() if v is not None}

    def _generate_missing_secrets(self) -> None:
        for entry in list_installed(self.config.channels_dir, lenient=self.config.lenient_capabilities):
            if entry.caps is None:  # this channel only: the others still get their secrets
                log.warning("channel %s: no secrets generated: %s", entry.name, entry.error)
                continue
            generate_secrets(entry.caps, entry.name, self.secrets.exists, self.secrets.set)

    async def _serve(self) -> None:
        limits = self.config.listener_limits
        install_quiet_parse_errors()
        worker = WorkerInfo(self.role.index, self.config.home) if self.role is not None else None
        self._runner = web.AppRunner(build_app(self.manager, limits, worker, self.node), access_log=None,
                                     **runner_kwargs(limits))
        await self._runner.setup()
        self.site = GatedTCPSite(self._runner, self.config.listen_host, self.config.listen_port,
                                 ConnectionGate(limits),
                                 sock=self.role.listening_socket("webhook") if self.role is not None else None)
        await self.site.start()
        self.port = self.site.port
        log.info("listening on %s", self.base_url)

    async def stop(self) -> None:
        """on-shutdown for every channel, then close the server, the egress and the stores."""
        if self.control is not None:
            await self.control.stop()
        if self.node is not None:
            await self.node.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self.admin is not None:
            await self.admin.stop()
        if self._housekeeping is not None:
            # awaited and dropped: a cancelled task left pending keeps its frame (and so this host) alive
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        if self.agent_api is not None:
            await self.agent_api.stop()
        if self._wake is not None:
            self._wake.close()
        await self.outbox.stop()
        await self.manager.stop()
        self._stopping.set()
        if self._published is not None:  # its last copy, on-shutdown included: it stays in the totals
            await self._published
        if self._runner is not None:
            await self._runner.cleanup()
        self.egress.close()
        self.runtime.close()
        self.agents.close()
        if self.emit_windows is not None:
            self.emit_windows.close()
        self._durable_pool.shutdown(wait=True)
        await self._flushed()
        self.state.close()
        REDACTOR.unwatch(self.secrets)

    async def _flushed(self, timeout_s: float = 30.0) -> None:
        """Wait until every channel's staged commits are written (``capabilities.workspace``), so none meets a closed
        log; a failed one was already logged and answered."""
        waits = [asyncio.wrap_future(s.channel.workspace.flushed()) for s in self.manager.slots.values()]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*waits, return_exceptions=True)

    async def _compact_forever(self) -> None:
        """Every :data:`COMPACT_EVERY_S`: drop what retention allows, and attachment blobs nothing references."""
        while True:
            await asyncio.sleep(COMPACT_EVERY_S)
            try:
                removed = await asyncio.to_thread(self.compact)
            except Exception:  # storage trouble: try again next round, the log keeps growing meanwhile
                log.exception("compaction failed")
                continue
            if removed:
                log.info("compaction removed %d rows", removed)

    def compact(self, now: float | None = None) -> int:
        """Compact the log (``MessageLog.compact``) and collect unreferenced blobs; returns rows removed."""
        when = time.time() if now is None else now
        removed = self.log.compact(when, self.config.retention_s, self.config.dedupe_window_s)
        removed += self.agents.compact(when, self.config.retention_s)
        referenced = {a.sha256 for e in self.log.list_inbound(limit=1_000_000) for a in e.attachments if a.sha256}
        referenced |= {f.sha256 for o in self.log.list_outbox(limit=1_000_000) for f in payload_refs(o.payload)}
        self.blobs.gc(referenced, older_than_s=COMPACT_EVERY_S, now=when)
        return removed

    # ---- host config reload (SIGHUP) ---------------------------------------------------------------------

    async def reload_host_config(self) -> dict[str, list[str]]:
        """Read the host config again (``reload_config``, given at construction: ``airlock serve`` reads
        ``airlock.toml`` and the environment and applies its command line again) and apply what can change live
        (``host_reload.LIVE_SETTINGS``); the other changed settings are reported as needing a restart and keep their
        running values. Returns ``{"applied": [...], "restart_needed": [...]}`` (field names). Raises ConfigError
        for a config that does not validate (nothing applied)."""
        if self._reload_config is None:
            raise ConfigError("this gateway was started without a host config to reload")
        new = await asyncio.to_thread(self._reload_config)
        self.config, result = apply_reload(self.config, new, self.manager, self.bus)
        return result

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
        from .workers.admin_ops import admin_operations

        tokens = TokenFile(self.config.home)
        self.admin_token = tokens.ensure()
        state = AdminState(manager=self.manager, secrets=self.secrets, pairing=self.pairing,
                           observer=self.observer, tokens=tokens, sessions=Sessions(tokens),
                           limiter=LoginLimiter(), home=self.config.home, operations=admin_operations(self))
        self.admin = AdminServer(state, self.config.admin_host, self.config.admin_port,
                                 sock=self.role.listening_socket("admin") if self.role is not None else None)
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
