"""One aiohttp server for every channel: ``/webhook/...`` routed by path, plus health endpoints.

Order of checks for a webhook, each before the guest runs (so a refused request costs no sandbox):
404 unknown path -> 405 method not registered -> 413 body over ``MAX_BODY_BYTES`` -> 401 missing /
403 wrong webhook secret (constant-time compare, when the capabilities file's ``webhook`` block names a
``secret_header`` and ``secret_name`` and ``managed_by_host`` is true) -> 503 + Retry-After when the agent
lags. A guest that fails gives a generic 500; details go to the host log only.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from ..agents.bus import RETRY_AFTER_S
from ..channels.manager import ChannelManager, ChannelSlot
from ..runtime.values import HttpEndpoint, IncomingHttpRequest, OutgoingHttpResponse

log = logging.getLogger("airlock.inbound")

MAX_BODY_BYTES = 2 * 1024 * 1024
MANAGER: web.AppKey[ChannelManager] = web.AppKey("manager", ChannelManager)
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive", "upgrade",
                         "server", "date"})


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _secret_check(slot: ChannelSlot, endpoint: HttpEndpoint, request: web.Request) -> web.Response | bool:
    """Return an error response, or whether the host validated a secret."""
    webhook = slot.channel.caps.capabilities.channel.webhook
    configured = webhook is not None and webhook.secret_header and webhook.secret_name
    if not configured or webhook is None or not webhook.managed_by_host:
        if endpoint.require_secret and not configured:
            log.error("[%s] %s requires a secret but the capabilities file names none", slot.channel.name,
                      endpoint.path)
            return _error(403, "forbidden")
        return False
    assert webhook.secret_header is not None and webhook.secret_name is not None
    expected = slot.channel.services.secret_lookup(webhook.secret_name)
    given = request.headers.get(webhook.secret_header)
    if expected is None:
        log.error("[%s] webhook secret %s is not stored; refusing", slot.channel.name, webhook.secret_name)
        return _error(403, "forbidden")
    if given is None:
        log.warning("[%s] webhook without %s header refused", slot.channel.name, webhook.secret_header)
        return _error(401, "unauthorized")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("[%s] webhook with a wrong %s refused", slot.channel.name, webhook.secret_header)
        return _error(403, "forbidden")
    return True


def _response(out: OutgoingHttpResponse) -> web.Response:
    headers: dict[str, str] = {}
    try:
        parsed: Any = json.loads(out.headers_json or "{}")
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        headers = {str(k): str(v) for k, v in parsed.items()
                   if str(k).lower() not in _HOP_BY_HOP and "\n" not in str(v) and "\r" not in str(v)}
    status = out.status if 100 <= out.status <= 599 else 500
    return web.Response(status=status, body=out.body, headers=headers)


async def webhook(request: web.Request) -> web.StreamResponse:
    manager = request.app[MANAGER]
    found = manager.route(request.path)
    if found is None:
        return _error(404, "not found")
    slot, endpoint = found
    if request.method not in endpoint.methods:
        return _error(405, "method not allowed", Allow=", ".join(endpoint.methods))
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, "payload too large")
    try:
        body = await request.content.read(MAX_BODY_BYTES + 1)
    except Exception:
        return _error(400, "bad request")
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "payload too large")
    checked = _secret_check(slot, endpoint, request)
    if isinstance(checked, web.Response):
        return checked
    if not manager.bus.has_room():
        return _error(503, "busy", **{"Retry-After": str(RETRY_AFTER_S)})
    req = IncomingHttpRequest(
        method=request.method, path=request.path,
        headers_json=json.dumps({k.lower(): v for k, v in request.headers.items()}),
        query_json=json.dumps(dict(request.query)), body=body, secret_validated=checked,
    )
    out = await manager.run_main(slot, slot.channel.http_request, req)
    if not out.ok or not isinstance(out.value, OutgoingHttpResponse):
        return _error(500, "internal error")
    return _response(out.value)


async def health(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    channels = {name: _slot_health(slot) for name, slot in manager.slots.items()}
    return web.json_response({"status": "ok", "channels": channels, "queued": manager.bus.qsize()})


async def channel_health(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    slot = manager.slots.get(request.match_info["channel"])
    if slot is None:
        return _error(404, "unknown channel")
    return web.json_response(_slot_health(slot), status=200 if slot.active else 503)


def _slot_health(slot: ChannelSlot) -> dict[str, Any]:
    return {"active": slot.active, "status": slot.reason, "endpoints": sorted(slot.endpoints),
            "polling": slot.poll_interval_s is not None, "polls": slot.polls, "failures": slot.failures,
            "world": slot.channel.loaded.world.name}


def build_app(manager: ChannelManager) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[MANAGER] = manager
    app.router.add_get("/health", health)
    app.router.add_get("/health/{channel}", channel_health)
    app.router.add_route("*", "/webhook/{tail:.*}", webhook)
    return app
