"""A test channel that reports what the sandbox lets it see.

POST /webhook/probe with a JSON body {"method", "url", "headers"} makes the guest perform that
``http-request`` and answer with everything it observed: the status, headers and body of the response,
or the error text the host returned. Tests assert that no secret value ever appears in that answer.
"""

from __future__ import annotations

from typing import Any

from airlock_sdk import Channel, ChannelConfig, Endpoint, HttpError, Message, Request, Response, host


class Probe(Channel):
    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        return ChannelConfig(display_name="probe", endpoints=[Endpoint("/webhook/probe", ["POST"])])

    def on_http_request(self, req: Request) -> Response:
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
