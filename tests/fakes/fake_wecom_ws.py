"""A fake WeCom intelligent-bot long connection (``wss://openws.work.weixin.qq.com``) on 127.0.0.1, for tests.

    async with FakeWecomWs(bot_id="bot-1", secret="s" * 20) as wecom:
        overrides = {"openws.work.weixin.qq.com": wecom.base_url}
        ...
        req_id = await wecom.push_text("hello", userid="alice")

Wire format (WeCom developer docs, intelligent bot "long connection" mode): every frame is a JSON object. A
command is ``{"cmd", "headers": {"req_id"}, "body"?}``; its answer is ``{"headers": {"req_id"}, "errcode",
"errmsg"}`` with the same ``req_id``.

- The first frame must be ``aibot_subscribe`` with ``body: {"bot_id", "secret"}``: the right pair is answered
  with errcode 0; a wrong one with errcode 853000 ("invalid bot_id or secret") and the connection is closed; any
  other first frame closes the connection (1008).
- ``ping`` is answered with errcode 0 (unless ``ack_pings`` is false); every other command is recorded in
  ``commands`` and answered with errcode 0, except the temporary-media upload (``aibot_upload_media_*``) and
  ``aibot_send_msg`` of a media message, answered as ``fake_wecom_uploads.py`` describes (``uploads.media`` holds
  the finished items; ``upload_refusal`` makes every upload command fail with that errcode).
- Scripting: :meth:`push_text` sends an ``aibot_msg_callback`` (a text message from a user, single chat unless
  ``chatid`` is given), :meth:`push_image` / :meth:`push_file` / :meth:`push_mixed` messages with media items
  (``{url, aeskey}``: links of ``fake_wecom_cos.py``), and :meth:`push_event` an ``aibot_event_callback``; all
  return the frame's ``req_id``, which a reply (``aibot_respond_msg``) must carry.
- Records: ``connections`` (the subscribe body of each), ``pings``, ``commands``, ``refused``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from fake_base import FakeServer
from fake_wecom_uploads import MEDIA_TYPES, UPLOAD_COMMANDS, MediaUploads

__all__ = ["FakeWecomWs", "media_item"]

JsonDict = dict[str, Any]


class FakeWecomWs(FakeServer):
    """See the module docstring."""

    def __init__(self, *, bot_id: str = "aibot-test-0001", secret: str = "Wecom-Bot-Secret-0123456789") -> None:
        super().__init__()
        self.bot_id, self.secret = bot_id, secret
        self.ack_pings = True
        self.connections: list[JsonDict] = []
        self.pings = 0
        self.refused = 0
        self.commands: list[JsonDict] = []
        self.uploads = MediaUploads()
        self.upload_refusal: int | None = None
        """When set, every upload command is answered with this errcode (a test's refusal)."""
        self._ws: web.WebSocketResponse | None = None
        self._ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        frame = json.loads(first.data) if first.type == WSMsgType.TEXT else {}
        if frame.get("cmd") != "aibot_subscribe":
            await ws.close(code=1008)
            return ws
        body = frame.get("body") or {}
        self.connections.append(body)
        self.notify()
        if (body.get("bot_id"), body.get("secret")) != (self.bot_id, self.secret):
            self.refused += 1
            await self._ack(ws, frame, 853000, "invalid bot_id or secret")
            await ws.close()
            return ws
        await self._ack(ws, frame, 0, "ok")
        self._ws = ws
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            await self._on_command(ws, json.loads(msg.data))
        return ws

    async def _ack(self, ws: web.WebSocketResponse, frame: JsonDict, code: int, errmsg: str,
                   body: JsonDict | None = None) -> None:
        ack: JsonDict = {"headers": {"req_id": frame.get("headers", {}).get("req_id")}, "errcode": code,
                         "errmsg": errmsg}
        if body is not None:
            ack["body"] = body
        await ws.send_str(json.dumps(ack))

    async def _on_command(self, ws: web.WebSocketResponse, frame: JsonDict) -> None:
        if frame.get("cmd") == "ping":
            self.pings += 1
            self.notify()
            if self.ack_pings:
                await self._ack(ws, frame, 0, "ok")
            return
        self.commands.append(frame)
        self.notify()
        cmd, body = frame.get("cmd"), frame.get("body") or {}
        if cmd in UPLOAD_COMMANDS and self.upload_refusal is not None:
            await self._ack(ws, frame, self.upload_refusal, "refused by the test")
        elif cmd in UPLOAD_COMMANDS:
            await self._ack(ws, frame, *self.uploads.answer(cmd, body))
        elif cmd == "aibot_send_msg" and body.get("msgtype") in MEDIA_TYPES:
            await self._ack(ws, frame, *self.uploads.check_media_message(body))
        else:
            await self._ack(ws, frame, 0, "ok")

    async def _send(self, frame: JsonDict) -> str:
        if self._ws is None or self._ws.closed:
            raise AssertionError("fake wecom: no subscribed connection")
        await self._ws.send_str(json.dumps(frame))
        req_id: str = frame["headers"]["req_id"]
        return req_id

    def _req_id(self) -> str:
        return f"fake-req-{next(self._ids)}"

    async def push_text(self, text: str, *, userid: str = "alice", chatid: str | None = None) -> str:
        """An ``aibot_msg_callback`` carrying a text message; returns its ``req_id``."""
        return await self.push_message("text", {"content": text}, userid=userid, chatid=chatid)

    async def push_image(self, url: str, aeskey: str | None, *, userid: str = "alice") -> str:
        """An image message (``image: {url, aeskey}``; see ``fake_wecom_cos.py`` for the link and key)."""
        return await self.push_message("image", media_item(url, aeskey), userid=userid)

    async def push_file(self, url: str, aeskey: str | None, *, userid: str = "alice") -> str:
        """A file message (``file: {url, aeskey}``)."""
        return await self.push_message("file", media_item(url, aeskey), userid=userid)

    async def push_mixed(self, items: list[JsonDict], *, userid: str = "alice", chatid: str | None = None) -> str:
        """A mixed message: ``mixed: {msg_item: items}``, each ``{"msgtype": "text", "text": {"content"}}`` or
        ``{"msgtype": "image", "image": {"url", "aeskey"}}`` (aibot-node-sdk ``MixedMsgItem``)."""
        return await self.push_message("mixed", {"msg_item": items}, userid=userid, chatid=chatid)

    async def push_message(self, msgtype: str, content: JsonDict, *, userid: str = "alice",
                           chatid: str | None = None) -> str:
        """An ``aibot_msg_callback`` whose body has ``msgtype`` and ``content`` under that key (single chat unless
        ``chatid`` is given); returns its ``req_id``."""
        body: JsonDict = {"msgid": f"msg-{next(self._ids)}", "aibotid": self.bot_id, "from": {"userid": userid},
                          "chattype": "group" if chatid else "single", "msgtype": msgtype, msgtype: content,
                          "create_time": int(time.time())}
        if chatid:
            body["chatid"] = chatid
        return await self._send({"cmd": "aibot_msg_callback", "headers": {"req_id": self._req_id()}, "body": body})

    async def push_event(self, eventtype: str, *, userid: str = "alice") -> str:
        """An ``aibot_event_callback`` (``enter_chat``, ``disconnected_event``...); returns its ``req_id``."""
        body = {"msgid": f"evt-{next(self._ids)}", "aibotid": self.bot_id, "from": {"userid": userid},
                "msgtype": "event", "event": {"eventtype": eventtype}, "create_time": int(time.time())}
        return await self._send({"cmd": "aibot_event_callback", "headers": {"req_id": self._req_id()}, "body": body})

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Poll ``predicate`` every 10 ms; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"fake wecom: timed out waiting for {what}")
            await asyncio.sleep(0.01)


def media_item(url: str, aeskey: str | None) -> JsonDict:
    """An image or file item (aibot-node-sdk ``ImageContent`` / ``FileContent``: ``url``, optional ``aeskey``)."""
    return {"url": url} if aeskey is None else {"url": url, "aeskey": aeskey}
