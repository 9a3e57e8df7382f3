"""The agent HTTP API: agents in any language lease, acknowledge and answer messages over HTTP.

    server.py   AgentApi: the listener (its own port), the push workers' supervisor
    auth.py     bearer tokens -> agent names; JSON errors for everything
    models.py   request bodies (pydantic, strict) and the JSON shapes handed out
    service.py  the operations (ack, batch ack, reply, status, broadcast), shared by HTTP and the WebSocket
    routes.py   the HTTP handlers and Idempotency-Key
    stream.py   WebSocket /v1/stream
    push.py     push mode: signed POSTs to an agent's registered URL
    openapi.py  builds openapi.json (checked in, served at /v1/openapi.json)
"""

from .server import AgentApi

__all__ = ["AgentApi"]
