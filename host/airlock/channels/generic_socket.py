"""The generic websocket driver: for any ``capabilities.websocket`` without a named protocol.

- Keep-alive: websocket-level pings every ``heartbeat_interval_ms`` (default 30 s); aiohttp closes the
  connection when a pong does not come within half the interval, and the runtime reconnects.
- Identify: if the capabilities file has an ``identify`` object, it is sent as one JSON text frame right after
  the socket opens. When ``identify_secret_name`` is set, every string value in ``identify`` equal to or
  containing the placeholder ``{UPPER_SNAKE}`` of that name (``my_token`` -> ``{MY_TOKEN}``, the same spelling
  as URL/header placeholders in ``capabilities.http``) gets the secret, inside the host; keys starting with
  ``_`` are comments and are not sent. No other secret is ever substituted.
- Every inbound text frame goes to the guest; binary frames are dropped (the guest gets text only).
- No close code is terminal (the runtime also stops on an HTTP 401/403 upgrade answer, for every protocol).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ..manifest import WebsocketCapability as WebsocketSpec
from .socket_base import ConnectionEnd, Link, closed_end, log

DEFAULT_PING_INTERVAL_S = 30.0


def placeholder_for(secret_name: str) -> str:
    """``discord_bot_token`` -> ``{DISCORD_BOT_TOKEN}``."""
    return "{" + secret_name.upper() + "}"


def strip_comments(value: Any) -> Any:
    """Drop object keys starting with ``_`` (documentation keys such as ``_intents_doc``), recursively."""
    if isinstance(value, dict):
        return {k: strip_comments(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [strip_comments(v) for v in value]
    return value


def substitute(value: Any, placeholder: str, secret: str) -> tuple[Any, int]:
    """Replace ``placeholder`` in every string of ``value``; returns (new value, number of strings changed)."""
    if isinstance(value, str):
        return (value.replace(placeholder, secret), 1) if placeholder in value else (value, 0)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        count = 0
        for k, v in value.items():
            out[k], n = substitute(v, placeholder, secret)
            count += n
        return out, count
    if isinstance(value, list):
        items = [substitute(v, placeholder, secret) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


class GenericDriver:
    """See the module docstring. ``secret`` is the value of ``identify_secret_name`` (or ``None``)."""

    name = "generic"

    def __init__(self, channel: str, spec: WebsocketSpec, secret: str | None) -> None:
        self.channel = channel
        self.spec = spec
        interval_ms = spec.heartbeat_interval_ms
        self.ws_ping_interval_s: float | None = interval_ms / 1000 if interval_ms else DEFAULT_PING_INTERVAL_S
        self._identify = self._build_identify(secret)

    def _build_identify(self, secret: str | None) -> str | None:
        if self.spec.identify is None:
            return None
        body = strip_comments(self.spec.identify)
        if self.spec.identify_secret_name and secret is not None:
            body, used = substitute(body, placeholder_for(self.spec.identify_secret_name), secret)
            if not used:
                log.warning("[%s] websocket identify has no %s placeholder; the secret is not sent", self.channel,
                            placeholder_for(self.spec.identify_secret_name))
        return json.dumps(body, separators=(",", ":"))

    def url(self) -> str:
        return self.spec.url

    async def run(self, link: Link) -> ConnectionEnd:
        established = link.clock()
        if self._identify is not None:
            try:
                await link.send(self._identify)
            except (ConnectionError, aiohttp.ClientError):
                return ConnectionEnd("closed before the identify frame was sent")
        while True:
            msg = await link.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await link.forward(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                log.debug("[%s] binary websocket frame (%d bytes) dropped", self.channel, len(msg.data))
            else:
                code, reason = closed_end(link, msg)
                return ConnectionEnd(reason, code=code, established_at=established)

    def check_guest_frame(self, text: str) -> None:
        return None
