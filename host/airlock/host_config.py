"""``HostConfig``: the host's own settings (not granted to any channel), from ``HOME/airlock.toml``, the command
line and code. The capabilities file's models are in :mod:`airlock.manifest`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from airlock.errors import ConfigError
from airlock.manifest.base import PositiveFloat, PositiveInt, check_host, one_line
from airlock.manifest.channel import MIN_POLL_INTERVAL_MS
from airlock.messages.routing_models import RoutingConfig
from airlock.state.url import DEFAULT_STATE_URL, StateUrl, check_state_url, parse_state_url
from airlock.workers.policy import BACKOFF_BASE_S, CRASH_LOOP_DEATHS, CRASH_WINDOW_S, STOP_GRACE_S

if TYPE_CHECKING:
    from airlock.inbound.listener import ListenerLimits

__all__ = ["DEFAULT_AGENT_API_PORT", "DEFAULT_MAX_GUEST_LIST_BYTES", "HostConfig", "default_home"]

#: Default of :attr:`HostConfig.max_guest_list_bytes`: the largest ``list<u8>`` a host function takes from a
#: guest (2 MiB). Wasmtime itself refuses lists over 2,796,202 elements (its per-call "hostcall fuel" of
#: 128 MiB at 48 bytes per element), so a larger value changes nothing.
DEFAULT_MAX_GUEST_LIST_BYTES = 2 * 1024 * 1024


# --------------------------------------------------------------------------------------------------
# Host settings
# --------------------------------------------------------------------------------------------------


def default_home() -> Path:
    """The data directory: ``$AIRLOCK_HOME`` if set and non-empty, else ``~/.airlock``."""
    env = os.environ.get("AIRLOCK_HOME")
    return Path(env).expanduser() if env else Path.home() / ".airlock"


#: URL schemes of ``bus`` (redis-py's ``Redis.from_url``).
BUS_SCHEMES = ("redis://", "rediss://", "unix://")
_LOG_CHOICES = {"log_format": ("text", "json"), "log_level": ("debug", "info", "warning", "error", "critical")}

#: The agent API's port unless configured (``HostConfig.agent_api_port``).
DEFAULT_AGENT_API_PORT = 8789


class HostConfig(BaseModel):
    """The host's own settings (not granted to any channel). The command line builds it from defaults,
    ``HOME/airlock.toml`` (or ``--config``), ``AIRLOCK_<FIELD>`` variables and its options (``host_settings``).

    Fields:
        home: data directory (default :func:`default_home`); derived paths are properties below.
        state: where the message log, the durable workspace and the shared stores live (``state.url``):
            ``sqlite:///state.db`` (default: a file in the home) or ``postgresql://USER@HOST:PORT/DB`` (several
            processes or nodes on one database); parsed in ``state_url``.
        bus: ``redis://[USER:PASSWORD@]HOST:PORT/DB`` (or ``rediss://``, ``unix://``): deliver the message log's
            entries to agents through Redis Streams (``messages.redisbus``). Needs PostgreSQL ``state`` (the
            durable record the bus is fed from); ``None`` (default): agents lease straight from the log.
        channels_dir: where ``<name>.wasm`` + ``<name>.capabilities.json`` live (default ``home/channels``).
        listen_host / listen_port: the webhook HTTP server's address (port 0..65535; 0 = pick one).
        upstream_overrides: ``host -> base URL`` (e.g. ``"api.telegram.org": "http://127.0.0.1:8081"``) to
            send a channel's allow-listed traffic to a local fake instead of the real platform.
        allow_private_hosts: hosts allowed to resolve to private/loopback addresses.
        memory_limit_bytes: per-instance linear-memory cap (bytes, default 50 MiB); also the size of a
            memory slot in the instance pool.
        pooling: take instances from wasmtime's pooling allocator (default on; ``runtime.pooling``).
        pool_slots: instances the pool holds at once (1..100000); ``None`` sizes it to the installed
            channels x 2 lanes, at least 32 (``runtime.pooling.slots_for``).
        fuel_per_callback: wasmtime fuel units per guest callback.
        fastpath: convert WIT values with the fast call path (``runtime.fastpath``); ``None`` (default)
            follows the environment variable ``AIRLOCK_FASTPATH`` (on unless ``0``); ``False`` uses stock
            wasmtime-py conversion (same values and errors, slower).
        inline_callbacks: attempt webhooks on the event loop first, falling back to a worker thread when the
            guest needs one (``channels.manager``, ``channels.inline``); default on, ``False`` runs every
            callback on a worker thread.
        public_base_url: the gateway's public ``http(s)://`` base URL (no trailing slash), e.g. a tunnel; given to
            ``near:agent`` components as ``tunnel_url`` in their start config (``channels.activation``).
        max_guest_list_bytes: the largest ``list<u8>`` a guest may pass to a host function (bytes; default
            :data:`DEFAULT_MAX_GUEST_LIST_BYTES`, 2 MiB): an ``http-request`` body or ``store-attachment-data``
            above it gets a WIT error before any capability sees it. It bounds what the host keeps, not
            what wasmtime allocates to hand the value over: wasmtime-py 50 converts every element of a list
            into a 32-byte C value and a 48-byte Rust value (about 80 bytes per byte) before host code runs,
            up to its own per-call limit of 2,796,202 elements (issue 13, defect 4).
        lenient_capabilities: read installed capabilities files leniently: unknown keys are warnings and dropped
            instead of keeping the channel from loading (``airlock serve --lenient``; ``manifest.strict``).
        min_poll_interval_override_ms: test-only floor replacing :data:`MIN_POLL_INTERVAL_MS` (ms).
        bus_capacity: unacknowledged messages (all agents) past which webhooks answer 503 + Retry-After and
            pollers pause (backpressure; nothing already accepted is dropped).
        default_agent: the agent that gets messages no routing binding claims (default ``main``, the in-process
            agent of ``host.messages()``); the same as ``routing.default_agent`` (set either; both must agree).
        routing: bindings, DM scope and identity links (``messages.routing_models.RoutingConfig``).
        agent_visibility_timeout_s: seconds a leased message waits for its ack before it is offered again.
        lease_ttl_s: with several workers (``airlock serve --workers N``) or nodes, how long a poller's or
            websocket's lease lasts unless renewed (renewed every third of it; ``channels.poll_lease``): when its
            holder dies, another process takes the poller over within ``lease_ttl_s`` + one poll (issue 12: 15 s).
            Leases are taken under a supervisor and on PostgreSQL state; one process on SQLite polls unleased.
        worker_restart_backoff_s / worker_crash_loop_deaths / worker_crash_window_s: a dead worker is restarted
            after the backoff, doubled per further death within the window (at most 30 s); that many deaths
            within the window is a crash loop: not restarted (``workers.policy``; 0.5 s, 5, 60 s).
        worker_stop_grace_s: seconds a worker gets to finish in-flight callbacks on SIGTERM before it is killed
            (30 s; ``workers.supervisor``).
        retention_s / dedupe_window_s: how long acknowledged messages and sent replies are kept (7 days), and how
            long a platform message id is remembered for deduplication (24 h).
        log_synchronous: SQLite ``synchronous`` of the message log's durable commits (``messages.sqlite``).
            ``FULL`` (default): every commit's WAL is fsynced before a webhook is answered, so an acknowledged
            message survives a power loss or an OS crash. ``NORMAL``: no fsync per commit (only at checkpoints): an
            acknowledged message still survives a gateway crash or kill -9, but the last ones before a power loss
            or kernel crash can be lost; choose it when the disk's fsync is slow and that risk is acceptable.
        emit_limit_scope: where a guest's emit rate limit (``emit_rate_limit``) is counted. ``node`` (default):
            per node, shared by its ``--workers`` (a file in the home, ~0.1 ms per emitting callback); with N nodes
            a guest may emit up to N times its limit. ``cluster`` (PostgreSQL state): one window in the state
            database for every node (``capabilities.emit_shared.PgWindows``): exact, but one more PostgreSQL
            transaction per emitting callback (measured: 0.62x the webhooks/s of ``node`` on the bus benchmark).
        log_bytes_per_minute: each channel's guest-log budget: bytes of log text (UTF-8) written to the host
            log per minute (default 256 KiB); lines past it are dropped and counted in one warning a minute
            (``capabilities.logging``).
        log_format / log_level: how ``airlock serve`` logs: ``text`` lines or one ``json`` object a line, at
            ``debug``/``info``/``warning``/``error``/``critical`` (``observability.logs``; default text, info).
        admin: serve the admin API, web console and ``/metrics`` (``airlock.admin``) on a listener of its own
            (default off; ``airlock serve`` turns it on).
        admin_host / admin_port: that listener's address (default 127.0.0.1:8788; port 0 = pick one). Never
            the webhook port: the two may not be equal unless both are 0.
        metrics: count callbacks, host calls, refusals and messages, and keep each channel's recent callbacks
            (``airlock.observability``); default on, ``False`` only to measure what that costs.
        webhook_header_timeout_s / webhook_body_timeout_s: seconds a webhook client has to send a request
            head / a whole body (defaults 15 and 30; ``inbound.listener``, ``inbound.body``).
        webhook_max_connections / webhook_max_connections_per_ip: open connections the webhook listener
            accepts in total / from one address (defaults 1024 and 128; more are aborted on accept).
        agent_api_enabled / agent_api_host / agent_api_port: the agent HTTP API's own listener (``agentapi``;
            default on, 127.0.0.1:8789; port 0 = pick one, see ``AirlockHost.agent_api_port``). ``None`` (the
            default) means :data:`DEFAULT_AGENT_API_PORT`, or 0 when ``listen_port`` is 0: a gateway whose webhook
            port is picked (tests, instances side by side) gets a picked agent port too (``agent_api_bind_port``).

    Raises:
        pydantic.ValidationError: on invalid values (a :class:`ValueError`; wrap it in
            :class:`~airlock.errors.ConfigError` at the CLI boundary, e.g. with :meth:`build`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    home: Path = Field(default_factory=default_home)
    state: str = DEFAULT_STATE_URL
    bus: str | None = None
    channels_dir: Path = Field(default=None, validate_default=True)
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8080, ge=0, le=65535)
    upstream_overrides: dict[str, str] = Field(default_factory=dict)
    allow_private_hosts: list[str] = Field(default_factory=list)
    memory_limit_bytes: PositiveInt = 50 * 1024 * 1024
    pooling: bool = True
    pool_slots: Annotated[int, Field(ge=1, le=100_000)] | None = None
    fuel_per_callback: PositiveInt = 5_000_000_000
    fastpath: bool | None = None
    inline_callbacks: bool = True
    public_base_url: str | None = None
    max_guest_list_bytes: PositiveInt = DEFAULT_MAX_GUEST_LIST_BYTES
    lenient_capabilities: bool = False
    min_poll_interval_override_ms: PositiveInt | None = None
    bus_capacity: PositiveInt = 1000
    log_bytes_per_minute: PositiveInt = 256 * 1024
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    admin: bool = False
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8788, ge=0, le=65535)
    metrics: bool = True
    webhook_header_timeout_s: PositiveFloat = 15.0
    webhook_body_timeout_s: PositiveFloat = 30.0
    webhook_max_connections: PositiveInt = 1024
    webhook_max_connections_per_ip: PositiveInt = 128
    default_agent: str = Field(default="main", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    agent_visibility_timeout_s: PositiveFloat = 60.0
    lease_ttl_s: PositiveFloat = 15.0
    worker_restart_backoff_s: PositiveFloat = BACKOFF_BASE_S
    worker_crash_loop_deaths: PositiveInt = CRASH_LOOP_DEATHS
    worker_crash_window_s: PositiveFloat = CRASH_WINDOW_S
    worker_stop_grace_s: PositiveFloat = STOP_GRACE_S
    retention_s: PositiveFloat = 7 * 24 * 3600.0
    dedupe_window_s: PositiveFloat = 24 * 3600.0
    log_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    emit_limit_scope: Literal["node", "cluster"] = "node"
    agent_api_enabled: bool = True
    agent_api_host: str = "127.0.0.1"
    agent_api_port: Annotated[int, Field(ge=0, le=65535)] | None = None

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _log_choice(cls, v: Any, info: ValidationInfo) -> Any:
        choices = _LOG_CHOICES[info.field_name or ""]
        if not isinstance(v, str) or v.strip().lower() not in choices:
            what = (info.field_name or "").replace("_", " ")
            raise ValueError(f"{what} {str(v)[:20]!r}: expected one of {', '.join(choices)}")
        return v.strip().lower()

    @model_validator(mode="after")
    def _admin_port_apart(self) -> HostConfig:
        if self.admin and self.admin_port != 0 and self.admin_port == self.listen_port:
            raise ValueError(f"admin_port {self.admin_port} is the webhook port; the admin listener needs its own")
        return self

    @field_validator("channels_dir", mode="before")
    @classmethod
    def _default_channels_dir(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            home = info.data.get("home")
            return (home if isinstance(home, Path) else default_home()) / "channels"
        return v

    @field_validator("home", "channels_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        return check_state_url(v)

    @field_validator("bus")
    @classmethod
    def _bus(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(BUS_SCHEMES):
            raise ValueError("bus must be a redis://, rediss:// or unix:// URL")
        return v

    @model_validator(mode="after")
    def _bus_needs_postgres(self) -> HostConfig:
        if self.bus is not None and self.state_url.kind != "postgresql":
            raise ValueError('bus = "redis://..." needs state = "postgresql://..." (the bus is fed from the '
                             "PostgreSQL log; on SQLite agents lease straight from state.db)")
        return self

    @field_validator("upstream_overrides")
    @classmethod
    def _overrides(cls, v: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for host, base in v.items():
            check_host(host)
            if not base.startswith(("http://", "https://")):
                raise ValueError(f"override for {host!r} must be an http:// or https:// base URL")
            out[host] = base.rstrip("/")
        return out

    @model_validator(mode="after")
    def _one_default_agent(self) -> HostConfig:
        mine, theirs = self.default_agent, self.routing.default_agent
        if "default_agent" in self.model_fields_set and "default_agent" in self.routing.model_fields_set \
                and mine != theirs:
            raise ValueError(f"default_agent {mine!r} and routing.default_agent {theirs!r} differ")
        if "default_agent" in self.model_fields_set:
            object.__setattr__(self, "routing", self.routing.model_copy(update={"default_agent": mine}))
        else:
            object.__setattr__(self, "default_agent", theirs)
        return self

    @field_validator("public_base_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("public_base_url must be an http:// or https:// URL without query or fragment")
        return v.rstrip("/")

    @classmethod
    def build(cls, **values: Any) -> HostConfig:
        """Validate ``values`` like the constructor, raising :class:`ConfigError` (one line) on failure."""
        try:
            return cls(**values)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "host config"
            raise ConfigError(f"{where}: {one_line(str(err['msg']))}") from None

    @property
    def listener_limits(self) -> ListenerLimits:
        """The webhook listener's socket-level limits (``inbound.listener.ListenerLimits``)."""
        from airlock.inbound.listener import ListenerLimits

        return ListenerLimits(
            header_timeout_s=self.webhook_header_timeout_s, body_timeout_s=self.webhook_body_timeout_s,
            max_connections=self.webhook_max_connections,
            max_connections_per_ip=self.webhook_max_connections_per_ip,
        )

    @property
    def poll_floor_ms(self) -> int:
        """The smallest poll interval the host allows, in ms (30000 unless a test override is set)."""
        if self.min_poll_interval_override_ms is not None:
            return self.min_poll_interval_override_ms
        return MIN_POLL_INTERVAL_MS

    @property
    def cache_dir(self) -> Path:
        """Compiled-component cache: ``home/cache``."""
        return self.home / "cache"

    @property
    def secrets_path(self) -> Path:
        """The encrypted secret store: ``home/secrets.json`` (see :class:`airlock.stores.SecretStore`)."""
        return self.home / "secrets.json"

    @property
    def key_path(self) -> Path:
        """The master key file: ``home/master.key`` (mode 0600; unused if ``AIRLOCK_MASTER_KEY`` is set)."""
        return self.home / "master.key"

    @property
    def pairing_db(self) -> Path:
        """SQLite pairing database: ``home/pairing.db``."""
        return self.home / "pairing.db"

    @property
    def state_url(self) -> StateUrl:
        """``state`` parsed: the SQLite file (relative paths under ``home``) or the PostgreSQL connection URL."""
        return parse_state_url(self.state, self.home)

    @property
    def state_db(self) -> Path:
        """SQLite file of the message log and the durable workspace (one file: one transaction for both); with
        PostgreSQL state, where that file would be (unused)."""
        url = self.state_url
        return url.path if url.path is not None else self.home / "state.db"

    @property
    def agent_api_bind_port(self) -> int:
        """The port the agent API binds (``agent_api_port``; see the class docstring for ``None``)."""
        if self.agent_api_port is not None:
            return self.agent_api_port
        return 0 if self.listen_port == 0 else DEFAULT_AGENT_API_PORT

    @property
    def agents_db(self) -> Path:
        """SQLite agents registry (tokens hashed, push URLs, Idempotency-Key answers): ``home/agents.db`` (on SQLite
        state; PostgreSQL state keeps it in the database, ``state.backends.open_agents``)."""
        return self.home / "agents.db"

    @property
    def blobs_dir(self) -> Path:
        """Content-addressed attachment blobs: ``home/blobs`` (on SQLite state; PostgreSQL state keeps them in the
        database, ``state.backends.open_blobs``)."""
        return self.home / "blobs"

    @property
    def workspace_db(self) -> Path:
        """The durable-workspace database of homes made before the message log (imported into ``state.db`` once)."""
        return self.home / "workspace.db"
