"""``GET /v1/stream``: a WebSocket on which the server pushes the agent's messages as it leases them.

Frames are JSON text. Server to agent::

    {"type": "message", "message": <Message>}
    {"type": "acked", "id": ...} | {"type": "replied", "id": ..., "outbox_id": ...}
    {"type": "error", "id": ... or null, "status": 4xx, "error": "..."}

Agent to server (or use the HTTP endpoints with the message's ``lease_token``)::

    {"type": "ack", "id": ..., "lease_token": ...}
    {"type": "reply", "id": ..., "lease_token": ..., "text": ..., "thread": ...}

Flow control: at most :data:`MAX_IN_FLIGHT` messages are handed out and not yet acked or replied on one
connection; when the connection closes, the leases it still holds are given back at once (they are offered to
the next poll or stream instead of waiting for the visibility timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from .auth import AGENT, ApiError
from .models import AckBody, ReplyBody
from .routes import SERVICE, pull_agent
from .service import AgentService

#: Messages one stream connection holds unacknowledged at most.
MAX_IN_FLIGHT = 10
#: Largest frame an agent may send, bytes.
MAX_FRAME_BYTES = 256 * 1024
HEARTBEAT_S = 20.0


async def stream(request: web.Request) -> web.WebSocketResponse:
    agent, service = request[AGENT], request.app[SERVICE]
    await pull_agent(service, agent)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    held: dict[str, str] = {}  # message id -> lease token, handed out on this connection
    room = asyncio.Event()
    room.set()
    sender = asyncio.create_task(_send_messages(ws, service, agent, held, room))
    try:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            answer = await _handle(service, agent, frame.data, held)
            if len(held) < MAX_IN_FLIGHT:
                room.set()
            await ws.send_json(answer)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        for mid, token in list(held.items()):
            await service.host.bus.release(mid, token)
    return ws


async def _send_messages(ws: web.WebSocketResponse, service: AgentService, agent: str, held: dict[str, str],
                         room: asyncio.Event) -> None:
    while not ws.closed:
        await room.wait()
        messages = await service.lease(agent, MAX_IN_FLIGHT - len(held), 30.0)
        for m in messages:
            held[str(m["id"])] = str(m["lease_token"])
            await ws.send_json({"type": "message", "message": m})
        if len(held) >= MAX_IN_FLIGHT:
            room.clear()


async def _handle(service: AgentService, agent: str, data: str, held: dict[str, str]) -> dict[str, Any]:
    mid: Any = None
    try:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ApiError(400, "a frame must be a JSON object") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "a frame must be a JSON object")
        kind, mid = doc.pop("type", None), doc.pop("id", None)
        if not isinstance(mid, str):
            raise ApiError(400, "a frame needs the message id (string)")
        if kind == "ack":
            await service.ack(agent, mid, AckBody.model_validate(doc).lease_token)
            held.pop(mid, None)
            return {"type": "acked", "id": mid}
        if kind == "reply":
            result = await service.reply(agent, mid, ReplyBody.model_validate(doc), None)
            held.pop(mid, None)
            return {"type": "replied", "id": mid, "outbox_id": result["outbox_id"]}
        raise ApiError(400, 'type must be "ack" or "reply"')
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        return {"type": "error", "id": mid, "status": 422, "error": f"{'.'.join(map(str, err['loc']))}: {err['msg']}"}
    except ApiError as exc:
        return {"type": "error", "id": mid, "status": exc.status, "error": exc.message}


def add_stream(app: web.Application) -> None:
    app.router.add_get("/v1/stream", stream)
