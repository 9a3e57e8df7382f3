"""``Channel``: one installed component with its capabilities file, its per-channel capability state,
and the rule that a callback applies what it buffered only if it succeeds.

Every callback runs in a fresh sandbox (``runtime.instance.Sandbox``). On success the workspace writes
are committed (optimistically: see ``capabilities.workspace``; a conflicting callback is re-run, at most
``MAX_ATTEMPTS`` times), emitted messages pass the per-channel emit rate limit and are returned with their
attachment bytes; on failure nothing is applied (logs are still flushed, for diagnosis).

Inline attempts (``http_request(req, inline=True)``, made by ``channels.manager`` on the event loop thread): the
same callback with a deadline of ``INLINE_DEADLINE_TICKS`` epoch ticks instead of the channel's timeout (fuel
and memory limits unchanged). An attempt that hits that deadline, or calls a host function that needs a worker
(``channels.callstate``), comes back ``abandoned``: nothing applied, nothing logged, not a failure; the caller
runs the callback again normally. A successful attempt whose messages carry attachment bytes, or are counted in a
shared emit window (``capabilities.emit_shared``), comes back ``pending``: storing them writes blob files, counting
them is a database write, so the caller applies it on a worker thread with ``complete``.

Durability (group commit, ``capabilities.workspace``): applying a callback *stages* its commit (in memory, at once)
and ``CallOutcome.durable`` is the future of its durable write. Every callback method waits for it before
returning (``settle``), except ``http_request(..., settle=False)`` and ``complete(..., settle=False)``: the manager
then frees the channel's lane at once and waits for the write outside it, so the next webhook runs while this one's
commit is written together with others (``settled`` finishes the outcome: the appended messages, or
``CommitFailed``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..capabilities.emit import EmitBuffer, EmitLimiter
from ..capabilities.logging import LogBudget
from ..capabilities.pairing import PairingCapability
from ..capabilities.secrets import SecretsCapability, guest_safe_lookup
from ..capabilities.websocket import WebsocketCapability
from ..capabilities.workspace import CommitFailed, Workspace, WorkspaceConflict, WorkspaceTxn
from ..errors import (
    AirlockError,
    EmitRateLimited,
    GuestError,
    GuestReturnedError,
    GuestTrap,
    HostBug,
    NothingToChange,
    SandboxBusy,
    StateUnavailable,
)
from ..manifest import CapabilitiesFile
from ..observability import context as log_context
from ..runtime import convert
from ..runtime.engine import EPOCH_TICK_S, LoadedComponent
from ..runtime.instance import Limits
from ..runtime.values import (
    AgentResponse,
    ChannelConfig,
    EmittedMessage,
    IncomingHttpRequest,
    MessageEdit,
    Reaction,
    StatusUpdate,
)
from .callstate import CallState
from .outcome import CallOutcome, InboundMessage
from .services import HostServices, http_policy_from_spec, namespaced_lookup

__all__ = ["CallOutcome", "Channel", "HostServices", "InboundMessage", "http_policy_from_spec", "namespaced_lookup"]

if TYPE_CHECKING:
    from ..capabilities.http import HttpCapability
    from ..messages.model import NewEntry

log = logging.getLogger("airlock.channel")

MAX_ATTEMPTS = 3
INLINE_DEADLINE_TICKS = 2
"""Epoch deadline of an inline attempt: 2 ticks of the runtime's 10 ms ticker, so 10-20 ms of wall time."""
INLINE_DEADLINE = "inline deadline"
"""``CallOutcome.abandoned`` when an inline attempt ran out of its deadline."""


class Channel:
    """A loaded component plus its capabilities. Callbacks are blocking: call them from worker threads."""

    def __init__(self, caps: CapabilitiesFile, loaded: LoadedComponent, services: HostServices, *,
                 instance: str | None = None, version: str | None = None) -> None:
        self.name = instance or caps.name
        """The instance name: the channel's name in the gateway (routes, workspace, pairing, health, secrets)."""
        self.platform = caps.name
        """The component's own name (its capabilities file's): send-rate and dedupe defaults; what the guest calls
        itself (its pairing calls, its webhook paths)."""
        self.version = version or caps.version
        """The installed version running (``channels.layout``), else the capabilities file's version."""
        self.secret_lookup = namespaced_lookup(services.secret_lookup, self.name, self.platform)
        """Secret names as the capabilities file and the guest say them, looked up in this instance's namespace."""
        self.caps = caps
        self.loaded = loaded
        self.services = services
        chan = caps.capabilities.channel
        self.limits = Limits(
            memory_bytes=services.memory_limit_bytes, fuel=services.fuel_per_callback,
            timeout_s=float(chan.callback_timeout_secs),
        )
        # deadline_ticks(t) = int(t / tick) + 1, so half a tick below the count gives exactly that count.
        self.inline_limits = Limits(memory_bytes=self.limits.memory_bytes, fuel=self.limits.fuel,
                                    timeout_s=(INLINE_DEADLINE_TICKS - 0.5) * EPOCH_TICK_S)
        self.workspace = Workspace(self.name, chan.durable_workspace_paths, services.durable)
        self.log_budget = LogBudget(self.name, services.log_bytes_per_minute)
        rate = chan.emit_rate_limit
        shared = services.emit_windows
        self.emit_limiter = EmitLimiter(self.name, rate.messages_per_minute, rate.messages_per_hour, window=shared(
            self.name, rate.messages_per_minute, rate.messages_per_hour) if shared is not None else None)
        # Secret names a guest supplies (secret-exists, http placeholders) are checked before the store.
        lookup = guest_safe_lookup(self.secret_lookup)
        self.secrets = SecretsCapability(caps.capabilities.secrets.allows, lookup)
        self.pairing = PairingCapability(self.name, services.pairing, guest_name=self.platform)
        self.websocket = WebsocketCapability(self.name)
        self.http: HttpCapability | None = None
        if caps.capabilities.http is not None and services.egress is not None:
            from ..capabilities.http import HttpCapability

            self.http = HttpCapability(
                self.name, http_policy_from_spec(caps.capabilities.http), lookup, self.secrets.allows,
                services.egress,
            )
        self.config: ChannelConfig | None = None
        self.near_agent = loaded.world.host_interface.startswith("near:agent/")
        """A component of IronClaw's worlds: emitted content over the size cap is truncated, not dropped."""

    # ---- the callbacks ---------------------------------------------------------------------------

    def start(self, config_json: str) -> CallOutcome:
        """on-start; ``value`` is the ChannelConfig. An ``err`` result becomes GuestReturnedError."""
        return self._call("on-start", (config_json,), finish=self._start_value)

    def _start_value(self, out: CallOutcome) -> CallOutcome:
        if out.ok:
            if isinstance(out.value, str):
                out.error, out.value = GuestReturnedError(out.value), None
            else:
                out.value = convert.channel_config_from_wit(out.value)
                self.config = out.value
        return out

    def http_request(self, req: IncomingHttpRequest, *, inline: bool = False, settle: bool = True) -> CallOutcome:
        """on-http-request; ``value`` is the OutgoingHttpResponse. ``inline``: an inline attempt (module
        docstring), whose outcome may be ``abandoned`` or ``pending``. ``settle`` False: return with the commit
        staged (``durable`` set; module docstring)."""
        return self._call("on-http-request", (convert.incoming_request_to_wit(req),), inline,
                          finish=self._http_value, settle=settle)

    def complete(self, out: CallOutcome, settle: bool = True) -> CallOutcome:
        """Apply a ``pending`` inline outcome of on-http-request. Blocking (blob files; with ``settle``, the durable
        write): call it from a worker thread. A conflicting workspace commit runs the callback again in full, here."""
        assert out.pending and out.state is not None
        out.pending = False
        token = log_context.bind(self.name, out.callback)
        try:
            self._apply(out, out.state)
            if isinstance(out.error, _Conflict):
                log.info("[%s] %s re-run after a workspace conflict on %r", self.name, out.callback,
                         str(out.error))
                return self._call(out.callback, out.args, finish=self._http_value, settle=settle)
            if settle:
                self.settle(out)
            return self._observed(self._http_value(out))
        finally:
            log_context.reset(token)

    def settle(self, out: CallOutcome) -> CallOutcome:
        """Wait until ``out``'s staged commit is durable (blocking) and finish it with :meth:`settled`."""
        if out.durable is None:
            return out
        try:
            appended = out.durable.result()
        except CommitFailed as exc:
            return self.settled(out, exc)
        return self.settled(out, appended)

    def settled(self, out: CallOutcome, result: list[NewEntry] | CommitFailed) -> CallOutcome:
        """Finish an outcome whose durable write ended: its messages are the entries the log appended; a failed
        write makes it fail (nothing acknowledged) and gives its emit-rate reservation back."""
        out.durable = None
        if isinstance(result, CommitFailed):
            out.error, out.value, out.messages = result, None, []
            if out.state is not None:
                self.emit_limiter.release(len(out.state.emits.messages))
        elif self.services.inbound is not None:
            out.messages = [_logged(self.name, e) for e in result]
        return out

    @staticmethod
    def _http_value(out: CallOutcome) -> CallOutcome:
        if out.ok:
            out.value = convert.outgoing_response_from_wit(out.value)
        return out

    def poll(self) -> CallOutcome:
        return self._call("on-poll", ())

    def respond(self, response: AgentResponse) -> CallOutcome:
        """on-respond: ``delivery.on-respond`` when the component exports ``delivery`` (world 0.2.0; ``value`` is
        the platform message id or None, an error may carry a send class), else ``channel.on-respond``."""
        args = (convert.agent_response_to_wit(response),)
        if self.loaded.exports_optional("delivery"):
            return self._call("delivery.on-respond", args, finish=self._sent)
        return self._call("on-respond", args, finish=self._unit)

    def status(self, update: StatusUpdate) -> CallOutcome:
        return self._call("on-status", (convert.status_update_to_wit(update),))

    def broadcast(self, user_id: str, response: AgentResponse) -> CallOutcome:
        """on-broadcast, through ``delivery`` when exported (as ``respond``)."""
        args = (user_id, convert.agent_response_to_wit(response))
        if self.loaded.exports_optional("delivery"):
            return self._call("delivery.on-broadcast", args, finish=self._sent)
        return self._call("on-broadcast", args, finish=self._unit)

    @property
    def can_edit(self) -> bool:
        """Whether the component exports ``edits`` (and ``delivery``, which gives the ids edits need)."""
        return self.loaded.exports_optional("edits") and self.loaded.exports_optional("delivery")

    def edit(self, edit: MessageEdit) -> CallOutcome:
        """``edits.on-edit``. Raises NothingToChange when the component does not export it (check ``can_edit``)."""
        if not self.can_edit:
            raise NothingToChange(f"channel {self.name} does not export on-edit")
        return self._call("edits.on-edit", (convert.message_edit_to_wit(edit),), finish=self._sent)

    @property
    def can_react(self) -> bool:
        """Whether the component exports ``reactions`` (and ``delivery``, which gives the ids reactions need)."""
        return self.loaded.exports_optional("reactions") and self.loaded.exports_optional("delivery")

    def react(self, reaction: Reaction) -> CallOutcome:
        """``reactions.on-react``. Raises NothingToChange when the component does not export it."""
        if not self.loaded.exports_optional("reactions"):
            raise NothingToChange(f"channel {self.name} does not export on-react")
        return self._call("reactions.on-react", (convert.reaction_to_wit(reaction),), finish=self._sent)

    @staticmethod
    def _sent(out: CallOutcome) -> CallOutcome:
        """A world 0.2.0 result (``result<option<string>, send-error>`` or ``result<_, send-error>``)."""
        if out.ok:
            out.value, out.error = convert.sent_result_from_wit(out.value)
        return out

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

    def _call(self, callback: str, args: tuple[Any, ...], inline: bool = False,
              finish: Callable[[CallOutcome], CallOutcome] | None = None, settle: bool = True) -> CallOutcome:
        """Run ``callback`` (re-run on workspace conflicts) inside its log context (``observability.context``);
        with ``settle``, wait until its commit is durable; ``finish`` turns the WIT result into the callback's value
        (or a returned error) before the outcome is reported to the observer."""
        token = log_context.bind(self.name, callback)
        try:
            start, cpu_start = time.perf_counter(), time.thread_time()
            for attempt in range(1, MAX_ATTEMPTS + 1):
                out = self._observed_attempt(callback, args, inline)
                out.attempts = attempt
                if not isinstance(out.error, _Conflict):
                    break
                log.info("[%s] %s re-run after a workspace conflict on %r", self.name, callback, str(out.error))
            else:
                out.error = GuestError("workspace kept conflicting; callback abandoned")
            if settle:
                self.settle(out)
            out.elapsed_s = time.perf_counter() - start
            out.cpu_s = time.thread_time() - cpu_start
            return self._observed(finish(out) if finish is not None else out)
        finally:
            log_context.reset(token)

    def _observed(self, out: CallOutcome) -> CallOutcome:
        """Report a finished callback to the observer (not an inline attempt that was dropped or is pending)."""
        observer = self.services.observer
        if observer is not None and out.abandoned is None and not out.pending:
            observer.record(self.name, out)
        return out

    def _observed_attempt(self, callback: str, args: tuple[Any, ...], inline: bool) -> CallOutcome:
        observer = self.services.observer
        if observer is None:
            return self._attempt(callback, args, inline)
        observer.started()
        try:
            return self._attempt(callback, args, inline)
        finally:
            observer.finished()

    def _attempt(self, callback: str, args: tuple[Any, ...], inline: bool = False) -> CallOutcome:
        limits = self.inline_limits if inline else self.limits
        state = CallState(
            channel=self, deadline=time.monotonic() + limits.timeout_s,
            workspace=WorkspaceTxn.begin(self.workspace),
            emits=EmitBuffer(self.caps.capabilities.channel.max_message_size, truncate_long=self.near_agent),
            inline=inline,
        )
        out = CallOutcome(callback=callback, state=state)
        try:
            out.value, out.stats = self.services.sandbox.call(self.loaded, callback, args, state, limits)
        except (GuestTrap, HostBug, SandboxBusy) as exc:
            out.error = exc
        if inline and self._abandon(out, state):
            return out
        if inline and out.error is None and state.emits.messages and self.services.inbound is not None \
                and (state.attachments.data or self.emit_limiter.shared):
            out.pending, out.args = True, args  # blob files, a shared emit window: applied on a worker (docstring)
            return out
        return self._apply(out, state)

    @staticmethod
    def _abandon(out: CallOutcome, state: CallState) -> bool:
        """Mark an inline attempt that needs a worker (a host call said so, or it hit the inline deadline: any
        epoch interrupt of an inline attempt is that deadline, the shorter one) as ``abandoned``."""
        if state.abandoned is None and not (isinstance(out.error, GuestTrap) and out.error.kind == "timeout"):
            return False
        out.abandoned = state.abandoned or INLINE_DEADLINE
        out.value = None
        return True

    def _apply(self, out: CallOutcome, state: CallState) -> CallOutcome:
        """Log a failure, flush the guest's logs and, on success, commit the workspace and admit the emits."""
        if out.error is not None:
            self._log_failure(out.callback, out.error)
        state.logs.flush(self.name, self.log_budget)
        if out.error is None:
            try:
                wait = self.emit_limiter.reserve(len(state.emits.messages))
            except StateUnavailable:  # the shared window's database (``capabilities.emit_shared``): as a commit's
                out.error = CommitFailed("the state database could not count this callback's messages",
                                         unavailable=True)
                return out
            if wait > 0:  # refuse the whole callback before its commit: its input can be offered again
                out.error = EmitRateLimited(len(state.emits.messages), math.ceil(wait))
                return out
            try:
                entries = self._entries(state)
            except StateUnavailable:  # an attachment not stored (blobs in PostgreSQL): nothing kept, 503
                self.emit_limiter.release(len(state.emits.messages))
                out.error = CommitFailed("the blob store could not store this callback's files", unavailable=True)
                return out
            try:
                out.durable = self.workspace.stage(state.workspace, entries)
            except WorkspaceConflict as conflict:
                self.emit_limiter.release(len(state.emits.messages))
                out.error = _Conflict(str(conflict))
                return out
            state.emits.report(self.name)
            if self.services.inbound is None:
                out.messages = [self._inbound(m, state) for m in state.emits.messages]
        return out

    def _entries(self, state: CallState) -> list[NewEntry]:
        """The log entries of what the callback emitted (admitted, routed), or none without a log."""
        pipeline = self.services.inbound
        if pipeline is None or not state.emits.messages:
            return []
        return pipeline.prepare(self.name, self.platform, self.caps.config, self.pairing.store,
                                self.caps.capabilities.channel.dedupe_pointers(), state.emits.messages,
                                state.attachments.data.get)

    def _inbound(self, msg: EmittedMessage, state: CallState) -> InboundMessage:
        data = {a.id: state.attachments.data[a.id] for a in msg.attachments if a.id in state.attachments.data}
        return InboundMessage(channel=self.name, message=msg, attachment_data=data)

    def _log_failure(self, callback: str, exc: AirlockError) -> None:
        if isinstance(exc, HostBug):
            log.error("[%s] %s failed: host bug: %s", self.name, callback, exc)
        elif isinstance(exc, SandboxBusy):
            log.warning("[%s] %s not run: %s", self.name, callback, exc)
        else:
            log.warning("[%s] %s failed: %s", self.name, callback, exc)


def _logged(channel: str, e: NewEntry) -> InboundMessage:
    msg = EmittedMessage(user_id=e.user_id, user_name=e.user_name, content=e.content, thread_id=e.thread_id,
                         metadata_json=e.metadata_json)
    return InboundMessage(channel=channel, message=msg, id=e.id, agent=e.route.agent)


class _Conflict(GuestError):
    """Internal: the workspace commit conflicted; the callback is re-run."""
