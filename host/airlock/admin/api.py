"""The admin JSON API and ``/metrics``. Every route needs the admin token (``Authorization: Bearer ...``) or a
console session (then a state-changing request also needs ``X-CSRF-Token``): ``admin.server`` checks that
before any handler here runs.

    GET    /api/channels                          {"channels": [channel, ...]}
    GET    /api/channels/{name}                   channel: name, version, world, active, disabled, status,
                                                  missing_secrets, health, counters, last_errors,
                                                  provenance (signed, publisher, key_id, digests, source, ...)
    POST   /api/channels/{name}/disable           channel (202 while callbacks in flight finish)
    POST   /api/channels/{name}/enable            channel
    POST   /api/channels/{name}/upgrade  {"version"}     channel, running that kept version (409 + the reason
                                                  when it did not start: the old one runs again)
    POST   /api/channels/{name}/rollback {"version"?}    channel, running the version before (or that one)
    POST   /api/channels/{name}/remove                {"name", "removed": true}
         (``channels.operations``, the same operations as the CLI's control socket; recorded in the home)
    GET    /api/channels/{name}/calls?limit=N     {"channel", "recording", "calls": [invoke document, ...]}
    GET    /api/secrets                           {"secrets": [{"name", "set", "used_by"}]} (never a value)
    PUT    /api/secrets/{name}   {"value": "..."}  {"name", "set": true}    (then the channels it concerns start)
    DELETE /api/secrets/{name}                    {"name", "set": false}   (then the channels needing it stop)
    GET    /api/pairing                           {"channels": {name: {"pending": [...], "paired": [...]}}}
    POST   /api/pairing/{channel}/approve  {"code", "owner"?}
    POST   /api/pairing/{channel}/deny     {"code"}
    POST   /api/pairing/{channel}/revoke   {"external_id"}
    GET    /metrics                               Prometheus text format (``observability.metrics``)

Errors: ``{"error": "<one line>"}`` with 400 (bad input), 401 (no or wrong credentials), 403 (CSRF), 404
(unknown channel, secret, code or sender), 413 (body over ``MAX_BODY_BYTES``); nothing is changed then.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .views import MAX_CALLS_SHOWN, AdminError, AdminState

__all__ = ["MAX_BODY_BYTES", "STATE", "add_routes"]

MAX_BODY_BYTES = 128 * 1024
"""Largest JSON body accepted (a secret value is at most 64 KiB)."""
STATE: web.AppKey[AdminState] = web.AppKey("admin_state", AdminState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _guarded(fn: Callable[[web.Request, AdminState], Awaitable[web.StreamResponse]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request, request.app[STATE])
        except AdminError as exc:
            return error(exc.status, str(exc))

    return handler


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; AdminError 413 / 400 when too large or not an object."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise AdminError(413, f"body over {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise AdminError(413, f"body over {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        raise AdminError(400, "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise AdminError(400, "the body must be a JSON object")
    return doc


async def channels(request: web.Request, state: AdminState) -> web.Response:
    return web.json_response(state.channels_doc())


async def channel(request: web.Request, state: AdminState) -> web.Response:
    name = request.match_info["name"]
    return web.json_response(state.channel_doc(name, state.slot(name)))


async def disable(request: web.Request, state: AdminState) -> web.Response:
    status, doc = await state.disable(request.match_info["name"])
    return web.json_response(doc, status=status)


async def enable(request: web.Request, state: AdminState) -> web.Response:
    return web.json_response(await state.enable(request.match_info["name"]))


async def lifecycle(request: web.Request, state: AdminState) -> web.Response:
    action = request.match_info["action"]
    if action not in ("upgrade", "rollback", "remove"):
        raise AdminError(404, "unknown channel action")
    body = await json_body(request)
    return web.json_response(await state.lifecycle(request.match_info["name"], action, body.get("version")))


async def calls(request: web.Request, state: AdminState) -> web.Response:
    try:
        limit = int(request.query.get("limit", MAX_CALLS_SHOWN))
    except ValueError:
        raise AdminError(400, "limit must be a whole number") from None
    return web.json_response(state.calls_doc(request.match_info["name"], limit))


async def secrets_list(request: web.Request, state: AdminState) -> web.Response:
    return web.json_response(state.secrets_doc())


async def secret_put(request: web.Request, state: AdminState) -> web.Response:
    body = await json_body(request)
    doc = state.set_secret(request.match_info["name"], body.get("value"))
    await state.secrets_changed()
    return web.json_response(doc)


async def secret_delete(request: web.Request, state: AdminState) -> web.Response:
    doc = state.remove_secret(request.match_info["name"])
    await state.secrets_changed()
    return web.json_response(doc)


async def pairing_list(request: web.Request, state: AdminState) -> web.Response:
    return web.json_response(state.pairing_doc())


async def pairing_action(request: web.Request, state: AdminState) -> web.Response:
    body = await json_body(request)
    channel, action = request.match_info["channel"], request.match_info["action"]
    if action == "approve":
        return web.json_response(state.approve(channel, body.get("code"), body.get("owner")))
    if action == "deny":
        return web.json_response(state.deny(channel, body.get("code")))
    if action == "revoke":
        return web.json_response(state.revoke(channel, body.get("external_id")))
    raise AdminError(404, "unknown pairing action (approve, deny or revoke)")


async def metrics(request: web.Request, state: AdminState) -> web.Response:
    if state.observer is None:
        raise AdminError(404, "metrics are off (HostConfig.metrics)")
    body = state.observer.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/channels", _guarded(channels))
    r.add_get("/api/channels/{name}", _guarded(channel))
    r.add_post("/api/channels/{name}/disable", _guarded(disable))
    r.add_post("/api/channels/{name}/enable", _guarded(enable))
    r.add_post("/api/channels/{name}/{action}", _guarded(lifecycle))
    r.add_get("/api/channels/{name}/calls", _guarded(calls))
    r.add_get("/api/secrets", _guarded(secrets_list))
    r.add_put("/api/secrets/{name}", _guarded(secret_put))
    r.add_delete("/api/secrets/{name}", _guarded(secret_delete))
    r.add_get("/api/pairing", _guarded(pairing_list))
    r.add_post("/api/pairing/{channel}/{action}", _guarded(pairing_action))
    r.add_get("/metrics", _guarded(metrics))
