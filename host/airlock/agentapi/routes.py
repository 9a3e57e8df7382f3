"""The agent API's HTTP handlers (the operations are in ``service``; the contract is ``openapi.json``).

Idempotency-Key (every POST; optional): 1..255 printable ASCII characters. The first answer (2xx or 4xx other
than 401) to a key is stored per agent for 24 h (``stores.agents``) and a request repeating the key gets it again
with ``Idempotent-Replayed: true``; a repeat with another method, path or body is refused with 422 (the key was
meant for something else). Concurrent requests with one key may both run; the outbox's own idempotency key (see
``service``) still keeps a single reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..messages.reply_files import MAX_REPLY_ATTACHMENT_BYTES
from ..stores.agents import StoredAnswer
from .auth import AGENT, ApiError
from .models import (
    SHA256_PATTERN,
    ULID_PATTERN,
    AckBatchBody,
    AckBody,
    BroadcastBody,
    EditBody,
    ReactBody,
    ReplyBody,
    StatusBody,
)
from .service import AgentService

SERVICE: web.AppKey[AgentService] = web.AppKey("service", AgentService)
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
#: Default and largest number of messages one poll returns.
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_ULID = re.compile(ULID_PATTERN)
_SHA256 = re.compile(SHA256_PATTERN)
M = TypeVar("M", bound=BaseModel)


def openapi_text() -> str:
    """The checked-in OpenAPI document (package data)."""
    return resources.files("airlock.agentapi").joinpath("openapi.json").read_text(encoding="utf-8")


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(text=openapi_text(), content_type="application/json")


def _number(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number") from None
    if not value >= 0:  # NaN too; a huge value (even one that overflows to inf) is cut by the caller
        raise ApiError(400, f"{name} must be a number >= 0")
    return value


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be an integer 1..{MAX_LIMIT}")
    return int(raw)


def _message_id(request: web.Request, key: str = "id") -> str:
    value = request.match_info[key]
    if not _ULID.fullmatch(value):
        raise ApiError(404, "no such message")
    return value


async def get_messages(request: web.Request) -> web.Response:
    agent = request[AGENT]
    service = request.app[SERVICE]
    await pull_agent(service, agent)
    limit, wait = _limit(request), _number(request, "wait", 0.0)
    messages = await service.lease(agent, limit, wait)
    if messages and (request.transport is None or request.transport.is_closing()):
        await service.release(messages)  # the long-polling client left: hand the messages to the next one now
    return web.json_response({"messages": messages})


async def pull_agent(service: AgentService, agent: str) -> None:
    record = await asyncio.to_thread(service.registry.get, agent)
    if record is not None and record.push_url:
        raise ApiError(403, f"agent {agent} is in push mode: messages are POSTed to its URL, not polled")


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        doc = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(422, f"{where}: {err['msg']}") from None


Operation = Callable[[web.Request, str | None], Awaitable[tuple[int, dict[str, Any]]]]


def idempotent(operation: Operation) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a POST operation with Idempotency-Key handling (module docstring)."""

    async def handler(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, doc = await operation(request, None)
            return web.json_response(doc, status=status)
        if not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise ApiError(400, "Idempotency-Key must be 1..255 printable ASCII characters")
        agent, registry = request[AGENT], request.app[SERVICE].registry
        fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + await request.read()).hexdigest()
        stored = await asyncio.to_thread(registry.answer, agent, key)
        if stored is None:
            try:
                status, doc = await operation(request, key)
            except ApiError as exc:
                if exc.status == 401:
                    raise
                status, doc = exc.status, {"error": exc.message}
            stored = await asyncio.to_thread(registry.remember, agent, key,
                                             StoredAnswer(fingerprint, status, json.dumps(doc)))
            if stored.fingerprint == fingerprint and stored.body == json.dumps(doc):
                return web.json_response(doc, status=status)
        if stored.fingerprint != fingerprint:
            raise ApiError(422, "this Idempotency-Key was used for another request")
        return web.Response(text=stored.body, status=stored.status, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})

    return handler


@idempotent
async def post_ack(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    message_id = _message_id(request)
    body = await _body(request, AckBody)
    return 200, await request.app[SERVICE].ack(request[AGENT], message_id, body.lease_token)


@idempotent
async def post_ack_batch(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    """``POST /v1/messages/ack``: acknowledge up to ``MAX_ACK_BATCH`` leased messages at once; 200 with one result
    per message, in order (``AgentService.ack_many``), even when some failed."""
    body = await _body(request, AckBatchBody)
    items = [(m.id, m.lease_token) for m in body.messages]
    return 200, {"results": await request.app[SERVICE].ack_many(request[AGENT], items)}


@idempotent
async def post_reply(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    message_id = _message_id(request)
    body = await _body(request, ReplyBody)
    return 202, await request.app[SERVICE].reply(request[AGENT], message_id, body, key)


@idempotent
async def post_status(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    message_id = _message_id(request)
    body = await _body(request, StatusBody)
    return 202, await request.app[SERVICE].status(request[AGENT], message_id, body, key)


@idempotent
async def post_broadcast(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    body = await _body(request, BroadcastBody)
    return 202, await request.app[SERVICE].broadcast(request[AGENT], body, key)


def _reply_id(request: web.Request) -> str:
    """The outbox id in the path of ``/v1/outbox/{id}/...``; 404 unless it is a ULID."""
    outbox_id = request.match_info["id"]
    if not _ULID.fullmatch(outbox_id):
        raise ApiError(404, "no such reply")
    return outbox_id


@idempotent
async def post_edit(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    outbox_id = _reply_id(request)
    body = await _body(request, EditBody)
    return 202, await request.app[SERVICE].edit(request[AGENT], outbox_id, body)


@idempotent
async def post_react(request: web.Request, key: str | None) -> tuple[int, dict[str, Any]]:
    outbox_id = _reply_id(request)
    body = await _body(request, ReactBody)
    return 202, await request.app[SERVICE].react(request[AGENT], outbox_id, body, key)


async def get_outbox(request: web.Request) -> web.Response:
    outbox_id = request.match_info["id"]
    if not _ULID.fullmatch(outbox_id):
        raise ApiError(404, "no such outbox entry")
    return web.json_response(await request.app[SERVICE].outbox(request[AGENT], outbox_id))


async def get_attachment(request: web.Request) -> web.Response:
    digest = request.match_info["sha256"]
    if not _SHA256.fullmatch(digest):
        raise ApiError(404, "no such attachment for this agent")
    data = await request.app[SERVICE].attachment(request[AGENT], digest)
    return web.Response(body=data, content_type="application/octet-stream")


async def post_attachment(request: web.Request) -> web.Response:
    """Upload a file for a reply: the raw bytes as the body (any Content-Type), at most
    :data:`~airlock.messages.reply_files.MAX_REPLY_ATTACHMENT_BYTES` (413 past it, 422 when empty). Idempotent by
    content (the answer names the blob by its SHA-256), so an Idempotency-Key is accepted and not needed."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError(400, "Idempotency-Key must be 1..255 printable ASCII characters")
    if request.content_length is not None and request.content_length > MAX_REPLY_ATTACHMENT_BYTES:
        raise ApiError(413, f"an attachment is at most {MAX_REPLY_ATTACHMENT_BYTES} bytes")
    # the app's client_max_size (for JSON bodies) is smaller than a file: read the stream here, bounded
    data = await request.content.read(MAX_REPLY_ATTACHMENT_BYTES + 1)
    while len(data) <= MAX_REPLY_ATTACHMENT_BYTES and not request.content.at_eof():
        more = await request.content.read(MAX_REPLY_ATTACHMENT_BYTES + 1 - len(data))
        if not more:
            break
        data += more
    if len(data) > MAX_REPLY_ATTACHMENT_BYTES:
        raise ApiError(413, f"an attachment is at most {MAX_REPLY_ATTACHMENT_BYTES} bytes")
    if not data:
        raise ApiError(422, "body: an attachment needs at least one byte")
    return web.json_response(await request.app[SERVICE].upload(request[AGENT], data), status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/openapi.json", get_openapi)
    app.router.add_get("/v1/messages", get_messages)
    app.router.add_post("/v1/messages/ack", post_ack_batch)
    app.router.add_post("/v1/messages/{id}/ack", post_ack)
    app.router.add_post("/v1/messages/{id}/reply", post_reply)
    app.router.add_post("/v1/messages/{id}/status", post_status)
    app.router.add_post("/v1/broadcast", post_broadcast)
    app.router.add_get("/v1/outbox/{id}", get_outbox)
    app.router.add_post("/v1/outbox/{id}/edit", post_edit)
    app.router.add_post("/v1/outbox/{id}/react", post_react)
    app.router.add_post("/v1/attachments", post_attachment)
    app.router.add_get("/v1/attachments/{sha256}", get_attachment)
