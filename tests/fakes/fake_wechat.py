"""A fake WeChat iLink bot API (``https://ilinkai.weixin.qq.com``) on 127.0.0.1, for tests.

    async with FakeWechat() as wechat:
        overrides = {"ilinkai.weixin.qq.com": wechat.base_url}
        wechat.push_text("hello", from_user="alice@im.wechat")

Source of the contract: Tencent/openclaw-weixin, ``docs/protocol.md`` ("Weixin Backend API Protocol"). Every
request is a JSON POST with ``AuthorizationType: ilink_bot_token``, ``Authorization: Bearer <bot_token>``,
``X-WECHAT-UIN`` (base64 of a decimal uint32) and a body with ``base_info.channel_version``. HTTP is 200 for
application errors, which are in ``ret`` / ``errcode`` (as the real service does):

* ``POST /ilink/bot/getupdates`` ``{"get_updates_buf", "base_info"}`` -> ``{"ret": 0, "msgs": [WeixinMessage...],
  "get_updates_buf", "longpolling_timeout_ms"}``. The request is held until a message is queued after the cursor
  or ``hold_s`` passes (then ``msgs`` is empty and the cursor unchanged). The cursor is ``buf-<n>``: the messages
  after the n-th pushed one are delivered, so an old cursor gets its messages again (as a server that never saw
  the client move on would).
* ``POST /ilink/bot/sendmessage`` ``{"msg": {"to_user_id", "client_id", "message_type": 2, "message_state": 2,
  "item_list": [{"type": 1, "text_item": {"text"}}], "context_token"?}, "base_info"}`` -> ``{"ret": 0, "errmsg":
  ""}``; recorded in ``sent``.

* ``POST /ilink/bot/getconfig`` ``{"ilink_user_id", "context_token"?, "base_info"}`` -> ``{"ret": 0, "typing_ticket"}``
  (a base64 ticket per user);
* ``POST /ilink/bot/sendtyping`` ``{"ilink_user_id", "typing_ticket", "status": 1|2, "base_info"}`` -> ``{"ret": 0}``
  when the ticket is the one getconfig gave that user, else ``{"ret": -1, ...}``; recorded in ``typing``.

A missing or wrong bearer token answers ``{"ret": -14, "errcode": -14, "errmsg": "session timeout"}`` (the
documented session error); a body that is not the documented shape ``{"ret": -1, "errmsg": ...}`` (HTTP 200).
Records: ``calls`` (path, headers, body of every request), ``sent``, ``typing`` (``(user, status)`` pairs).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from fake_base import FakeServer, bearer_token

__all__ = ["BOT_TOKEN", "FakeWechat", "WechatCall"]

JsonDict = dict[str, Any]

BOT_TOKEN = "ilink-bot-token-0123456789abcdef"
SESSION_EXPIRED = {"ret": -14, "errcode": -14, "errmsg": "session timeout"}


@dataclass
class WechatCall:
    """One request: path, its headers (as sent) and parsed JSON body (None if not JSON)."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeWechat(FakeServer):
    """See the module docstring. ``hold_s``: longest hold of an idle getupdates."""

    token: str = BOT_TOKEN
    hold_s: float = 1.5
    longpolling_timeout_ms: int = 35_000
    calls: list[WechatCall] = field(default_factory=list)
    sent: list[JsonDict] = field(default_factory=list)
    typing: list[tuple[str, int]] = field(default_factory=list)
    _queue: list[JsonDict] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7448678501208393001))
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/ilink/bot/getupdates", self._getupdates)
        app.router.add_post("/ilink/bot/sendmessage", self._sendmessage)
        app.router.add_post("/ilink/bot/getconfig", self._getconfig)
        app.router.add_post("/ilink/bot/sendtyping", self._sendtyping)

    # ---- scripting ------------------------------------------------------------------------------------

    def push(self, message: JsonDict) -> JsonDict:
        """Queue a WeixinMessage for the next getupdates; returns it."""
        self._queue.append(message)
        self._arrived.set()
        return message

    def push_text(self, text: str, *, from_user: str, context_token: str | None = None,
                  group_id: str | None = None) -> JsonDict:
        """A finished text message from a person (``message_type`` 1), as in protocol.md's message model."""
        message: JsonDict = {
            "seq": len(self._queue) + 1, "message_id": next(self._ids), "from_user_id": from_user,
            "to_user_id": "bot-0001@im.bot", "create_time_ms": int(time.time() * 1000), "message_type": 1,
            "message_state": 2, "context_token": context_token or f"ctx-{from_user}",
            "item_list": [{"type": 1, "text_item": {"text": text}}],
        }
        if group_id:
            message["group_id"] = group_id
        return self.push(message)

    async def wait_for_sent(self, n: int, timeout: float = 10.0) -> list[JsonDict]:
        return await self.wait_for_records(self.sent, n, timeout, "sent messages")

    # ---- handlers -------------------------------------------------------------------------------------

    async def _read(self, request: web.Request) -> tuple[Any, JsonDict | None]:
        """The body, and an error answer if the request breaks the documented contract."""
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.calls.append(WechatCall(request.path, dict(request.headers), body))
        self.notify()
        if bearer_token(request.headers.get("Authorization")) != self.token:
            return body, SESSION_EXPIRED
        if request.headers.get("AuthorizationType") != "ilink_bot_token" or not _is_uin(
                request.headers.get("X-WECHAT-UIN")):
            return body, {"ret": -1, "errmsg": "missing AuthorizationType or X-WECHAT-UIN"}
        if not isinstance(body, dict) or not isinstance((body.get("base_info") or {}).get("channel_version"), str):
            return body, {"ret": -1, "errmsg": "body without base_info.channel_version"}
        return body, None

    async def _getupdates(self, request: web.Request) -> web.Response:
        body, error = await self._read(request)
        if error is not None:
            return web.json_response(error)
        cursor = body.get("get_updates_buf")
        if not isinstance(cursor, str):
            return web.json_response({"ret": -1, "errmsg": "get_updates_buf must be a string"})
        start = int(cursor[4:]) if cursor.startswith("buf-") and cursor[4:].isdigit() else 0
        deadline = time.monotonic() + self.hold_s
        while len(self._queue) <= start and time.monotonic() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        msgs = self._queue[start:]
        next_cursor = f"buf-{len(self._queue)}" if msgs else cursor
        return web.json_response({"ret": 0, "msgs": msgs, "get_updates_buf": next_cursor,
                                  "longpolling_timeout_ms": self.longpolling_timeout_ms})

    async def _sendmessage(self, request: web.Request) -> web.Response:
        body, error = await self._read(request)
        if error is not None:
            return web.json_response(error)
        msg = body.get("msg")
        if not isinstance(msg, dict) or not msg.get("to_user_id") or not isinstance(msg.get("item_list"), list):
            return web.json_response({"ret": -1, "errmsg": "msg needs to_user_id and item_list"})
        items = [i for i in msg["item_list"] if isinstance(i, dict) and i.get("type") == 1]
        texts = [(i.get("text_item") or {}).get("text") for i in items]
        if not texts or not all(isinstance(t, str) and t for t in texts):
            return web.json_response({"ret": -1, "errmsg": "no text item"})
        self.sent.append({"to_user_id": msg["to_user_id"], "text": "".join(texts),
                          "context_token": msg.get("context_token"), "msg": msg})
        self.notify()
        return web.json_response({"ret": 0, "errmsg": ""})

    async def _getconfig(self, request: web.Request) -> web.Response:
        body, error = await self._read(request)
        if error is not None:
            return web.json_response(error)
        user = body.get("ilink_user_id")
        if not isinstance(user, str) or not user:
            return web.json_response({"ret": -1, "errmsg": "ilink_user_id is required"})
        return web.json_response({"ret": 0, "typing_ticket": _ticket(user)})

    async def _sendtyping(self, request: web.Request) -> web.Response:
        body, error = await self._read(request)
        if error is not None:
            return web.json_response(error)
        user, status = body.get("ilink_user_id"), body.get("status")
        if not isinstance(user, str) or body.get("typing_ticket") != _ticket(user) or status not in (1, 2):
            return web.json_response({"ret": -1, "errmsg": "bad typing ticket or status"})
        self.typing.append((user, status))
        self.notify()
        return web.json_response({"ret": 0, "errmsg": ""})


def _ticket(user: str) -> str:
    return base64.b64encode(f"ticket:{user}".encode()).decode()


def _is_uin(value: str | None) -> bool:
    """``X-WECHAT-UIN``: base64 of the decimal text of a uint32."""
    if not value:
        return False
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return False
    return decoded.isdigit() and int(decoded) < 2**32
