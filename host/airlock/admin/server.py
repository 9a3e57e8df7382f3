"""The admin listener: API, console and ``/metrics`` on an address of their own (``HostConfig.admin_host`` /
``admin_port``, 127.0.0.1:8788 by default), never on the public webhook port.

Access (``_guard``, before any handler): ``/login`` and ``/static/`` are open; ``/api/*`` and ``/metrics``
take the bearer token or a console session; console pages take a session (else a redirect to ``/login``;
401 for a page's refresh fetch and for any other path, so a browser's stray request such as /favicon.ico
does not load the login page again behind the operator's back). With a session, a state-changing request
must carry the session's CSRF token (form field ``csrf``, or header ``X-CSRF-Token`` for the API) and, if
the browser sent an ``Origin``, come from this listener's own origin. Wrong bearer tokens count toward the
login limit (``auth.LoginLimiter``).

Every response gets ``SECURITY_HEADERS``: a Content-Security-Policy allowing only this listener's own
scripts and styles (no inline script, no framing), no-sniff, referrers only to itself, and
``Cache-Control: no-store``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from ..inbound.listener import forget_stopped_apps
from . import api, console
from .api import STATE
from .auth import COOKIE
from .views import AdminState

__all__ = ["SECURITY_HEADERS", "AdminServer", "build_app"]

log = logging.getLogger("airlock.admin")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send "Origin: null" on form posts
    "Cache-Control": "no-store",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PAGES = frozenset({"/", "/channels", "/pairing", "/secrets", "/calls"})
"""Console pages: without a session, these redirect to /login; every other path answers 401."""
_STATIC = Path(__file__).with_name("static")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _unauthorized(api_route: bool) -> web.Response:
    if api_route:
        return web.json_response({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
    return web.Response(status=401, text="unauthorized")


async def _csrf_ok(request: web.Request, expected: str, api_route: bool) -> bool:
    if api_route:
        sent = request.headers.get("X-CSRF-Token", "")
    else:
        form = await request.post()  # cached by aiohttp: the handler reads the same form
        value = form.get("csrf", "")
        sent = value if isinstance(value, str) else ""
    return bool(sent) and hmac.compare_digest(sent, expected)


async def _authorize(request: web.Request) -> web.StreamResponse | None:
    """None if the request may go on, else the refusal."""
    state = request.app[STATE]
    path = request.path
    api_route = path.startswith("/api/") or path == "/metrics"
    token = _bearer(request)
    if token is not None and api_route:
        if state.limiter.blocked():
            return web.json_response({"error": "too many failed attempts; wait a minute"}, status=429)
        if not state.tokens.check(token):
            state.limiter.failed()
            return _unauthorized(True)
        return None
    session = state.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        page = request.method == "GET" and path in _PAGES and request.query.get("fragment") != "1"
        if not page:  # a page's refresh fetch, a form post, the API, or anything else (e.g. /favicon.ico)
            return _unauthorized(api_route)
        raise web.HTTPSeeOther("/login")
    unsafe = request.method not in _SAFE_METHODS
    if unsafe and not (_same_origin(request) and await _csrf_ok(request, session.csrf, api_route)):
        log.warning("admin: %s %s refused: missing or wrong CSRF token, or a foreign origin", request.method, path)
        if api_route:
            return web.json_response({"error": "forbidden"}, status=403)
        return web.Response(status=403, text="forbidden: reload the page and try again")
    return None


@web.middleware
async def _guard(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        if not (request.path == "/login" or request.path.startswith("/static/")):
            refused = await _authorize(request)
            if refused is not None:
                refused.headers.update(SECURITY_HEADERS)
                return refused
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and aiohttp's own errors
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


def build_app(state: AdminState) -> web.Application:
    """The admin application over ``state`` (routes: ``admin.api`` and ``admin.console``)."""
    app = web.Application(middlewares=[_guard], client_max_size=api.MAX_BODY_BYTES)
    app[STATE] = state
    api.add_routes(app)
    console.add_routes(app)
    app.router.add_static("/static", _STATIC, show_index=False, follow_symlinks=False)
    return app


class AdminServer:
    """The admin listener. ``await start()``, then ``url``; ``await stop()``."""

    def __init__(self, state: AdminState, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        self.state = state
        self.host = host
        self._port = port
        self._sock = sock
        """A listening socket inherited from the supervisor of ``--workers N`` (used instead of binding)."""
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen. Raises OSError if the address cannot be bound."""
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site: web.BaseSite = (web.SockSite(self._runner, self._sock) if self._sock is not None
                              else web.TCPSite(self._runner, self.host, self._port))
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("admin console and API on %s", self.url)

    async def stop(self) -> None:
        """Close the listener; a disable still finishing in the background is cancelled (the host is
        stopping every channel anyway)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            forget_stopped_apps()
        pending = list(self.state.background)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
