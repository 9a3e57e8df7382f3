"""Reading a webhook's whole body, with a hard size limit and a deadline.

``StreamReader.read(n)`` returns what is buffered, not ``n`` bytes, so a body that arrives in several TCP
segments (or chunked) must be read in a loop. The limit is checked while reading, so a chunked body (no
Content-Length) over the limit is refused after ``limit + 1`` bytes, never buffered whole; a declared
Content-Length over the limit is refused before any read.

Answers (HTTP semantics, RFC 9110): 413 past ``limit``; 408 when the body does not complete within the
deadline; 400 when the client breaks the framing (a truncated chunk, a connection reset). Each refusal is
logged in one line (the reason, never the body).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("airlock.inbound")

#: Webhook bodies larger than this are refused with 413 (2 MiB: Slack's and Meta's events are far smaller;
#: Telegram caps a webhook update well below it).
MAX_BODY_BYTES = 2 * 1024 * 1024


class BodyRefused(Exception):
    """The body could not be read whole: ``status`` (400, 408 or 413) and a one-line ``reason`` for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> web.Response:
        """The JSON error answer; the connection is closed after it (the rest of the body is not read)."""
        message = {400: "bad request", 408: "request timeout", 413: "payload too large"}[self.status]
        resp = web.json_response({"error": message}, status=self.status)
        resp.force_close()
        return resp


async def read_body(request: web.BaseRequest, limit: int = MAX_BODY_BYTES, timeout_s: float = 30.0) -> bytes:
    """Return the request's whole body (``limit`` bytes at most, ``timeout_s`` seconds at most).

    Raises:
        BodyRefused: 413 over ``limit`` (declared or counted), 408 past ``timeout_s``, 400 on a broken body.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyRefused(413, f"Content-Length {declared} over the {limit}-byte limit")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(413, f"body over the {limit}-byte limit")
                parts.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"body not complete after {timeout_s:g} s ({size} bytes read)") from None
    except BodyRefused:
        raise
    except (HttpProcessingError, ConnectionError, asyncio.IncompleteReadError) as exc:
        # a broken chunk, a short Content-Length body, a reset: the client's fault, not a host bug
        raise BodyRefused(400, f"body could not be read: {type(exc).__name__}") from None
    return b"".join(parts)
