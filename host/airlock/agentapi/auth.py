"""Bearer tokens to agent names, and one JSON error shape for every failure of the agent API.

Every request but ``GET /v1/openapi.json`` needs ``Authorization: Bearer <token>`` (a token from ``airlock agents
add``); a missing or unknown token gets 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 section 3). Every error
the API answers, aiohttp's own 404/405/413 included, is ``{"error": "<one safe line>"}``: never a traceback,
a token or a path on disk. Storage that cannot be reached (``errors.StateUnavailable``) is 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import StateUnavailable
from ..stores.agents import AgentRegistry

log = logging.getLogger("airlock.agentapi")

AGENT: web.RequestKey[str] = web.RequestKey("agent", str)
REGISTRY: web.AppKey[AgentRegistry] = web.AppKey("registry", AgentRegistry)
PUBLIC_PATHS = frozenset({"/v1/openapi.json"})
#: Longest Authorization header value looked at (characters); a token is 43.
MAX_AUTH_CHARS = 512
#: Retry-After (seconds) of a 503 answered while the message storage (PostgreSQL, the Redis bus) is unreachable.
STORAGE_RETRY_AFTER_S = 2


class ApiError(Exception):
    """An answer other than success: HTTP ``status`` and a safe one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="airlock"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def bearer(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    value = request.headers.get("Authorization", "")
    if len(value) > MAX_AUTH_CHARS:
        return None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate (except public paths), and turn every error into the JSON shape."""
    try:
        if request.path not in PUBLIC_PATHS and request.match_info.http_exception is None:
            token = bearer(request)
            agent = None
            if token is not None:
                agent = await asyncio.to_thread(request.app[REGISTRY].authenticate, token)
            if agent is None:
                raise ApiError(401, "a valid bearer token is required (airlock agents add NAME)")
            request[AGENT] = agent
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = error_response(exc.status, exc.reason)
        if "Allow" in exc.headers:  # a 405 says which methods the path takes (RFC 9110 section 15.5.6)
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except StateUnavailable:  # the log's database or the bus is down: nothing was changed, the agent retries
        resp = error_response(503, "message storage is unavailable; retry later")
        resp.headers["Retry-After"] = str(STORAGE_RETRY_AFTER_S)
        return resp
    except Exception:
        log.exception("agent API: %s %s failed", request.method, request.path)
        return error_response(500, "internal error")
