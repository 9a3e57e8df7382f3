"""One aiohttp server for every channel: ``/webhook/...`` routed by path, plus health endpoints.

Order of checks for a webhook, each before the guest runs (so a refused request costs no sandbox): 404 unknown path
(503 + Retry-After while the channels are still loading at start: a restarting node of a cluster listens before its
channels are loaded, and a platform gives up on a 404 where it retries a 503) -> 405 method not registered -> the
whole body, read by ``inbound.body.read_body`` (413 over ``MAX_BODY_BYTES``, 408 past the body deadline, 400 on
broken framing) -> 401 / 403 from the channel's webhook verifier (``inbound.verifiers``: header secret, Slack,
Discord, Meta or Feishu, chosen by the capabilities file's ``webhook`` block; a generic body, the reason in the host
log) -> 503 + Retry-After when the agent lags, or when every sandbox slot is in use (``SandboxBusy``). The guest
gets secret-validated = true only when the host verified the request, and a body the verifier replaced (a decrypted
Feishu event); a header or query parameter that carries a stored secret verbatim (Telegram's secret header, Meta's
verify token) is removed from what the guest sees (``Verifier.secret_headers`` / ``secret_query``). A guest that
fails gives a generic 500; details go to the host log. A callback whose messages would pass the channel's emit rate
limit is not applied at all and answers 429 + Retry-After (``EmitRateLimited``), so a platform's retry is honest and
nothing acknowledged is dropped. The answer waits until the callback's writes and messages are durable in the
message log; if the log cannot store them (``CommitFailed``) the webhook answers 503 + Retry-After and nothing of it
was kept. Socket-level limits (connection caps, header deadline) are in ``inbound.listener``.
The guest runs through ``ChannelManager.run_webhook`` (inline on the event loop first when allowed; ``/health``
shows each channel's inline hits, aborts and trips).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..capabilities.workspace import CommitFailed
from ..channels.manager import ChannelManager
from ..channels.slot import ChannelSlot
from ..channels.swap import SwapTimeout, wait_replaced, wait_route
from ..errors import ChannelDisabled, EmitRateLimited, SandboxBusy, StateUnavailable
from ..messages.inbox import RETRY_AFTER_S
from ..observability import context as log_context
from ..runtime.values import HttpEndpoint, IncomingHttpRequest, OutgoingHttpResponse
from ..state.nodes import NodeBeacon
from .body import MAX_BODY_BYTES, BodyRefused, read_body
from .listener import ListenerLimits
from .verifiers import Accept, Reject, Unverified, Verifier, WebhookRequest, verifier_for

log = logging.getLogger("airlock.inbound")

@dataclass(frozen=True)
class WorkerInfo:
    """This worker's index and where its supervisor's status file is (``workers.supervisor``)."""

    index: int
    home: Path

    def status(self) -> dict[str, Any] | None:
        from ..workers.supervisor import read_status

        return read_status(self.home)


MANAGER: web.AppKey[ChannelManager] = web.AppKey("manager", ChannelManager)
LIMITS: web.AppKey[ListenerLimits] = web.AppKey("limits", ListenerLimits)
WORKERS: web.AppKey[WorkerInfo] = web.AppKey("workers", WorkerInfo)
NODES: web.AppKey[NodeBeacon] = web.AppKey("nodes", NodeBeacon)
"""This node in the cluster's registry (PostgreSQL state only): ``/health`` then lists every node."""
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive", "upgrade",
                         "server", "date"})


STARTING_RETRY_AFTER_S = 2
"""Retry-After (seconds) of a webhook that came while the channels were loading at start: they load in seconds."""


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _verifier(slot: ChannelSlot) -> Verifier:
    if slot.verifier is None:  # normally built at registration by the manager
        slot.verifier = verifier_for(slot.channel.caps, slot.channel.secret_lookup, slot.channel.services.replay)
    return slot.verifier


def _verify(slot: ChannelSlot, endpoint: HttpEndpoint, request: web.Request, body: bytes) -> web.Response | Accept:
    """Return an error response, or the verifier's acceptance (secret-validated flag, maybe a new body)."""
    verifier = _verifier(slot)
    name = slot.channel.name
    observer = slot.channel.services.observer
    if isinstance(verifier, Unverified) and endpoint.require_secret and not verifier.declared:
        log.error("[%s] %s requires a secret but the capabilities file names none", name, endpoint.path)
        if observer is not None:
            observer.webhook_refused(name, verifier.scheme, "requires a secret")
        return _error(403, "forbidden")
    req = WebhookRequest.build(request.method, request.path, request.headers.items(), request.query.items(), body,
                               time.time())
    try:
        verdict = verifier.verify(req)
    except StateUnavailable as down:  # the shared replay cache's database is down: not accepted, retry later
        log.warning("[%s] webhook %s %s not checked: %s", name, request.method, request.path, down)
        return _error(503, "unavailable", **{"Retry-After": str(down.retry_after)})
    if isinstance(verdict, Reject):
        log.warning("[%s] webhook %s %s refused with %d (%s): %s", name, request.method, request.path,
                    verdict.status, verifier.scheme, verdict.reason)
        if observer is not None:
            observer.webhook_refused(name, verifier.scheme, verdict.reason)
        return _error(verdict.status, "unauthorized" if verdict.status == 401 else "forbidden")
    return verdict


def _guest_headers(request: web.Request, body: bytes, replaced: bool, hidden: frozenset[str]) -> str:
    """The request headers for the guest, lowercase, without those carrying a stored secret (``hidden``)."""
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in hidden}
    if replaced:  # the guest sees the verifier's body (e.g. decrypted JSON): keep its length header honest
        headers["content-length"] = str(len(body))
    return json.dumps(headers)


def _guest_query(request: web.Request, hidden: frozenset[str]) -> str:
    """The query parameters for the guest (first value of each), without those carrying a stored secret."""
    return json.dumps({k: request.query[k] for k in request.query if k not in hidden})


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
        try:  # a channel being replaced by another version: wait for it (``channels.swap``)
            found = await wait_route(manager, request.path) if manager.swaps else None
        except SwapTimeout:
            return _error(503, "busy", **{"Retry-After": str(RETRY_AFTER_S)})
        if found is None:
            if manager.loading:  # a restarting node: its channels are loading (a platform retries a 503, not a 404)
                return _error(503, "starting", **{"Retry-After": str(STARTING_RETRY_AFTER_S)})
            return _error(404, "not found")
    token = log_context.bind(found[0].channel.name, new_trace=True)  # this request's trace id in every log line
    try:
        return await _webhook(request, manager, *found)
    finally:
        log_context.reset(token)


async def _webhook(request: web.Request, manager: ChannelManager, slot: ChannelSlot,
                   endpoint: HttpEndpoint, raw: bytes | None = None) -> web.StreamResponse:
    if request.method not in endpoint.methods:
        return _error(405, "method not allowed", Allow=", ".join(endpoint.methods))
    if raw is None:
        try:
            raw = await read_body(request, MAX_BODY_BYTES, request.app[LIMITS].body_timeout_s)
        except BodyRefused as refused:
            log.info("[%s] webhook %s %s refused with %d: %s", slot.channel.name, request.method, request.path,
                     refused.status, refused.reason)
            return refused.response()
    body = raw
    verifier = _verifier(slot)
    checked = _verify(slot, endpoint, request, body)
    if isinstance(checked, web.Response):
        return checked
    if not manager.bus.has_room():
        if slot.channel.services.observer is not None:
            slot.channel.services.observer.busy(slot.channel.name, "on-http-request")
        return _error(503, "busy", **{"Retry-After": str(RETRY_AFTER_S)})
    if checked.body is not None:
        body = checked.body
    req = IncomingHttpRequest(
        method=request.method, path=endpoint.path,  # the guest's own path (another instance's differs)
        headers_json=_guest_headers(request, body, checked.body is not None, verifier.secret_headers),
        query_json=_guest_query(request, verifier.secret_query), body=body, secret_validated=checked.validated,
    )
    out = await manager.run_webhook(slot, req)
    if isinstance(out.error, ChannelDisabled):  # stopped while this request waited for the channel
        return await _after_stop(request, manager, slot, raw)
    if isinstance(out.error, SandboxBusy):  # every sandbox slot in use: the platform retries, no one is at fault
        return _error(503, "busy", **{"Retry-After": str(out.error.retry_after)})
    if isinstance(out.error, EmitRateLimited):  # nothing was applied: the platform's retry is not a duplicate
        return _error(429, "rate limited", **{"Retry-After": str(out.error.retry_after)})
    if isinstance(out.error, CommitFailed):  # the log could not store it: nothing kept, the platform redelivers
        if out.error.unavailable:  # the state database is down: refuse the next webhooks at once, until it is back
            manager.bus.unavailable()
        return _error(503, "busy", **{"Retry-After": str(RETRY_AFTER_S)})
    if not out.ok or not isinstance(out.value, OutgoingHttpResponse):
        return _error(500, "internal error")
    response = _response(out.value)
    if log.isEnabledFor(logging.DEBUG):  # the request's one line on the event loop (its trace id: the callback's)
        log.debug("[%s] webhook %s %s answered %d", slot.channel.name, request.method, request.path, response.status)
    return response


async def _after_stop(request: web.Request, manager: ChannelManager, slot: ChannelSlot,
                      raw: bytes) -> web.StreamResponse:
    """A webhook queued for a channel that stopped before its turn: 404 if the operator disabled or removed it;
    the new version's answer if another version replaced it (``channels.swap``); 503 + Retry-After if that takes
    longer than ``SWAP_HOLD_S``."""
    try:
        current = await wait_replaced(manager, slot)
    except SwapTimeout:
        return _error(503, "busy", **{"Retry-After": str(RETRY_AFTER_S)})
    found = manager.route(request.path) if current is not None else None
    if found is None or found[0] is slot:
        return _error(404, "not found")
    return await _webhook(request, manager, *found, raw=raw)


async def health(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    channels = {name: _slot_health(slot) for name, slot in manager.slots.items()}
    manager.bus.has_room()  # starts a refresh of the log's reachability when it is stale
    try:  # in a worker thread: a database that does not answer must not hold the event loop
        if not manager.bus.available:  # known unreachable: answer at once
            raise StateUnavailable("last refresh failed")
        queued = await asyncio.to_thread(manager.bus.qsize)
        beacon = request.app.get(NODES)
        nodes = await beacon.health() if beacon is not None else None
    except StateUnavailable:
        return web.json_response({"status": "unavailable", "channels": channels, "state": "unavailable"},
                                 status=503)
    doc: dict[str, Any] = {"status": "ok", "channels": channels, "queued": queued}
    if nodes is not None:
        doc["nodes"] = nodes
    info = request.app.get(WORKERS)
    if info is not None:  # under ``airlock serve --workers N``: who answered, and every worker's state
        doc["worker"] = info.index
        doc["workers"] = await asyncio.to_thread(info.status)
    return web.json_response(doc)


async def channel_health(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    slot = manager.slots.get(request.match_info["channel"])
    if slot is None:
        return _error(404, "unknown channel")
    return web.json_response(_slot_health(slot), status=200 if slot.active else 503)


def _slot_health(slot: ChannelSlot) -> dict[str, Any]:
    return {"active": slot.active, "status": slot.reason, "version": slot.channel.version,
            "platform": slot.channel.platform, "endpoints": sorted(slot.endpoints),
            "polling": slot.poll_interval_s is not None, "polls": slot.polls, "failures": slot.failures,
            "world": slot.channel.loaded.world.name,
            "websocket": slot.socket.status.as_dict() if slot.socket is not None else None,
            "inline": slot.inline.as_dict(), "warnings": list(slot.warnings),
            "lease": None if slot.lease is None else {"held": slot.lease.held(), "takeovers": slot.lease.takeovers}}


async def _tag_worker(request: web.Request, response: web.StreamResponse) -> None:
    """``X-Airlock-Worker: <index>`` on every answer of a worker (which of them answered; the index only)."""
    response.headers["X-Airlock-Worker"] = str(request.app[WORKERS].index)


def build_app(manager: ChannelManager, limits: ListenerLimits | None = None,
              worker: WorkerInfo | None = None, nodes: NodeBeacon | None = None) -> web.Application:
    """The webhook application: ``/webhook/...`` and the health endpoints; serve it with
    ``inbound.listener.GatedTCPSite`` and ``runner_kwargs(limits)`` for the socket-level limits. ``worker``: this
    process is a worker of ``airlock serve --workers N``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[MANAGER] = manager
    app[LIMITS] = limits if limits is not None else ListenerLimits()
    if nodes is not None:
        app[NODES] = nodes
    if worker is not None:
        app[WORKERS] = worker
        app.on_response_prepare.append(_tag_worker)
    app.router.add_get("/health", health, expect_handler=expect_continue)
    app.router.add_get("/health/{channel}", channel_health, expect_handler=expect_continue)
    app.router.add_route("*", "/webhook/{tail:.*}", webhook, expect_handler=expect_continue)
    app.router.add_route("*", "/{tail:.*}", not_found, expect_handler=expect_continue)
    return app


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` gets its interim answer; any other expectation 417 (RFC 9110 10.1.1). aiohttp's
    default handler quotes the header back and fails with a 500 when it holds non-UTF-8 bytes."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None
    return _error(417, "expectation failed")


async def not_found(request: web.Request) -> web.Response:
    return _error(404, "not found")
