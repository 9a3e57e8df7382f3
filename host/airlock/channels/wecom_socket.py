"""The WeCom intelligent-bot long connection (``protocol: "wecom_aibot"``): the host subscribes and keeps the
connection alive; the guest sees the platform's frames and answers with bot commands.

Source: WeCom developer documentation, intelligent bot ("智能机器人") long-connection mode: every frame is a JSON
object; a command is ``{"cmd", "headers": {"req_id"}, "body"}`` and its answer (an "ack") is
``{"headers": {"req_id"}, "errcode", "errmsg"}`` with the same ``req_id``. The same contract is what IronClaw's
``wecom_aibot`` runtime and WeCom channel implement (nearai/ironclaw, ``channels-src/wecom``).

Per connection:

1. The host sends ``aibot_subscribe`` with ``body: {"bot_id", "secret"}``, the values of the secrets named by
   ``bot_id_secret_name`` and ``bot_secret_name`` (the guest never holds them). The ack must come within
   :data:`SUBSCRIBE_TIMEOUT_S` with ``errcode`` 0. A refusal ends the connection (the runtime backs off and
   retries); :data:`MAX_SUBSCRIBE_REFUSALS` refusals in a row stop the socket for good (a wrong bot id or secret
   is not retried forever).
2. Keep-alive is application level: ``{"cmd": "ping", "headers": {"req_id"}}`` every ``heartbeat_interval_ms``
   (default :data:`DEFAULT_PING_INTERVAL_S`). When ``max_missed_heartbeat_acks`` (default
   :data:`DEFAULT_MAX_MISSED_ACKS`) pings in a row were not acknowledged, the connection is dead: the host closes
   it and reconnects (no verdict over an interval in which reading waited for a slow guest).
3. Every other text frame goes to the guest as it came (message and event callbacks ``aibot_msg_callback`` /
   ``aibot_event_callback``, and the acks of the guest's own commands); the acks of the host's subscribe and pings
   do not. An ``aibot_event_callback`` whose event type is ``disconnected_event`` means another connection
   subscribed with this bot (WeCom keeps one per bot): the socket stops for good instead of taking it back.
4. A guest may send only the bot commands in :data:`GUEST_COMMANDS`, each a JSON object (no repeated key) with a
   non-empty ``headers.req_id``; ``aibot_subscribe`` and ``ping`` belong to the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets as pysecrets
from typing import Any

import aiohttp

from ..manifest import WebsocketCapability as WebsocketSpec
from ..runtime.linker import GuestFault
from .socket_base import RESUMABLE_CLOSE, ConnectionEnd, DuplicateKey, Link, closed_end, loads_strict, log

PROTOCOL = "wecom_aibot"
SUBSCRIBE_CMD = "aibot_subscribe"
PING_CMD = "ping"
EVENT_CALLBACK_CMD = "aibot_event_callback"
DISCONNECTED_EVENT = "disconnected_event"

DEFAULT_PING_INTERVAL_S = 30.0
"""WeCom closes a long connection that stays silent; its documentation asks for a ping about every 30 s."""
DEFAULT_MAX_MISSED_ACKS = 2
SUBSCRIBE_TIMEOUT_S = 10.0
MAX_SUBSCRIBE_REFUSALS = 3
MAX_ERRMSG_CHARS = 120
"""How much of the platform's ``errmsg`` a refusal's reason keeps (it goes to the log and the channel status)."""

#: Bot commands a channel may send (WeCom long-connection commands other than subscribe and ping).
GUEST_COMMANDS = frozenset({
    "aibot_respond_msg", "aibot_respond_welcome_msg", "aibot_respond_update_msg", "aibot_send_msg",
    "aibot_upload_media_init", "aibot_upload_media_chunk", "aibot_upload_media_finish",
})


def _req_id_of(frame: dict[str, Any]) -> str | None:
    headers = frame.get("headers")
    req_id = headers.get("req_id") if isinstance(headers, dict) else None
    return req_id if isinstance(req_id, str) and req_id else None


def _errcode(frame: dict[str, Any]) -> int | None:
    code = frame.get("errcode")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _is_disconnected_event(frame: dict[str, Any]) -> bool:
    body = frame.get("body")
    event = body.get("event") if isinstance(body, dict) else None
    return (frame.get("cmd") == EVENT_CALLBACK_CMD and isinstance(event, dict)
            and event.get("eventtype") == DISCONNECTED_EVENT)


class WecomDriver:
    """See the module docstring. ``bot_id`` and ``secret`` are never logged nor given to the guest."""

    name = PROTOCOL
    ws_ping_interval_s: float | None = None

    def __init__(self, channel: str, spec: WebsocketSpec, *, bot_id: str, secret: str) -> None:
        self.channel = channel
        self.spec = spec
        self._bot_id, self._secret = bot_id, secret
        ms = spec.heartbeat_interval_ms
        self.ping_interval_s = ms / 1000 if ms else DEFAULT_PING_INTERVAL_S
        self.max_missed_acks = spec.max_missed_heartbeat_acks or DEFAULT_MAX_MISSED_ACKS
        self.subscribes = 0
        self.pings = 0
        self._refusals = 0
        self._ids = itertools.count(1)
        self._pings: set[str] = set()
        self._unacked = 0
        self._dead = False

    def url(self) -> str:
        return self.spec.url

    def _req_id(self, cmd: str) -> str:
        return f"{cmd}_{next(self._ids)}_{pysecrets.token_hex(4)}"

    # ---- one connection ----------------------------------------------------------------------------

    async def run(self, link: Link) -> ConnectionEnd:
        self._pings.clear()
        self._unacked, self._dead = 0, False
        sub_id = self._req_id(SUBSCRIBE_CMD)
        self.subscribes += 1
        frame = {"cmd": SUBSCRIBE_CMD, "headers": {"req_id": sub_id},
                 "body": {"bot_id": self._bot_id, "secret": self._secret}}
        try:
            await link.send(json.dumps(frame))
        except (ConnectionError, aiohttp.ClientError):
            return ConnectionEnd("closed before the subscribe frame was sent")
        refused = await self._await_subscribed(link, sub_id)
        if refused is not None:
            return refused
        established = link.clock()
        log.info("[%s] wecom: subscribed", self.channel)
        beat = asyncio.create_task(self._heartbeat(link), name=f"ws-heartbeat-{self.channel}")
        try:
            return await self._read(link, established)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _await_subscribed(self, link: Link, sub_id: str) -> ConnectionEnd | None:
        """``None`` once the subscribe ack came with errcode 0; else how the connection ended."""
        deadline = link.clock() + SUBSCRIBE_TIMEOUT_S
        while True:
            try:
                msg = await link.receive(timeout_s=max(0.0, deadline - link.clock()))
            except TimeoutError:
                return ConnectionEnd(f"no subscribe answer within {SUBSCRIBE_TIMEOUT_S:.0f} s")
            if msg.type == aiohttp.WSMsgType.BINARY:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                code, reason = closed_end(link, msg)
                return ConnectionEnd(f"{reason} before the subscription was confirmed", code=code)
            frame = self._parse(msg.data)
            if frame is None or _req_id_of(frame) != sub_id or "cmd" in frame:
                if frame is not None:
                    await link.forward(msg.data)
                continue
            return await self._subscribe_answer(link, frame)

    async def _subscribe_answer(self, link: Link, ack: dict[str, Any]) -> ConnectionEnd | None:
        code = _errcode(ack)
        if code == 0:
            self._refusals = 0
            return None
        self._refusals += 1
        errmsg = str(ack.get("errmsg") or "")[:MAX_ERRMSG_CHARS]
        await link.close(1000)
        terminal = self._refusals >= MAX_SUBSCRIBE_REFUSALS
        suffix = f" ({self._refusals} in a row: check the bot id and secret)" if terminal else ""
        return ConnectionEnd(f"subscribe refused: errcode {code}: {errmsg}{suffix}", terminal=terminal)

    async def _heartbeat(self, link: Link) -> None:
        while True:
            await link.timer(self.ping_interval_s)
            if link.take_paused():
                # The ack may be waiting, unread, behind frames the guest has not taken yet: no verdict.
                self._unacked = 0
            elif self._unacked >= self.max_missed_acks:
                self._dead = True
                log.warning("[%s] wecom: %d ping(s) not acknowledged; reconnecting", self.channel, self._unacked)
                await link.close(RESUMABLE_CLOSE)
                return
            req_id = self._req_id(PING_CMD)
            self._pings.add(req_id)
            try:
                await link.send(json.dumps({"cmd": PING_CMD, "headers": {"req_id": req_id}}))
            except (ConnectionError, aiohttp.ClientError):
                return
            self.pings += 1
            self._unacked += 1

    async def _read(self, link: Link, established: float) -> ConnectionEnd:
        while True:
            msg = await link.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                end = await self._on_text(link, msg.data, established)
                if end is not None:
                    return end
            elif msg.type != aiohttp.WSMsgType.BINARY:
                code, reason = closed_end(link, msg)
                if self._dead:
                    reason = f"{self._unacked} ping(s) not acknowledged"
                return ConnectionEnd(reason, code=code, established_at=established)

    def _parse(self, text: str) -> dict[str, Any] | None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            log.warning("[%s] wecom: a frame that is not a JSON object was ignored", self.channel)
            return None
        return frame

    async def _on_text(self, link: Link, text: str, established: float) -> ConnectionEnd | None:
        frame = self._parse(text)
        if frame is None:
            return None
        req_id = _req_id_of(frame)
        if "cmd" not in frame and req_id is not None and req_id in self._pings:
            self._pings.discard(req_id)
            self._unacked = 0
            return None
        if _is_disconnected_event(frame):
            await link.close(1000)
            return ConnectionEnd("another connection subscribed with this bot (disconnected_event): not retried",
                                 terminal=True, established_at=established)
        await link.forward(text)
        return None

    # ---- guest frames ------------------------------------------------------------------------------

    def check_guest_frame(self, text: str) -> None:
        try:
            frame = loads_strict(text)
        except DuplicateKey:
            raise GuestFault("a WeCom command may not repeat a key") from None
        except (ValueError, RecursionError):
            raise GuestFault("a WeCom command must be a JSON object") from None
        cmd = frame.get("cmd") if isinstance(frame, dict) else None
        if not isinstance(cmd, str) or cmd not in GUEST_COMMANDS:
            allowed = ", ".join(sorted(GUEST_COMMANDS))
            raise GuestFault(f"a channel may send only these WeCom commands: {allowed}")
        if _req_id_of(frame) is None:
            raise GuestFault("a WeCom command needs a non-empty headers.req_id")
