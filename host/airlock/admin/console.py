"""The web console: server-rendered pages over the same documents as the API (``admin.views``).

    GET  /login, POST /login, POST /logout
    GET  /channels  /pairing  /secrets  /calls?channel=NAME      (``?fragment=1``: the page's <main> only)
    POST /channels/{name}/disable|enable
    POST /pairing/approve (form: channel, code)  /pairing/{channel}/approve|deny|revoke
    POST /secrets (form: name, value)            /secrets/{name}/remove

Every POST form carries the session's CSRF token (``admin.server`` refuses one without it); the login form
carries a one-time login token, also kept in a ``SameSite=Strict`` cookie (double submit). After a POST the
browser is redirected (303) to the page, with the result as a one-shot message. Pages refresh themselves by
fetching their fragment every ``REFRESH_MS`` (``static/console.js``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import pages
from .api import STATE
from .auth import COOKIE, SESSION_TTL_S, Session
from .render import Html, render
from .views import AdminError, AdminState

__all__ = ["LOGIN_COOKIE", "REFRESH_MS", "add_routes"]

REFRESH_MS = 3000
"""How often an open page fetches itself again (ms)."""
LOGIN_COOKIE = "airlock_login"
_LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
MAX_FORM_BYTES = 128 * 1024
_PAGES = {"channels": "Channels", "pairing": "Pairing", "secrets": "Secrets", "calls": "Recent calls"}
_COOKIE_FLAGS: dict[str, Any] = {"httponly": True, "samesite": "Strict", "path": "/"}


def _session(request: web.Request) -> Session:
    """The caller's console session (``admin.server`` let only requests with one reach a page)."""
    session = request.app[STATE].sessions.get(request.cookies.get(COOKIE))
    if session is None:  # expired between the check and here
        raise web.HTTPSeeOther("/login")
    return session


def _page(request: web.Request, page: str, main: Html) -> web.Response:
    if request.query.get("fragment") == "1":
        return web.Response(text=main, content_type="text/html")
    session = _session(request)
    nav = Html("".join(f'<a href="/{p}"{" aria-current=page" if p == page else ""}>{label}</a>'
                       for p, label in _PAGES.items()))
    flash = Html("".join(str(render("flash.html", kind=k, text=t)) for k, t in session.flash))
    session.flash.clear()
    body = render("base.html", title=_PAGES[page], nav=nav, csrf=session.csrf, flash=flash, main=main,
                  refresh_ms=REFRESH_MS, refresh_s=REFRESH_MS // 1000, page=page)
    return web.Response(text=body, content_type="text/html")


def _view(page: str, build: Callable[[AdminState, Session, web.Request], Html]) -> Callable[..., Any]:
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        try:
            main = build(state, _session(request), request)
        except AdminError as exc:
            main = Html(f'<p class="error">{render("text.html", text=str(exc))}</p>')
        return _page(request, page, main)

    return handler


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise AdminError(413, "form too large")
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _back(request: web.Request, to: str, kind: str, text: str) -> web.Response:
    _session(request).flash.append((kind, text))
    raise web.HTTPSeeOther(to)


Action = Callable[[AdminState, web.Request, dict[str, str]], Awaitable[tuple[str, str]]]


def _action(action: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A form POST: run ``action`` (returns the page to go back to and a message), flash, redirect."""

    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        form = await _form(request)
        fallback = "/" + request.path.strip("/").split("/")[0]
        try:
            to, text = await action(state, request, form)
        except AdminError as exc:
            return _back(request, fallback, "error", str(exc))
        return _back(request, to, "ok", text)

    return handler


async def _switch(state: AdminState, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    name, op = request.match_info["name"], request.match_info["op"]
    if op == "disable":
        status, _doc = await state.disable(name)
        return "/channels", f"{name} disabled" if status == 200 else f"{name} is finishing its callbacks"
    if op == "enable":
        doc = await state.enable(name)
        return "/channels", f"{name}: {doc['status']}"
    raise AdminError(404, "unknown channel action")


async def _pairing(state: AdminState, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    channel = request.match_info.get("channel") or form.get("channel", "")
    op = request.match_info.get("op", "approve")
    if op == "approve":
        done = state.approve(channel, form.get("code"))
        return "/pairing", f"approved {done['external_id']} on {channel}"
    if op == "deny":
        done = state.deny(channel, form.get("code"))
        return "/pairing", f"denied {done['external_id']} on {channel}"
    if op == "revoke":
        done = state.revoke(channel, form.get("external_id"))
        return "/pairing", f"revoked {done['external_id']} on {channel}"
    raise AdminError(404, "unknown pairing action")


async def _secret_set(state: AdminState, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    name = form.get("name", "")
    state.set_secret(name, form.get("value", ""))
    await state.secrets_changed()
    return "/secrets", f"stored secret {name}"


async def _secret_remove(state: AdminState, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    name = request.match_info["name"]
    state.remove_secret(name)
    await state.secrets_changed()
    return "/secrets", f"removed secret {name}"


# ---- login --------------------------------------------------------------------------------------------


def _login_page(csrf: str, message: str = "", status: int = 200) -> web.Response:
    shown = render("text.html", text=message) if message else Html("")
    body = render("login.html", csrf=csrf,
                  message=Html(f'<p class="error" role="alert">{shown}</p>') if message else shown)
    response = web.Response(text=body, content_type="text/html", status=status)
    response.set_cookie(LOGIN_COOKIE, csrf, max_age=600, **_COOKIE_FLAGS)
    return response


async def login_form(request: web.Request) -> web.Response:
    # The form token lives in a cookie too (double submit); one already set is kept, so a second tab or a
    # reload does not invalidate a form the operator is filling in.
    current = request.cookies.get(LOGIN_COOKIE, "")
    return _login_page(current if _LOGIN_TOKEN.fullmatch(current) else secrets.token_urlsafe(24))


async def login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await _form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    fresh = secrets.token_urlsafe(24)
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
        return _login_page(fresh, "The login form expired; try again.", 403)
    if state.limiter.blocked():
        return _login_page(fresh, "Too many failed logins; wait a minute.", 429)
    if not state.tokens.check(form.get("token", "").strip()):
        state.limiter.failed()
        return _login_page(fresh, "That is not the admin token.", 401)
    key, _opened = state.sessions.open()
    response = web.HTTPSeeOther("/channels")
    response.set_cookie(COOKIE, key, max_age=SESSION_TTL_S, **_COOKIE_FLAGS)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    request.app[STATE].sessions.close(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def root(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/channels")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", root)
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/channels", _view("channels", pages.channels))
    r.add_get("/pairing", _view("pairing", pages.pairing))
    r.add_get("/secrets", _view("secrets", pages.secrets_page))
    r.add_get("/calls", _view("calls", pages.calls))
    r.add_post("/channels/{name}/{op}", _action(_switch))
    r.add_post("/pairing/approve", _action(_pairing))
    r.add_post("/pairing/{channel}/{op}", _action(_pairing))
    r.add_post("/secrets", _action(_secret_set))
    r.add_post("/secrets/{name}/remove", _action(_secret_remove))

