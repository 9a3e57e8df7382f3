"""``ChannelManager``: starts installed channels, runs their callbacks in worker threads, polls them,
admits what they emit, and carries the agent's replies back.

Concurrency per channel: two lanes. The poll lane runs ``on-poll`` and never overlaps itself; the main
lane serializes everything else (webhooks, respond, status, broadcast). So a reply never waits behind a
long poll, and the only concurrent pair (a poll and one main-lane callback) is kept consistent by the
workspace's optimistic commit (``capabilities.workspace``).

Webhooks inline: a webhook is first attempted on the event loop thread itself (``Channel.http_request(req,
inline=True)``: a 10-20 ms deadline, normal fuel and memory), because the hand-off to a worker thread costs more
than a small guest's whole run. An attempt that needs a worker (an outbound call, a pairing code, a websocket send,
or the deadline) is dropped without trace and the webhook runs on the worker as before; a success whose messages
carry attachment bytes is applied on a worker (blob files). ``ChannelSlot.inline``
(``channels.inline.InlineGuard``) switches a channel whose attempts mostly abort, or mostly take over a
millisecond, off inline for a while, and counts hits and aborts (``/health``); ``HostConfig.inline_callbacks``
turns it off. Polls, websocket frames and the agent-side callbacks (respond, status, broadcast: nearly always an
outbound call) always run on worker threads.

Group commit: a webhook's callback only *stages* its commit (``capabilities.workspace``) before the main lane is
released, so the channel's next webhook runs at once against the staged values; the handler then waits, outside
the lane, until its writes and messages are durable (``_settle``), and answers only then (a failed write: 503).
Commits staged meanwhile, of this channel and others, share one transaction and one fsync.

Admission (host-side, after the guest, before the commit): ``channels.admission`` re-checks ``dm_policy``; the
admitted messages are routed and appended to the message log in the callback's own transaction
(``messages.inbound``), and ``dispatch`` only wakes the agents. Agents' replies, broadcasts and status updates
come back from the outbox (``messages.outbox``) through ``deliver``.

Websockets: a channel whose capabilities file has ``capabilities.websocket`` gets a host-owned socket
(``socket_runtime.SocketRuntime``), started after a successful on-start and stopped first at shutdown. Its
inbound frames run as synthetic on-http-request callbacks on the main lane, in order, for Airlock's world; a
``near:agent`` component gets them in its workspace queue and an on-poll on the poll lane (``event_queue``). Its
state is in ``ChannelSlot.socket.status`` (shown by ``/health``).

Activation (``activation``): a channel whose websocket protocol this host does not implement stays inactive; the
config given to on-start carries the host's runtime values (``tunnel_url``; for ``near:agent`` components also
``webhook_secret``, ``owner_id`` and ``setup.secret_config_mappings``); warnings about the capabilities file are
kept in ``ChannelSlot.warnings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..capabilities.workspace import CommitFailed
from ..errors import ChannelDisabled, ConfigError, EmitRateLimited
from ..inbound.verifiers import verifier_for
from ..manifest import CapabilitiesFile, load_capabilities
from ..messages.inbox import Inbox
from ..runtime.engine import Runtime
from ..runtime.values import ChannelConfig, HttpEndpoint, IncomingHttpRequest
from . import activation, admission
from .activation import public_path
from .channel import CallOutcome, Channel, HostServices, InboundMessage
from .event_queue import EventQueue, uses_event_queue
from .inline import InlineGuard
from .poll_lease import LeaseHolder, PollLeasing, run_leased
from .polling import PRODUCTION_MIN_POLL_MS, PollSide
from .replies import ReplySide
from .slot import ChannelSlot
from .socket_runtime import SocketRuntime, SocketSettings, frame_request
from .swap import Swap

log = logging.getLogger("airlock.channels")

T = TypeVar("T")


class ChannelManager(ReplySide, PollSide):
    """Owns every channel of one host. Create, ``await start()``, ``await stop()``."""

    def __init__(
        self, runtime: Runtime, services: HostServices, bus: Inbox, *,
        min_poll_interval_override_ms: int | None = None, workers: int = 8,
        sockets: SocketSettings | None = None, inline: bool = True, public_base_url: str | None = None,
        leasing: PollLeasing | None = None,
    ) -> None:
        self.runtime = runtime
        self.services = services
        self.bus = bus
        self.min_poll_override_ms = min_poll_interval_override_ms
        self.sockets = sockets if sockets is not None else SocketSettings()
        self.inline = inline
        self.public_base_url = public_base_url
        self.leasing = leasing
        """None: pollers and websockets run in this process unconditionally (one process holds every channel)."""
        self.on_switch: Callable[[str, bool], Awaitable[None]] | None = None
        """Called after an operator's disable/enable (``state.cluster`` tells the other nodes)."""
        #: Read capabilities files leniently (unknown keys warned about, dropped): ``HostConfig.lenient_capabilities``.
        self.lenient_capabilities = False
        self.slots: dict[str, ChannelSlot] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="airlock-cb")
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.swaps: dict[str, Swap] = {}
        """Channels being replaced by another version (``channels.swap``), by name."""
        self.loading = False
        """True while the host loads the installed channels at start (``AirlockHost.start``): a webhook for a path
        no channel serves yet may be for one still loading, and is answered 503 (retry), not 404."""

    # ---- loading and starting --------------------------------------------------------------------

    async def add(self, wasm: Path, caps_path: Path | CapabilitiesFile, *, instance: str | None = None,
                  version: str | None = None, disabled: bool = False) -> ChannelSlot:
        """Load and start one channel (``instance``: its name in the gateway, default the file's ``name``;
        ``disabled``: load it but keep it stopped). Raises ConfigError / ComponentError for bad files."""
        caps = caps_path if isinstance(caps_path, CapabilitiesFile) else \
            load_capabilities(caps_path, lenient=self.lenient_capabilities)
        name = instance or caps.name
        if name in self.slots:
            raise ConfigError(f"channel {name!r} is already loaded")
        loaded = await asyncio.to_thread(self.runtime.load, wasm)
        slot = self.new_slot(Channel(caps, loaded, self.services, instance=name, version=version))
        self.slots[name] = slot
        log.info("channel %s: %s (%s, %d KB, %.0f ms%s)", name, loaded.world.name, wasm.name,
                 loaded.size_bytes // 1024, loaded.load_ms, ", from cache" if loaded.from_cache else "")
        if disabled:
            from .lifecycle import DISABLED

            slot.disabled, slot.reason = True, DISABLED
            return slot
        await self._activate(slot)
        return slot

    def new_slot(self, channel: Channel) -> ChannelSlot:
        """A fresh slot (not started, not registered in ``slots``) for ``channel``."""
        slot = ChannelSlot(channel, inline=InlineGuard(self.inline))
        slot.socket = self._socket_for(slot)
        return slot

    def missing_secrets(self, caps: CapabilitiesFile, instance: str | None = None) -> list[str]:
        """Required secrets of ``caps`` not stored for ``instance`` (default: the file's name), named as the store
        and ``airlock secrets set`` name them (``support-bot/telegram_bot_token`` for a second account)."""
        if caps.setup is None:
            return []
        from .catalog import secret_name_for

        name = instance or caps.name
        wanted = [secret_name_for(name, caps.name, s.name) for s in caps.setup.required_secrets if not s.optional]
        return [n for n in wanted if self.services.secret_lookup(n) is None]

    async def _activate(self, slot: ChannelSlot) -> None:
        ch = slot.channel
        slot.warnings = activation.file_warnings(ch.caps)
        for warning in slot.warnings:
            log.warning("channel %s: %s", ch.name, warning)
        cannot = activation.blocker(ch.caps)
        if cannot is not None:
            slot.reason = f"inactive: {cannot}"
            log.error("channel %s %s", ch.name, slot.reason)
            return
        missing = self.missing_secrets(ch.caps, ch.name)
        if missing:
            slot.reason = f"inactive: missing secrets {', '.join(missing)} (airlock secrets set NAME)"
            log.warning("channel %s %s", ch.name, slot.reason)
            return
        config = activation.start_config(ch.caps, ch.loaded.world, public_base_url=self.public_base_url,
                                         secret_lookup=ch.secret_lookup, instance=ch.name)
        out = await self._run(ch.start, config)
        if not out.ok:
            slot.reason = f"inactive: on-start failed: {out.error}"
            log.error("channel %s %s", ch.name, slot.reason)
            return
        assert isinstance(out.value, ChannelConfig)
        self._register(slot, out.value)
        slot.active, slot.reason = True, "active"
        if self.leasing is not None and (slot.poll_interval_s is not None or slot.socket is not None):
            slot.lease = LeaseHolder(self.leasing, f"poll:{ch.name}")
            slot.poll_task = asyncio.create_task(run_leased(self, slot, slot.lease), name=f"lease-{ch.name}")
            return
        if slot.poll_interval_s is not None:
            slot.poll_task = asyncio.create_task(self._poll_loop(slot), name=f"poll-{ch.name}")
        await self._start_socket(slot)

    async def _start_socket(self, slot: ChannelSlot) -> None:
        if slot.socket is not None:
            await slot.socket.start()
        if slot.event_queue is not None:
            slot.event_queue.kick()  # a durable queue may hold frames from the last run

    def _socket_for(self, slot: ChannelSlot) -> SocketRuntime | None:
        spec = slot.channel.caps.capabilities.websocket
        if spec is None:
            return None

        async def deliver(text: str) -> None:
            # A frame cannot be redelivered by the platform: one held back by the emit rate waits and re-runs.
            while True:
                out = await self.run_main(slot, slot.channel.http_request, frame_request(text))
                if not isinstance(out.error, EmitRateLimited) or self._stopping.is_set():
                    return
                await self._sleep_unless_stopping(out.error.retry_after)

        if uses_event_queue(slot.channel.loaded.world):
            slot.event_queue = self._event_queue_for(slot)
            deliver = slot.event_queue.deliver
        return SocketRuntime(slot.channel.name, spec, secret_lookup=slot.channel.secret_lookup,
                             capability=slot.channel.websocket, deliver=deliver, settings=self.sockets,
                             wait_for_room=self.bus.wait_for_room)

    def _event_queue_for(self, slot: ChannelSlot) -> EventQueue:
        def dropped(n: int) -> None:
            if slot.socket is not None:
                slot.socket.status.frames_dropped += n

        async def poll() -> float | None:
            out = await self._poll_once(slot)
            return float(out.error.retry_after) if isinstance(out.error, EmitRateLimited) else None

        return EventQueue(slot.channel.name, slot.channel.workspace, run=self._run, lane=slot.poll_lane,
                          poll=poll, on_drop=dropped, wait_for_room=self.bus.wait_for_room)

    def _register(self, slot: ChannelSlot, cfg: ChannelConfig) -> None:
        chan = slot.channel.caps.capabilities.channel
        if cfg.http_endpoints:  # built once here; it reads secrets per request (airlock secrets set applies live)
            slot.verifier = verifier_for(slot.channel.caps, slot.channel.secret_lookup, self.services.replay)
        for ep in cfg.http_endpoints:
            if ep.path not in chan.allowed_paths:
                log.warning("channel %s asked for %s, not in allowed_paths; not registered", slot.channel.name,
                            ep.path)
                continue
            public = public_path(ep.path, slot.channel.name, slot.channel.platform)
            owner = self.route(public)
            if owner is not None:
                log.warning("channel %s asked for %s, already taken by %s", slot.channel.name, public,
                            owner[0].channel.name)
                continue
            slot.endpoints[public] = ep
            shown = public if public == ep.path else f"{public} (the guest sees {ep.path})"
            log.info("channel %s: webhook %s %s", slot.channel.name, ",".join(ep.methods), shown)
        if cfg.poll is not None and cfg.poll.enabled:
            if not chan.allow_polling:
                log.warning("channel %s wants polling but allow_polling is false", slot.channel.name)
                return
            slot.poll_interval_s = self._clamp_poll(slot.channel.name, cfg.poll.interval_ms,
                                                    chan.min_poll_interval_ms) / 1000

    def _clamp_poll(self, name: str, wanted_ms: int, cap_min_ms: int) -> int:
        floor = max(cap_min_ms, PRODUCTION_MIN_POLL_MS)
        if self.min_poll_override_ms is not None:
            floor = self.min_poll_override_ms
            log.warning("channel %s: TEST SETTING min poll interval lowered to %d ms", name, floor)
        interval = max(wanted_ms, floor)
        log.info("channel %s: polling every %d ms (asked %d)", name, interval, wanted_ms)
        return interval

    def route(self, path: str) -> tuple[ChannelSlot, HttpEndpoint] | None:
        for slot in self.slots.values():
            if slot.active and path in slot.endpoints:
                return slot, slot.endpoints[path]
        return None

    # ---- running callbacks -----------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # In a copy of the caller's context, so a callback logs under the trace id of the request that ran it
        # (``observability.context``; run_in_executor alone does not carry contextvars to the thread).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, fn, *args)

    async def run_main(self, slot: ChannelSlot, fn: Callable[..., CallOutcome], *args: Any) -> CallOutcome:
        """Run a main-lane callback (serialized per channel) and dispatch what it emitted."""
        async with slot.main_lane:
            if slot.disabled:
                return _disabled(slot, getattr(fn, "__name__", "callback"))
            out = await self._run(fn, *args)
        if not out.ok and not isinstance(out.error, EmitRateLimited):
            slot.failures += 1
        self.dispatch(slot, out)
        return out

    async def run_webhook(self, slot: ChannelSlot, req: IncomingHttpRequest) -> CallOutcome:
        """Run on-http-request on the main lane, inline first when the channel's guard allows it (module
        docstring), and dispatch what it emitted."""
        async with slot.main_lane:
            if slot.disabled or not slot.active:  # routed before the channel stopped, queued behind its last callback
                return _disabled(slot, "on-http-request")
            out = self._try_inline(slot, req) if slot.inline.should_try() else None
            if out is not None and out.pending:
                out = await self._run(slot.channel.complete, out, False)
            if out is None:
                out = await self._run(functools.partial(slot.channel.http_request, req, settle=False))
        out = await self._settle(slot, out)
        if not out.ok and not isinstance(out.error, EmitRateLimited):
            slot.failures += 1
        self.dispatch(slot, out)
        return out

    @staticmethod
    async def _settle(slot: ChannelSlot, out: CallOutcome) -> CallOutcome:
        """Wait (on the event loop, the lane free) until ``out``'s staged commit is durable (module docstring)."""
        if out.durable is None:
            return out
        try:
            appended = await asyncio.wrap_future(out.durable)
        except CommitFailed as exc:
            return slot.channel.settled(out, exc)
        return slot.channel.settled(out, appended)

    @staticmethod
    def _try_inline(slot: ChannelSlot, req: IncomingHttpRequest) -> CallOutcome | None:
        """One inline attempt on this (the event loop's) thread, its commit staged; None if it was abandoned."""
        out = slot.channel.http_request(req, inline=True, settle=False)
        slot.inline.record(out.abandoned, out.cpu_s)
        if out.abandoned is not None:
            log.debug("[%s] webhook moved to a worker (%s)", slot.channel.name, out.abandoned)
            return None
        return out

    def dispatch(self, slot: ChannelSlot, out: CallOutcome) -> None:
        """Wake the agents for what the callback committed to the log (admitted and routed before the commit)."""
        agents = [m.agent for m in out.messages]
        self.bus.appended(len(agents), None if None in agents else [a for a in agents if a is not None])

    def admit(self, channel: Channel, msg: InboundMessage) -> bool:
        """Host-side re-check of owner / dm_policy / allow_from (``channels.admission``)."""
        return admission.admit(channel.name, channel.caps.config, channel.pairing.store, msg.message)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # ---- shutdown ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        self._stopping.set()
        for slot in self.slots.values():
            slot.halt.set()
        await asyncio.gather(*(s.socket.stop() for s in self.slots.values() if s.socket is not None))
        await asyncio.gather(*(s.event_queue.stop() for s in self.slots.values() if s.event_queue is not None))
        for task in self._typing.values():
            task.cancel()
        for slot in self.slots.values():
            if slot.poll_task is not None:
                slot.poll_task.cancel()
        for slot in self.slots.values():
            if slot.poll_task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await slot.poll_task
            if slot.active:
                await self.run_main(slot, slot.channel.shutdown)
                slot.active = False
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- operator lifecycle (``channels.lifecycle``, ``channels.swap``, ``channels.operations``) --------------

    async def disable(self, name: str) -> ChannelSlot:
        """Stop channel ``name`` until :meth:`enable` (``lifecycle.disable``). Raises ConfigError if unknown."""
        from . import lifecycle

        slot = await lifecycle.disable(self, name)
        await self._switched(name, False)
        return slot

    async def enable(self, name: str) -> ChannelSlot:
        """Start channel ``name`` again (``lifecycle.enable``). Raises ConfigError if unknown."""
        from . import lifecycle

        slot = await lifecycle.enable(self, name)
        await self._switched(name, True)
        return slot

    async def _switched(self, name: str, enabled: bool) -> None:
        """Tell the cluster (``on_switch``, ``state.cluster``); the switch here is done whatever happens there."""
        if self.on_switch is None:
            return
        try:
            await self.on_switch(name, enabled)
        except Exception as exc:  # the database is down: the other nodes keep their switch until told again
            log.warning("channel %s: the other nodes were not told of the switch: %s", name, exc)

    async def remove(self, name: str) -> None:
        """Stop channel ``name`` (as a disable) and forget it. Raises ConfigError if unknown."""
        await self.disable(name)
        self.slots.pop(name, None)
        log.info("channel %s removed", name)

    async def secrets_changed(self) -> list[str]:
        """Start the channels that waited only for a secret now stored, stop those missing a removed one
        (``lifecycle.secrets_changed``). Returns the names whose state changed."""
        from . import lifecycle

        return await lifecycle.secrets_changed(self)


def _disabled(slot: ChannelSlot, callback: str) -> CallOutcome:
    return CallOutcome(callback=callback, error=ChannelDisabled(f"channel {slot.channel.name} is disabled"))
