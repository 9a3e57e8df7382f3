"""``ChannelManager``: starts installed channels, runs their callbacks in worker threads, polls them,
admits what they emit, and carries the agent's replies back.

Concurrency per channel: two lanes. The poll lane runs ``on-poll`` and never overlaps itself; the main
lane serializes everything else (webhooks, respond, status, broadcast). So a reply never waits behind a
long poll, and the only concurrent pair (a poll and one main-lane callback) is kept consistent by the
workspace's optimistic commit (``capabilities.workspace``).

Webhooks inline: a webhook is first attempted on the event loop thread itself (``Channel.http_request(req,
inline=True)``: a 10-20 ms deadline, normal fuel and memory), because the hand-off to a worker thread costs more
than a small guest's whole run. An attempt that needs a worker (an outbound call, a pairing code, a websocket
send, or the deadline) is dropped without trace and the webhook runs on the worker as before; a success with
durable workspace writes is committed on a worker. ``ChannelSlot.inline`` (``channels.inline.InlineGuard``)
switches a channel whose attempts mostly abort, or mostly take over a millisecond, off inline for a while, and
counts hits and aborts (``/health``); ``HostConfig.inline_callbacks`` turns it off. Polls, websocket frames
and the agent-side callbacks (respond, status, broadcast: nearly always an outbound call) always run on worker
threads.

Admission (host-side, after the guest): for a direct message, ``dm_policy`` from the capabilities file's
``config`` is enforced again: ``open`` admits everyone; ``allowlist`` and ``pairing`` admit the
``owner_id``, ids in ``allow_from`` (``"*"`` admits everyone; ``"@name"`` entries are platform
usernames the host cannot check, so they admit no one here), and ids paired through
``airlock pairing approve``; ``disabled``
refuses every DM. A message whose metadata marks a group chat (``chat_type`` group/supergroup/channel, or
``is_group: true``) is left to the guest's mention rules.

Websockets: a channel whose capabilities file has ``capabilities.websocket`` gets a host-owned socket
(``socket_runtime.SocketRuntime``), started after a successful on-start and stopped first at shutdown. Its
inbound frames run as synthetic on-http-request callbacks on the main lane, in order; its state is in
``ChannelSlot.socket.status`` (shown by ``/health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..agents.bus import MessageBus
from ..config import CapabilitiesFile, load_capabilities
from ..errors import AirlockError, ChannelDisabled, ConfigError, EmitRateLimited
from ..inbound.verifiers import Verifier, verifier_for
from ..runtime.engine import Runtime
from ..runtime.values import AgentResponse, ChannelConfig, HttpEndpoint, IncomingHttpRequest, StatusUpdate
from .channel import CallOutcome, Channel, HostServices, InboundMessage
from .inline import InlineGuard
from .socket_runtime import SocketRuntime, SocketSettings, frame_request

log = logging.getLogger("airlock.channels")

PRODUCTION_MIN_POLL_MS = 30_000
LONG_POLL_WAIT_S = 1.0
"""A poll whose HTTP request was held at least this long is a long poll: the next one starts at once."""
TYPING_REFRESH_S = 4.0
TYPING_MAX_S = 300.0
GROUP_CHAT_TYPES = frozenset({"group", "supergroup", "channel"})

T = TypeVar("T")


@dataclass
class ChannelSlot:
    """A channel and its runtime state inside the manager."""

    channel: Channel
    active: bool = False
    reason: str = "starting"
    endpoints: dict[str, HttpEndpoint] = field(default_factory=dict)
    poll_interval_s: float | None = None
    main_lane: asyncio.Lock = field(default_factory=asyncio.Lock)
    poll_task: asyncio.Task[None] | None = None
    socket: SocketRuntime | None = None
    polls: int = 0
    failures: int = 0
    verifier: Verifier | None = None
    """Webhook check built at registration (``inbound.verifiers``); None until then."""
    inline: InlineGuard = field(default_factory=InlineGuard)
    """Whether webhooks are attempted inline, with counters (module docstring)."""
    disabled: bool = False
    """Disabled by the operator (``ChannelManager.disable``): not routed, no callbacks run."""
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to end the poll loop (disable, shutdown)."""
    in_poll: bool = False
    """True while an on-poll callback runs (disable waits for it instead of cancelling)."""
    lifecycle: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serializes disable and enable of this channel."""


@dataclass(frozen=True)
class Delivery:
    """A message handed to the agent, with the id the agent uses to reply."""

    id: str
    inbound: InboundMessage

    @property
    def channel(self) -> str:
        return self.inbound.channel

    @property
    def content(self) -> str:
        return self.inbound.message.content

    @property
    def user_id(self) -> str:
        return self.inbound.message.user_id

    @property
    def user_name(self) -> str | None:
        return self.inbound.message.user_name

    @property
    def thread_id(self) -> str | None:
        return self.inbound.message.thread_id

    @property
    def metadata(self) -> dict[str, Any]:
        try:
            value = json.loads(self.inbound.message.metadata_json or "{}")
        except (ValueError, RecursionError):  # guest-written metadata: any JSON, any depth
            return {}
        return value if isinstance(value, dict) else {}


class ChannelManager:
    """Owns every channel of one host. Create, ``await start()``, ``await stop()``."""

    def __init__(
        self, runtime: Runtime, services: HostServices, bus: MessageBus, *,
        min_poll_interval_override_ms: int | None = None, workers: int = 8,
        sockets: SocketSettings | None = None, inline: bool = True,
    ) -> None:
        self.runtime = runtime
        self.services = services
        self.bus = bus
        self.min_poll_override_ms = min_poll_interval_override_ms
        self.sockets = sockets if sockets is not None else SocketSettings()
        self.inline = inline
        self.slots: dict[str, ChannelSlot] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="airlock-cb")
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.secret_exists: Callable[[str], bool] = lambda name: services.secret_lookup(name) is not None

    # ---- loading and starting --------------------------------------------------------------------

    def discover(self, channels_dir: Path) -> list[tuple[Path, Path]]:
        """Pairs of (<name>.wasm, <name>.capabilities.json) in ``channels_dir``, sorted by name."""
        if not channels_dir.is_dir():
            return []
        pairs = []
        for caps in sorted(channels_dir.glob("*.capabilities.json")):
            wasm = caps.with_name(caps.name.removesuffix(".capabilities.json") + ".wasm")
            if wasm.exists():
                pairs.append((wasm, caps))
            else:
                log.warning("%s has no component beside it (%s); skipped", caps.name, wasm.name)
        return pairs

    async def load_dir(self, channels_dir: Path) -> None:
        for wasm, caps in self.discover(channels_dir):
            try:
                await self.add(wasm, caps)
            except AirlockError as exc:
                log.error("channel %s not loaded: %s", wasm.stem, exc)

    async def add(self, wasm: Path, caps_path: Path | CapabilitiesFile) -> ChannelSlot:
        """Load and start one channel. Raises ConfigError / ComponentError for bad files."""
        caps = caps_path if isinstance(caps_path, CapabilitiesFile) else load_capabilities(caps_path)
        if caps.name in self.slots:
            raise ConfigError(f"channel {caps.name!r} is already loaded")
        loaded = await asyncio.to_thread(self.runtime.load, wasm)
        slot = ChannelSlot(Channel(caps, loaded, self.services), inline=InlineGuard(self.inline))
        slot.socket = self._socket_for(slot)
        self.slots[caps.name] = slot
        log.info("channel %s: %s (%s, %d KB, %.0f ms%s)", caps.name, loaded.world.name, wasm.name,
                 loaded.size_bytes // 1024, loaded.load_ms, ", from cache" if loaded.from_cache else "")
        await self._activate(slot)
        return slot

    def missing_secrets(self, caps: CapabilitiesFile) -> list[str]:
        if caps.setup is None:
            return []
        return [s.name for s in caps.setup.required_secrets if not s.optional and not self.secret_exists(s.name)]

    async def _activate(self, slot: ChannelSlot) -> None:
        ch = slot.channel
        missing = self.missing_secrets(ch.caps)
        if missing:
            slot.reason = f"inactive: missing secrets {', '.join(missing)} (airlock secrets set NAME)"
            log.warning("channel %s %s", ch.name, slot.reason)
            return
        out = await self._run(ch.start, json.dumps(ch.caps.config))
        if not out.ok:
            slot.reason = f"inactive: on-start failed: {out.error}"
            log.error("channel %s %s", ch.name, slot.reason)
            return
        assert isinstance(out.value, ChannelConfig)
        self._register(slot, out.value)
        slot.active, slot.reason = True, "active"
        if slot.poll_interval_s is not None:
            slot.poll_task = asyncio.create_task(self._poll_loop(slot), name=f"poll-{ch.name}")
        if slot.socket is not None:
            await slot.socket.start()

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

        return SocketRuntime(slot.channel.name, spec, secret_lookup=self.services.secret_lookup,
                             capability=slot.channel.websocket, deliver=deliver, settings=self.sockets,
                             wait_for_room=self.bus.wait_for_room)

    def _register(self, slot: ChannelSlot, cfg: ChannelConfig) -> None:
        chan = slot.channel.caps.capabilities.channel
        if cfg.http_endpoints:  # built once here; it reads secrets per request (airlock secrets set applies live)
            slot.verifier = verifier_for(slot.channel.caps, self.services.secret_lookup)
        for ep in cfg.http_endpoints:
            if ep.path not in chan.allowed_paths:
                log.warning("channel %s asked for %s, not in allowed_paths; not registered", slot.channel.name,
                            ep.path)
                continue
            owner = self.route(ep.path)
            if owner is not None:
                log.warning("channel %s asked for %s, already taken by %s", slot.channel.name, ep.path,
                            owner[0].channel.name)
                continue
            slot.endpoints[ep.path] = ep
            log.info("channel %s: webhook %s %s", slot.channel.name, ",".join(ep.methods), ep.path)
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
            if slot.disabled:  # routed before the operator disabled the channel, queued behind its last callback
                return _disabled(slot, "on-http-request")
            out = self._try_inline(slot, req) if slot.inline.should_try() else None
            if out is not None and out.pending:
                out = await self._run(slot.channel.complete, out)
            if out is None:
                out = await self._run(slot.channel.http_request, req)
        if not out.ok and not isinstance(out.error, EmitRateLimited):
            slot.failures += 1
        self.dispatch(slot, out)
        return out

    @staticmethod
    def _try_inline(slot: ChannelSlot, req: IncomingHttpRequest) -> CallOutcome | None:
        """One inline attempt on this (the event loop's) thread; None if it was abandoned."""
        out = slot.channel.http_request(req, inline=True)
        slot.inline.record(out.abandoned, out.elapsed_s)
        if out.abandoned is not None:
            log.debug("[%s] webhook moved to a worker (%s)", slot.channel.name, out.abandoned)
            return None
        return out

    def dispatch(self, slot: ChannelSlot, out: CallOutcome) -> None:
        for msg in out.messages:
            if self.admit(slot.channel, msg):
                self.bus.put(msg)
            elif self.services.observer is not None:
                self.services.observer.dropped(slot.channel.name, "dm_policy")

    def admit(self, channel: Channel, msg: InboundMessage) -> bool:
        """Host-side re-check of owner / dm_policy / allow_from (see the module docstring)."""
        config = channel.caps.config
        policy = str(config.get("dm_policy") or "open")
        if policy == "open" or self._is_group(msg):
            return True
        user = msg.message.user_id
        if policy == "disabled":
            log.warning("[%s] message from %s refused by the host (dm_policy disabled)", channel.name, user)
            return False
        owner = config.get("owner_id")
        allow = {str(x) for x in (config.get("allow_from") or [])}
        if (owner is not None and str(owner) == user) or user in allow or "*" in allow:
            return True
        paired = channel.pairing.store
        if paired.resolve_identity(channel.name, user) is not None or user in paired.allow_from(channel.name):
            return True
        log.warning("[%s] message from %s refused by the host (dm_policy %s)", channel.name, user, policy)
        return False

    @staticmethod
    def _is_group(msg: InboundMessage) -> bool:
        try:
            meta = json.loads(msg.message.metadata_json or "{}")
        except (ValueError, RecursionError):  # guest-written metadata: any JSON, any depth
            return False
        if not isinstance(meta, dict):
            return False
        return meta.get("chat_type") in GROUP_CHAT_TYPES or meta.get("is_group") is True

    async def _poll_loop(self, slot: ChannelSlot) -> None:
        interval = slot.poll_interval_s or PRODUCTION_MIN_POLL_MS / 1000
        while not slot.halt.is_set():
            await self.bus.wait_for_room()
            if slot.halt.is_set():
                break
            slot.in_poll = True
            try:
                out = await self._run(slot.channel.poll)
            finally:
                slot.in_poll = False
            slot.polls += 1
            if not out.ok:
                slot.failures += 1
            self.dispatch(slot, out)
            if out.ok and self._poll_again_now(out):
                continue
            rate = out.error.retry_after if isinstance(out.error, EmitRateLimited) else 0
            with contextlib.suppress(TimeoutError):  # slot.halt: shutdown, or the operator disabled the channel
                await asyncio.wait_for(slot.halt.wait(), timeout=max(interval, rate))

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    @staticmethod
    def _poll_again_now(out: CallOutcome) -> bool:
        """A poll that waited (a long poll the platform held) or found work (emitted, or advanced its
        workspace cursor) is followed at once; an idle short poll waits the interval."""
        state = out.state
        if state is None:
            return False
        return state.http_wait_s >= LONG_POLL_WAIT_S or bool(out.messages) or bool(state.workspace.writes)

    # ---- agent side --------------------------------------------------------------------------------

    def slot_for(self, name: str) -> ChannelSlot:
        slot = self.slots.get(name)
        if slot is None or not slot.active:
            raise ConfigError(f"channel {name!r} is not active")
        return slot

    async def respond(self, delivery: Delivery, content: str, *, thread_id: str | None = None) -> CallOutcome:
        """Deliver the agent's reply through on-respond with the ORIGINAL message's metadata."""
        self._stop_typing(delivery.id)
        slot = self.slot_for(delivery.channel)
        response = AgentResponse(
            message_id=delivery.id, content=content, thread_id=thread_id or delivery.thread_id,
            metadata_json=delivery.inbound.message.metadata_json,
        )
        out = await self.run_main(slot, slot.channel.respond, response)
        if not out.ok:
            log.warning("[%s] reply to %s not delivered: %s", delivery.channel, delivery.id, out.error)
        return out

    async def broadcast(self, channel: str, user_id: str, content: str) -> CallOutcome:
        slot = self.slot_for(channel)
        response = AgentResponse(message_id=str(uuid.uuid4()), content=content, thread_id=None, metadata_json="{}")
        return await self.run_main(slot, slot.channel.broadcast, user_id, response)

    async def send_status(self, delivery: Delivery, status: str, message: str = "") -> CallOutcome:
        """on-status; a "thinking" status is refreshed every 4 s until the reply (at most 5 minutes)."""
        slot = self.slot_for(delivery.channel)
        update = StatusUpdate(status=status, message=message, metadata_json=delivery.inbound.message.metadata_json)
        out = await self.run_main(slot, slot.channel.status, update)
        if status == "thinking" and delivery.id not in self._typing:
            self._typing[delivery.id] = asyncio.create_task(self._refresh_typing(slot, update))
        elif status != "thinking":
            self._stop_typing(delivery.id)
        return out

    async def _refresh_typing(self, slot: ChannelSlot, update: StatusUpdate) -> None:
        elapsed = 0.0
        while elapsed < TYPING_MAX_S:
            await asyncio.sleep(TYPING_REFRESH_S)
            elapsed += TYPING_REFRESH_S
            await self.run_main(slot, slot.channel.status, update)

    def _stop_typing(self, delivery_id: str) -> None:
        task = self._typing.pop(delivery_id, None)
        if task is not None:
            task.cancel()

    # ---- shutdown ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        self._stopping.set()
        for slot in self.slots.values():
            slot.halt.set()
        await asyncio.gather(*(s.socket.stop() for s in self.slots.values() if s.socket is not None))
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

    # ---- operator lifecycle: disable / enable (admin API; ``channels.lifecycle``) ----------------------
    # Apart from the message path on purpose; upgrade and rollback will join this section.

    async def disable(self, name: str) -> ChannelSlot:
        """Stop channel ``name`` until :meth:`enable` (``lifecycle.disable``). Raises ConfigError if unknown."""
        from . import lifecycle

        return await lifecycle.disable(self, name)

    async def enable(self, name: str) -> ChannelSlot:
        """Start channel ``name`` again (``lifecycle.enable``). Raises ConfigError if unknown."""
        from . import lifecycle

        return await lifecycle.enable(self, name)


def _disabled(slot: ChannelSlot, callback: str) -> CallOutcome:
    return CallOutcome(callback=callback, error=ChannelDisabled(f"channel {slot.channel.name} is disabled"))
