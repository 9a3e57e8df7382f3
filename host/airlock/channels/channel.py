"""``Channel``: one installed component with its capabilities file, its per-channel capability state,
and the rule that a callback applies what it buffered only if it succeeds.

Every callback runs in a fresh sandbox (``runtime.instance.Sandbox``). On success the workspace writes
are committed (optimistically: see ``capabilities.workspace``; a conflicting callback is re-run, at most
``MAX_ATTEMPTS`` times), emitted messages pass the per-channel emit rate limit and are returned with their
attachment bytes; on failure nothing is applied (logs are still flushed, for diagnosis).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..capabilities.emit import EmitBuffer, EmitLimiter
from ..capabilities.pairing import PairingBackend, PairingCapability
from ..capabilities.secrets import SecretsCapability
from ..capabilities.websocket import WebsocketCapability
from ..capabilities.workspace import DurableBackend, Workspace, WorkspaceConflict, WorkspaceTxn
from ..config import CapabilitiesFile
from ..config import HttpCapability as HttpSpec
from ..errors import AirlockError, GuestError, GuestReturnedError, GuestTrap, HostBug
from ..runtime import convert
from ..runtime.engine import LoadedComponent
from ..runtime.instance import CallStats, Limits, Sandbox
from ..runtime.values import (
    AgentResponse,
    ChannelConfig,
    EmittedMessage,
    IncomingHttpRequest,
    StatusUpdate,
)
from .callstate import CallState

if TYPE_CHECKING:
    from ..capabilities.egress import Egress
    from ..capabilities.http import HttpCapability

log = logging.getLogger("airlock.channel")

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class InboundMessage:
    """A message on its way to the agent: what the guest emitted plus the channel and attachment bytes."""

    channel: str
    message: EmittedMessage
    attachment_data: dict[str, bytes] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)

    @property
    def metadata_json(self) -> str:
        return self.message.metadata_json


@dataclass
class CallOutcome:
    """What one callback did. ``error`` is None on success; ``value`` is the converted WIT result."""

    callback: str
    value: Any = None
    error: AirlockError | None = None
    messages: list[InboundMessage] = field(default_factory=list)
    state: CallState | None = None
    stats: CallStats | None = None
    attempts: int = 1
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class HostServices:
    """Host-wide services a channel's capabilities are built from."""

    sandbox: Sandbox
    secret_lookup: Callable[[str], str | None]
    pairing: PairingBackend
    durable: DurableBackend | None
    egress: Egress | None
    memory_limit_bytes: int
    fuel_per_callback: int


def http_policy_from_spec(spec: HttpSpec) -> Any:
    """Adapt the capabilities file's ``capabilities.http`` to ``capabilities.http_policy.HttpPolicy``."""
    from ..capabilities.http_policy import AllowRule, CredentialRule, HttpPolicy

    creds = []
    for cid, c in spec.credentials.items():
        loc = c.location
        creds.append(CredentialRule(
            secret_name=c.secret_name, location=loc.type, host_patterns=tuple(c.host_patterns),
            path_patterns=tuple(c.path_patterns), optional=c.optional, id=cid,
            username=getattr(loc, "username", ""), name=getattr(loc, "name", ""),
            prefix=getattr(loc, "prefix", ""), placeholder=getattr(loc, "placeholder", ""),
        ))
    return HttpPolicy(
        allowlist=tuple(
            AllowRule(host=a.host, path_prefix=a.path_prefix, methods=tuple(a.methods) if a.methods else None)
            for a in spec.allowlist
        ),
        credentials=tuple(creds),
        requests_per_minute=spec.rate_limit.requests_per_minute,
        requests_per_hour=spec.rate_limit.requests_per_hour,
        max_request_bytes=spec.max_request_bytes,
        max_response_bytes=spec.max_response_bytes,
        timeout_secs=float(spec.timeout_secs),
    )


class Channel:
    """A loaded component plus its capabilities. Callbacks are blocking: call them from worker threads."""

    def __init__(self, caps: CapabilitiesFile, loaded: LoadedComponent, services: HostServices) -> None:
        self.name = caps.name
        self.caps = caps
        self.loaded = loaded
        self.services = services
        chan = caps.capabilities.channel
        self.limits = Limits(
            memory_bytes=services.memory_limit_bytes, fuel=services.fuel_per_callback,
            timeout_s=float(chan.callback_timeout_secs),
        )
        self.workspace = Workspace(self.name, chan.durable_workspace_paths, services.durable)
        self.emit_limiter = EmitLimiter(
            self.name, chan.emit_rate_limit.messages_per_minute, chan.emit_rate_limit.messages_per_hour
        )
        secrets_cap = caps.capabilities.secrets
        self.secrets = SecretsCapability(secrets_cap.allows, services.secret_lookup)
        self.pairing = PairingCapability(self.name, services.pairing)
        self.websocket = WebsocketCapability(self.name)
        self.http: HttpCapability | None = None
        if caps.capabilities.http is not None and services.egress is not None:
            from ..capabilities.http import HttpCapability

            self.http = HttpCapability(
                self.name, http_policy_from_spec(caps.capabilities.http), services.secret_lookup,
                secrets_cap.allows, services.egress,
            )
        self.config: ChannelConfig | None = None

    # ---- the callbacks ---------------------------------------------------------------------------

    def start(self, config_json: str) -> CallOutcome:
        """on-start; ``value`` is the ChannelConfig. An ``err`` result becomes GuestReturnedError."""
        out = self._call("on-start", (config_json,))
        if out.ok:
            if isinstance(out.value, str):
                out.error, out.value = GuestReturnedError(out.value), None
            else:
                out.value = convert.channel_config_from_wit(out.value)
                self.config = out.value
        return out

    def http_request(self, req: IncomingHttpRequest) -> CallOutcome:
        out = self._call("on-http-request", (convert.incoming_request_to_wit(req),))
        if out.ok:
            out.value = convert.outgoing_response_from_wit(out.value)
        return out

    def poll(self) -> CallOutcome:
        return self._call("on-poll", ())

    def respond(self, response: AgentResponse) -> CallOutcome:
        return self._unit(self._call("on-respond", (convert.agent_response_to_wit(response),)))

    def status(self, update: StatusUpdate) -> CallOutcome:
        return self._call("on-status", (convert.status_update_to_wit(update),))

    def broadcast(self, user_id: str, response: AgentResponse) -> CallOutcome:
        return self._unit(self._call("on-broadcast", (user_id, convert.agent_response_to_wit(response))))

    def shutdown(self) -> CallOutcome:
        return self._call("on-shutdown", ())

    @staticmethod
    def _unit(out: CallOutcome) -> CallOutcome:
        if out.ok:
            err = convert.unit_result_from_wit(out.value)
            out.value = None
            if err is not None:
                out.error = GuestReturnedError(err)
        return out

    # ---- the machinery ---------------------------------------------------------------------------

    def _call(self, callback: str, args: tuple[Any, ...]) -> CallOutcome:
        start = time.perf_counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            out = self._attempt(callback, args)
            out.attempts = attempt
            if not isinstance(out.error, _Conflict):
                break
            log.info("[%s] %s re-run after a workspace conflict on %r", self.name, callback, str(out.error))
        else:
            out.error = GuestError("workspace kept conflicting; callback abandoned")
        out.elapsed_s = time.perf_counter() - start
        return out

    def _attempt(self, callback: str, args: tuple[Any, ...]) -> CallOutcome:
        state = CallState(
            channel=self, deadline=time.monotonic() + self.limits.timeout_s,
            workspace=WorkspaceTxn.begin(self.workspace),
            emits=EmitBuffer(self.caps.capabilities.channel.max_message_size),
        )
        out = CallOutcome(callback=callback, state=state)
        try:
            out.value, out.stats = self.services.sandbox.call(self.loaded, callback, args, state, self.limits)
        except (GuestTrap, HostBug) as exc:
            out.error = exc
            self._log_failure(callback, exc)
        state.logs.flush(self.name)
        if out.error is None:
            try:
                self.workspace.commit(state.workspace)
            except WorkspaceConflict as conflict:
                out.error = _Conflict(str(conflict))
                return out
            state.emits.report(self.name)
            admitted = self.emit_limiter.admit(state.emits.messages)
            out.messages = [self._inbound(m, state) for m in admitted]
        return out

    def _inbound(self, msg: EmittedMessage, state: CallState) -> InboundMessage:
        data = {a.id: state.attachments.data[a.id] for a in msg.attachments if a.id in state.attachments.data}
        return InboundMessage(channel=self.name, message=msg, attachment_data=data)

    def _log_failure(self, callback: str, exc: AirlockError) -> None:
        if isinstance(exc, HostBug):
            log.error("[%s] %s failed: host bug: %s", self.name, callback, exc)
        else:
            log.warning("[%s] %s failed: %s", self.name, callback, exc)


class _Conflict(GuestError):
    """Internal: the workspace commit conflicted; the callback is re-run."""
