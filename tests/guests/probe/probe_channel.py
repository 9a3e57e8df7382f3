"""A test channel that reports what the sandbox lets it see.

POST /webhook/probe with a JSON body {"method", "url", "headers"} makes the guest perform that
``http-request`` and answer with everything it observed: the status, headers and body of the response,
or the error text the host returned. Tests assert that no secret value ever appears in that answer.

Websocket frames (the host's synthetic request on ``/__websocket``, see ``airlock.channels.socket_runtime``)
are emitted verbatim as a message from user ``ws`` whose metadata records how the frame arrived, so tests can
check order and shape. A frame whose ``d.content`` starts with ``ws-send:`` makes the guest send the rest as a
text frame with ``websocket-send-text``; a refused send is emitted as ``send failed: <error>``.
"""

from __future__ import annotations

import json
from typing import Any

from airlock_sdk import (
    Channel,
    ChannelConfig,
    Endpoint,
    HttpError,
    Message,
    Request,
    Response,
    WebsocketError,
    host,
)

WEBSOCKET_PATH = "/__websocket"
SEND_PREFIX = "ws-send:"


class Probe(Channel):
    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        return ChannelConfig(display_name="probe", endpoints=[Endpoint("/webhook/probe", ["POST"])])

    def on_http_request(self, req: Request) -> Response:
        if req.path == WEBSOCKET_PATH:
            return self._on_frame(req)
        ask = req.json()
        seen: dict[str, Any] = {"secret_exists": host.secret_exists(str(ask.get("secret", "")))}
        try:
            resp = host.http(ask.get("method", "GET"), ask["url"], headers=ask.get("headers") or {})
            seen.update(status=resp.status, headers=resp.headers, body=resp.text())
        except HttpError as exc:
            seen["error"] = str(exc)
        host.info(f"probe saw: {seen}")
        host.emit(Message(user_id="probe", content=str(seen)))
        return Response.json(seen)

    def _on_frame(self, req: Request) -> Response:
        text = req.text()
        meta = {"source": req.header("x-airlock-source"), "content_type": req.header("content-type"),
                "validated": req.secret_validated, "method": req.method, "query": req.query}
        host.emit(Message(user_id="ws", content=text, metadata=meta))
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        data = frame.get("d") if isinstance(frame, dict) else None
        content = data.get("content") if isinstance(data, dict) else None
        if isinstance(content, str) and content.startswith(SEND_PREFIX):
            try:
                host.websocket_send(content[len(SEND_PREFIX):])
            except WebsocketError as exc:
                host.emit(Message(user_id="ws", content=f"send failed: {exc}"))
        return Response(status=204)
