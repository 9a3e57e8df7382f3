"""A fake Feishu/Lark Open Platform on 127.0.0.1, plus builders for (encrypted, signed) event callbacks.

Open API side (https://open.feishu.cn/document, "Server API"), every answer a JSON object with ``code``
(0 = success) and ``msg``:

* ``POST /open-apis/auth/v3/tenant_access_token/internal`` with ``{"app_id", "app_secret"}`` ->
  ``{"code": 0, "msg": "ok", "tenant_access_token": "t-...", "expire": <seconds>}`` (documented lifetime:
  2 hours; here ``FakeFeishu.token_ttl_s``). A wrong app id or secret answers code 10014 ("app secret
  invalid"); a body without both fields code 10003 (HTTP 400 for both).
* ``GET /open-apis/bot/v3/info`` -> ``{"code": 0, "bot": {"open_id", "app_name", "activate_status"}}``.
* ``POST /open-apis/im/v1/messages/{message_id}/reply`` with ``{"msg_type", "content", "reply_in_thread"?,
  "uuid"?}`` -> ``{"code": 0, "data": <message>}``.
* ``POST /open-apis/im/v1/messages?receive_id_type=open_id|chat_id|user_id|union_id`` with
  ``{"receive_id", "msg_type", "content"}`` -> ``{"code": 0, "data": <message>}``.
* ``PUT /open-apis/im/v1/messages/{message_id}`` ("edit message") with ``{"msg_type", "content"}`` (text or post) ->
  ``{"code": 0, "data": <message>}``; a message this fake did not send answers code 230011 ("message not found",
  HTTP 400); the 21st edit of a message code 230072 ("The message has reached the number of times it can be
  edited": the documented limit is 20 edits).

The three bot APIs want ``Authorization: Bearer <tenant_access_token>``: none answers code 99991661, an
unknown token 99991663, an expired one 99991677 (HTTP 400, as the platform does). ``content`` must be a JSON
string (for ``text``: ``{"text": "..."}``) of at most ``MAX_CONTENT_BYTES``, else code 230001 / 230025.
Deliberate differences: any message id and chat id exist; no rate limits; only ``text`` and ``post`` are
accepted as ``msg_type``.

Event side (what Feishu POSTs to the app, "Event subscription v2.0"): :func:`url_verification`,
:func:`message_event` build bodies shaped like the documented samples (``im.message.receive_v1``, schema 2.0);
:func:`encrypt_body` encrypts a body the documented way (AES-256-CBC, key = SHA-256 of the encrypt key, a
random 16-byte IV prefixed, PKCS#7, base64 -> ``{"encrypt": ...}``) with the ``cryptography`` package, and
:func:`signed_headers` signs it (``X-Lark-Signature`` = hex SHA-256 of timestamp + nonce + encrypt key + raw
body) with hashlib, never with Airlock's code.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fake_base import FakeServer, bearer_token

__all__ = [
    "APP_ID",
    "APP_SECRET",
    "BOT_OPEN_ID",
    "MAX_CONTENT_BYTES",
    "ApiCall",
    "FakeFeishu",
    "bot_mention",
    "encrypt_body",
    "message_event",
    "signed_headers",
    "url_verification",
]

JsonDict = dict[str, Any]
_MessageHandler = Callable[[web.Request, "ApiCall", JsonDict], web.Response]
"""A message API's work once the call is recorded and its authentication and content checked."""
_MessageCheck = Callable[[web.Request, "ApiCall", JsonDict], web.Response | None]
"""A check before authentication: an error answer, or None to go on."""
_Endpoint = Callable[[web.Request], Awaitable[web.Response]]

APP_ID = "cli_a1b2c3d4e5f6airl"
APP_SECRET = "Fake-App-Secret-0123456789abcdefABCDEF"
BOT_OPEN_ID = "ou_bot0000000000000000000000000airlock"
TENANT_KEY = "2ca1d211f64f6438"
MAX_CONTENT_BYTES = 150 * 1024
"""Message content limit: "text messages ... at most 150 KB" (Feishu docs, Send message, request body)."""
MAX_EDITS = 20
"""Feishu's "edit message": one message can be edited at most 20 times (open.feishu.cn, im-v1 message update)."""

_BEARER_ERRORS = {
    "missing": (99991661, "Missing access token for authorization. Please make a request with token attached."),
    "invalid": (99991663, "Invalid access token for authorization. Please make a request with token attached."),
    "expired": (99991677, "Authentication token expired."),
}


@dataclass
class ApiCall:
    """One request to the fake, accepted or not: ``path`` (without query), ``query``, parsed JSON ``body``
    (``None`` if absent or not JSON), the ``Authorization`` header, and the answer's ``code``."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None
    code: int = 0


@dataclass
class _Token:
    value: str
    expires_at: float  # time.time() seconds


@dataclass
class FakeFeishu(FakeServer):
    """The fake Open Platform. ``async with FakeFeishu() as feishu:``; point ``open.feishu.cn`` at
    ``feishu.base_url``.

    Records: ``calls`` (every :class:`ApiCall`), ``token_requests`` (accepted and refused bodies of the token
    endpoint), ``replies`` and ``sent`` (accepted reply / create calls: the JSON body plus ``message_id``
    of the replied-to message or ``receive_id_type``, ``text`` decoded from ``content`` and ``new_id``).
    ``token_ttl_s`` is the lifetime of tokens issued from now on; :meth:`expire_tokens` ends all issued ones.
    """

    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    token_ttl_s: int = 7200
    max_edits: int = MAX_EDITS
    """Edits allowed per message (Feishu: 20); a test lowers it to reach the limit quickly."""
    bot_open_id: str = BOT_OPEN_ID
    calls: list[ApiCall] = field(default_factory=list)
    token_requests: list[JsonDict] = field(default_factory=list)
    replies: list[JsonDict] = field(default_factory=list)
    sent: list[JsonDict] = field(default_factory=list)
    edits: list[JsonDict] = field(default_factory=list)
    timeline: list[tuple[str, float, str, str]] = field(default_factory=list)
    """``(kind, time.monotonic(), message id, text)`` of every message sent ("send") and edited ("edit"), in order."""
    texts: dict[str, str] = field(default_factory=dict)
    """The current text of every message this fake sent, by message id (after edits)."""
    tokens_issued: list[str] = field(default_factory=list)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ---- lifecycle -------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self._tenant_token)
        app.router.add_get("/open-apis/bot/v3/info", self._bot_info)
        app.router.add_post("/open-apis/im/v1/messages/{message_id}/reply", self._message_endpoint(self._reply))
        app.router.add_post("/open-apis/im/v1/messages",
                            self._message_endpoint(self._create, first=self._receive_id_error))
        app.router.add_put("/open-apis/im/v1/messages/{message_id}", self._message_endpoint(self._edit))

    # ---- control -----------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every tenant token issued so far is expired from now on (the next use answers 99991677)."""
        for token in self._tokens.values():
            token.expires_at = 0.0

    async def wait_for(self, what: str, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """The first ``n`` entries of ``replies`` or ``sent`` (``what``); TimeoutError if fewer arrive."""
        records: list[JsonDict] = getattr(self, what)
        return await self.wait_for_records(records, n, timeout, what)

    # ---- the Open API ------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> ApiCall:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = ApiCall(request.method, request.path, dict(request.query), body,
                       request.headers.get("Authorization"))
        self.calls.append(call)
        return call

    def _answer(self, call: ApiCall, code: int, msg: str, status: int = 200, **extra: Any) -> web.Response:
        call.code = code
        self.notify()
        return web.json_response({"code": code, "msg": msg, **extra}, status=status)

    async def _tenant_token(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        body = call.body if isinstance(call.body, dict) else {}
        self.token_requests.append(body)
        app_id, app_secret = body.get("app_id"), body.get("app_secret")
        if not isinstance(app_id, str) or not isinstance(app_secret, str) or not app_id or not app_secret:
            return self._answer(call, 10003, "invalid param", status=400)
        if app_id != self.app_id or not secrets.compare_digest(app_secret, self.app_secret):
            return self._answer(call, 10014, "app secret invalid", status=400)
        token = "t-" + secrets.token_hex(20)
        self._tokens[token] = _Token(token, time.time() + self.token_ttl_s)
        self.tokens_issued.append(token)
        return self._answer(call, 0, "ok", tenant_access_token=token, expire=self.token_ttl_s)

    def _bearer_error(self, call: ApiCall) -> web.Response | None:
        presented = bearer_token(call.authorization)
        if presented is None:
            kind = "missing"
        else:
            token = self._tokens.get(presented)
            if token is None:
                kind = "invalid"
            elif token.expires_at <= time.time():
                kind = "expired"
            else:
                return None
        code, msg = _BEARER_ERRORS[kind]
        return self._answer(call, code, msg, status=400)

    async def _bot_info(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        refused = self._bearer_error(call)
        if refused is not None:
            return refused
        bot = {"activate_status": 2, "app_name": "Airlock Test", "avatar_url": "", "ip_white_list": [],
               "open_id": self.bot_open_id}
        return self._answer(call, 0, "ok", bot=bot)

    def _message_error(self, call: ApiCall, body: JsonDict) -> web.Response | None:
        refused = self._bearer_error(call)
        if refused is not None:
            return refused
        content = body.get("content")
        if body.get("msg_type") not in ("text", "post") or not isinstance(content, str):
            return self._answer(call, 230001, "Your request contains an invalid request parameter.", status=400)
        if len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
            return self._answer(call, 230025, "The message content is too long.", status=400)
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return self._answer(call, 230001, "content is not a JSON object.", status=400)
        return None

    def _message(self, body: JsonDict, chat_id: str, parent: str | None) -> JsonDict:
        new_id = f"om_fake{next(self._ids):08d}"
        return {"message_id": new_id, "root_id": parent or "", "parent_id": parent or "", "msg_type": body["msg_type"],
                "create_time": str(int(time.time() * 1000)), "chat_id": chat_id, "deleted": False, "updated": False,
                "sender": {"id": self.app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": TENANT_KEY},
                "body": {"content": body["content"]}}

    def _message_endpoint(self, handle: _MessageHandler, first: _MessageCheck | None = None) -> _Endpoint:
        """The aiohttp handler of a message API: records the call, answers the error of ``first`` (checks that come
        before authentication), then a bearer or content error (``_message_error``), else ``handle``'s answer."""

        async def endpoint(request: web.Request) -> web.Response:
            call = await self._record(request)
            body = call.body if isinstance(call.body, dict) else {}
            refused = first(request, call, body) if first is not None else None
            if refused is None:
                refused = self._message_error(call, body)
            return refused if refused is not None else handle(request, call, body)

        return endpoint

    def _reply(self, request: web.Request, call: ApiCall, body: JsonDict) -> web.Response:
        message_id = request.match_info["message_id"]
        data = self._message(body, "oc_fakechat", message_id)
        self.replies.append({**body, "message_id": message_id, "text": _text_of(body), "new_id": data["message_id"]})
        self._sent_text(data["message_id"], body)
        return self._answer(call, 0, "success", data=data)

    def _sent_text(self, message_id: str, body: JsonDict) -> None:
        self.texts[message_id] = _text_of(body) or ""
        self.timeline.append(("send", time.monotonic(), message_id, self.texts[message_id]))

    def _edit(self, request: web.Request, call: ApiCall, body: JsonDict) -> web.Response:
        message_id = request.match_info["message_id"]
        if message_id not in self.texts:
            return self._answer(call, 230011, "The message was not found.", status=400)
        if sum(1 for e in self.edits if e["message_id"] == message_id) >= self.max_edits:
            return self._answer(call, 230072, "The message has reached the number of times it can be edited",
                                status=400)
        self.texts[message_id] = _text_of(body) or ""
        self.edits.append({**body, "message_id": message_id, "text": self.texts[message_id]})
        self.timeline.append(("edit", time.monotonic(), message_id, self.texts[message_id]))
        data = {**self._message(body, "oc_fakechat", None), "message_id": message_id, "updated": True}
        return self._answer(call, 0, "success", data=data)

    def _receive_id_error(self, request: web.Request, call: ApiCall, body: JsonDict) -> web.Response | None:
        id_type = request.query.get("receive_id_type")
        if id_type not in ("open_id", "chat_id", "user_id", "union_id", "email") or not body.get("receive_id"):
            return self._answer(call, 230001, "Your request contains an invalid request parameter.", status=400)
        return None

    def _create(self, request: web.Request, call: ApiCall, body: JsonDict) -> web.Response:
        data = self._message(body, str(body["receive_id"]), None)
        self.sent.append({**body, "receive_id_type": request.query["receive_id_type"], "text": _text_of(body),
                          "new_id": data["message_id"]})
        self._sent_text(data["message_id"], body)
        return self._answer(call, 0, "success", data=data)


def _text_of(body: JsonDict) -> str | None:
    try:
        content = json.loads(body["content"])
    except (KeyError, TypeError, ValueError):
        return None
    text = content.get("text") if isinstance(content, dict) else None
    return text if isinstance(text, str) else None


# ---- the event side ---------------------------------------------------------------------------------------


def url_verification(token: str, challenge: str | None = None) -> JsonDict:
    """The URL-verification callback Feishu sends when the request URL is saved (docs: "Configure the
    request URL"): ``{"challenge", "token", "type": "url_verification"}``."""
    return {"challenge": challenge or secrets.token_urlsafe(12), "token": token, "type": "url_verification"}


def message_event(
    text: str,
    *,
    token: str,
    open_id: str = "ou_user000000000000000000000000alice",
    chat_id: str = "oc_p2pchat0000000000000000000alice",
    chat_type: str = "p2p",
    message_id: str | None = None,
    sender_type: str = "user",
    mentions: list[JsonDict] | None = None,
    root_id: str | None = None,
    thread_id: str | None = None,
    message_type: str = "text",
    app_id: str = APP_ID,
) -> JsonDict:
    """An ``im.message.receive_v1`` event (schema 2.0), shaped like the sample in Feishu's docs ("Receive
    message", event body). ``text`` goes into ``content`` as ``{"text": ...}``; mention placeholders such as
    ``@_user_1`` must be written into ``text`` by the caller and described in ``mentions``."""
    now_ms = str(int(time.time() * 1000))
    message: JsonDict = {
        "message_id": message_id or f"om_{secrets.token_hex(16)}",
        "create_time": now_ms,
        "update_time": now_ms,
        "chat_id": chat_id,
        "chat_type": chat_type,
        "message_type": message_type,
        "content": json.dumps({"text": text}, ensure_ascii=False),
        "mentions": mentions or [],
        "user_agent": "Mozilla/5.0 Lark/7.1",
    }
    if root_id:
        message["root_id"] = root_id
        message["parent_id"] = root_id
    if thread_id:
        message["thread_id"] = thread_id
    sender_id = {"union_id": "on_" + open_id[3:], "user_id": "u" + open_id[-8:], "open_id": open_id}
    if sender_type == "app":
        sender_id = {"open_id": open_id}
    return {
        "schema": "2.0",
        "header": {"event_id": secrets.token_hex(16), "event_type": "im.message.receive_v1", "create_time": now_ms,
                   "token": token, "app_id": app_id, "tenant_key": TENANT_KEY},
        "event": {"sender": {"sender_id": sender_id, "sender_type": sender_type, "tenant_key": TENANT_KEY},
                  "message": message},
    }


def bot_mention(key: str = "@_user_1", open_id: str = BOT_OPEN_ID, name: str = "Airlock Test") -> JsonDict:
    """One ``mentions[]`` entry as Feishu writes it for an @-mention of the bot (bots have no user_id)."""
    return {"key": key, "id": {"union_id": "", "user_id": "", "open_id": open_id}, "name": name,
            "tenant_key": TENANT_KEY}


def encrypt_body(payload: JsonDict | str, encrypt_key: str, *, iv: bytes | None = None) -> JsonDict:
    """``{"encrypt": base64(IV + AES-256-CBC(PKCS#7(payload)))}`` with key = SHA-256(encrypt_key)
    (Feishu docs, "Encrypt and decrypt event callbacks")."""
    plain = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode("utf-8")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    iv = iv if iv is not None else os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return {"encrypt": base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode("ascii")}


def signed_headers(body: bytes, encrypt_key: str, *, timestamp: int | None = None,
                   nonce: str | None = None) -> dict[str, str]:
    """The headers Feishu adds when an encrypt key is set (docs, "Security verification"):
    ``X-Lark-Signature`` = hex SHA-256 of ``timestamp + nonce + encrypt_key + raw body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(8)
    digest = hashlib.sha256((ts + nonce + encrypt_key).encode("utf-8") + body).hexdigest()
    return {"Content-Type": "application/json", "X-Lark-Request-Timestamp": ts,
            "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": digest}
