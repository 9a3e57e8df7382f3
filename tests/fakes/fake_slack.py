"""A fake Slack Web API on 127.0.0.1, plus builders for signed Events API requests.

Web API wire format (https://api.slack.com/web, "Basics"): every method is ``POST /api/<method>`` (``GET`` is
accepted too); arguments come as a query string, ``application/x-www-form-urlencoded``, ``multipart/form-data``
or a JSON object (JSON only with the token in ``Authorization: Bearer ...``). Every answer is HTTP 200 with a
JSON object ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``.

Implemented methods:

* ``auth.test`` -> ``{ok, url, team, user, team_id, user_id, bot_id}``.
* ``chat.postMessage`` (``channel`` + ``text``/``blocks``/``attachments``, optional ``thread_ts``) ->
  ``{ok, channel, ts, message}``. Errors: ``channel_not_found`` (no channel), ``no_text``, ``msg_too_long``
  (text over 40,000 characters, Slack's documented limit).
* ``chat.update`` (``channel``, ``ts``, ``text``) -> ``{ok, channel, ts, text, message}``; the message's text is
  replaced. Errors: ``channel_not_found``, ``message_not_found`` (a ts this fake never gave out in that channel),
  ``no_text``, ``msg_too_long``.
* files upload v2: ``files.getUploadURLExternal``, the upload URL, ``files.completeUploadExternal``
  (``fake_slack_files``; completed files with their bytes in ``shared``).
* ``users.info`` (``user``) -> ``{ok, user: {id, name, real_name, profile: {display_name, real_name}}}`` for users
  added with :meth:`FakeSlack.add_user`; ``user_not_found`` otherwise.

Authentication: ``not_authed`` without a token, ``invalid_auth`` with a wrong one (both HTTP 200, as Slack does).
Deliberate differences from Slack: an unknown method answers ``{"ok": false, "error": "unknown_method"}`` with
HTTP 404; any channel id is accepted; markup is not parsed; no rate limiting unless a test queues an error with
:meth:`FakeSlack.fail_next`.

Events API side (what Slack POSTs to the app): :func:`url_verification`, :func:`message_event`,
:func:`app_mention_event` build envelopes shaped like the samples on https://api.slack.com/apis/events-api,
https://api.slack.com/events/message and https://api.slack.com/events/app_mention; :func:`signed_headers` signs a
body with slack_sdk's own ``SignatureVerifier.generate_signature`` (``v0=`` HMAC-SHA256 of
``v0:{timestamp}:{body}``), never with Airlock's code.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from fake_base import FakeServer, bearer_token
from fake_slack_files import MAX_FILE_BYTES, SlackFiles
from slack_sdk.signature import SignatureVerifier

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "DEFAULT_TOKEN",
    "MAX_TEXT_CHARS",
    "TEAM_ID",
    "ApiCall",
    "FakeSlack",
    "app_mention_event",
    "message_event",
    "signed_headers",
    "url_verification",
]

JsonDict = dict[str, Any]

DEFAULT_TOKEN = "xoxb-1111-2222-fakeslacktoken"
TEAM_ID = "T0AIRLOCK"
BOT_USER_ID = "U0AIRBOT"
BOT_ID = "B0AIRBOT"
API_APP_ID = "A0AIRLOCK"
MAX_TEXT_CHARS = 40_000
"""chat.postMessage: "messages over 40,000 characters" are refused (Slack docs, chat.postMessage, msg_too_long)."""


@dataclass
class ApiCall:
    """One request to ``/api/<method>``, accepted or not."""

    method: str
    params: JsonDict
    authorization: str | None
    content_type: str
    error: str | None = None


class FakeSlack(SlackFiles, FakeServer):
    """The fake Web API server. ``async with FakeSlack() as slack:``, then point a client at
    ``slack.api_url`` (``slack_sdk.WebClient(token=slack.token, base_url=slack.api_url)``).

    Records (read them directly): ``calls`` (every :class:`ApiCall`, rejected ones included), ``posted``
    (the parameters of every accepted chat.postMessage plus ``"ts"``, the id the fake gave the message), ``updated``
    (every accepted chat.update's parameters) and ``timeline`` (``(method, time.monotonic(), ts, text)`` of every
    accepted post and update, in order).
    """

    max_body_bytes = MAX_FILE_BYTES + 1024 * 1024

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__()
        self.token = token
        self.calls: list[ApiCall] = []
        self.posted: list[JsonDict] = []
        self.updated: list[JsonDict] = []
        self.timeline: list[tuple[str, float, str, str]] = []
        self._texts: dict[tuple[str, str], str] = {}
        self.users: dict[str, JsonDict] = {}
        self._queued: dict[str, list[str]] = {}
        self._ts = itertools.count(1)
        self._init_files()

    # ---- lifecycle -------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/v1/{file_id}", self.handle_upload)

    @property
    def api_url(self) -> str:
        """``<base_url>/api/``: slack_sdk's ``base_url``."""
        return f"{self.base_url}/api/"

    # ---- control -----------------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, display_name: str = "", real_name: str = "") -> None:
        """Make ``users.info`` know ``user_id``."""
        self.users[user_id] = {"id": user_id, "team_id": TEAM_ID, "name": name, "real_name": real_name,
                               "is_bot": False, "profile": {"display_name": display_name, "real_name": real_name}}

    def fail_next(self, method: str, error: str) -> None:
        """The next authenticated call of ``method`` answers ``{"ok": false, "error": error}``."""
        self._queued.setdefault(method, []).append(error)

    async def wait_for_posted(self, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """The first ``n`` accepted chat.postMessage calls; TimeoutError if fewer arrive in ``timeout`` s."""
        return await self.wait_for_records(self.posted, n, timeout, "chat.postMessage calls")

    # ---- the Web API -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        ctype = request.content_type
        try:
            params = await _read_params(request)
        except ValueError:
            return self._answer(ApiCall(method, {}, None, ctype), {"ok": False, "error": "invalid_json"})
        auth = request.headers.get("Authorization")
        call = ApiCall(method, params, auth, ctype)
        token = bearer_token(auth) or (params.get("token") if ctype != "application/json" else None)
        if not token:
            return self._answer(call, {"ok": False, "error": "not_authed"})
        if token != self.token:
            return self._answer(call, {"ok": False, "error": "invalid_auth"})
        handlers = {"auth.test": self._auth_test, "chat.postMessage": self._post_message,
                    "chat.update": self._update, "users.info": self._users_info, **self.file_handlers()}
        if method == "files.getUploadURLExternal":  # form arguments only (Slack refuses JSON for this method)
            handlers[method] = lambda p: self._get_upload_url(p, json_body=ctype == "application/json")
        handler = handlers.get(method)
        if handler is None:
            return self._answer(call, {"ok": False, "error": "unknown_method"}, status=404)
        queued = self._queued.get(method)
        if queued:
            return self._answer(call, {"ok": False, "error": queued.pop(0)})
        return self._answer(call, handler(params))

    def _answer(self, call: ApiCall, body: JsonDict, status: int = 200) -> web.Response:
        call.error = None if body.get("ok") else str(body.get("error"))
        self.calls.append(call)
        self.notify()
        return web.json_response(body, status=status)

    def _auth_test(self, _params: JsonDict) -> JsonDict:
        return {"ok": True, "url": "https://airlock-test.slack.com/", "team": "Airlock Test", "user": "airlock",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _users_info(self, params: JsonDict) -> JsonDict:
        user = self.users.get(str(params.get("user", "")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _post_message(self, params: JsonDict) -> JsonDict:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            return {"ok": False, "error": "channel_not_found"}
        text = params.get("text")
        if not text and not params.get("blocks") and not params.get("attachments"):
            return {"ok": False, "error": "no_text"}
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            return {"ok": False, "error": "msg_too_long"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message: JsonDict = {"type": "message", "subtype": "bot_message", "text": text or "", "ts": ts,
                             "user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.posted.append({**params, "ts": ts})
        self._texts[(channel, ts)] = str(text or "")
        self.timeline.append(("chat.postMessage", time.monotonic(), ts, str(text or "")))
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, params: JsonDict) -> JsonDict:
        channel, ts, text = params.get("channel"), params.get("ts"), params.get("text")
        if not isinstance(channel, str) or not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not isinstance(ts, str) or (channel, ts) not in self._texts:
            return {"ok": False, "error": "message_not_found"}
        if not isinstance(text, str) or not text:
            return {"ok": False, "error": "no_text"}
        if len(text) > MAX_TEXT_CHARS:
            return {"ok": False, "error": "msg_too_long"}
        self._texts[(channel, ts)] = text
        self.updated.append(dict(params))
        self.timeline.append(("chat.update", time.monotonic(), ts, text))
        message = {"type": "message", "text": text, "user": BOT_USER_ID, "bot_id": BOT_ID}
        return {"ok": True, "channel": channel, "ts": ts, "text": text, "message": message}

    def text_of(self, channel: str, ts: str) -> str | None:
        """The current text of the message ``ts`` in ``channel`` (after updates), or None."""
        return self._texts.get((channel, ts))


async def _read_params(request: web.Request) -> JsonDict:
    params: JsonDict = dict(request.query)
    if request.method != "POST":
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("JSON body is not an object")
        params.update(data)
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


# ---- Events API requests (Slack -> app) ------------------------------------------------------------

_event_ids = itertools.count(1)


def _now_ts() -> str:
    return f"{time.time():.6f}"


def url_verification(challenge: str) -> JsonDict:
    """The handshake Slack sends when the Request URL is set (Events API docs, "url_verification")."""
    return {"token": "deprecated-verification-token", "challenge": challenge, "type": "url_verification"}


def _envelope(event: JsonDict) -> JsonDict:
    n = next(_event_ids)
    return {
        "token": "deprecated-verification-token", "team_id": TEAM_ID, "api_app_id": API_APP_ID, "event": event,
        "type": "event_callback", "event_id": f"Ev{n:08d}", "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def message_event(text: str, *, user: str = "U0ALICE", channel: str = "D0ALICE", channel_type: str = "im",
                  ts: str | None = None, thread_ts: str | None = None, **extra: Any) -> JsonDict:
    """An ``event_callback`` carrying a ``message`` event; ``extra`` adds or overrides event keys
    (``subtype``, ``bot_id``, ...; a value of None removes the key)."""
    event: JsonDict = {"type": "message", "channel": channel, "user": user, "text": text,
                       "ts": ts or _now_ts(), "event_ts": ts or _now_ts(), "channel_type": channel_type,
                       "team": TEAM_ID}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    for key, value in extra.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return _envelope(event)


def app_mention_event(text: str, *, user: str = "U0ALICE", channel: str = "C0GENERAL", ts: str | None = None,
                      thread_ts: str | None = None) -> JsonDict:
    """An ``event_callback`` carrying an ``app_mention`` (text contains ``<@BOT_USER_ID>``)."""
    event: JsonDict = {"type": "app_mention", "user": user, "text": text, "ts": ts or _now_ts(),
                       "channel": channel, "event_ts": ts or _now_ts(), "team": TEAM_ID}
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return _envelope(event)


def signed_headers(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body``, computed by slack_sdk."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": "application/json"}
