"""A fake WeCom server API (``https://qyapi.weixin.qq.com``) on 127.0.0.1, plus builders for encrypted, signed
callbacks of a self-built app.

Server API side, every answer a JSON object with ``errcode`` (0 = success) and ``errmsg``, HTTP 200 even for errors
(as WeCom does):

* ``GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET`` -> ``{"errcode": 0, "errmsg": "ok", "access_token",
  "expires_in": 7200}`` (WeCom docs "获取access_token", https://developer.work.weixin.qq.com/document/path/91039).
  A wrong corp id answers errcode 40013 ("invalid corpid"), a wrong secret 40001 ("invalid credential").
* ``POST /cgi-bin/message/send?access_token=TOKEN`` with ``{"touser", "msgtype": "text", "agentid",
  "text": {"content"}, "safe"?}`` -> ``{"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "",
  "invalidtag": "", "msgid"}`` (docs "发送应用
  消息", https://developer.work.weixin.qq.com/document/path/90236). No or an unknown token: errcode 40014
  ("invalid access_token"); an expired one 42001 ("access_token expired"); content over
  :data:`MAX_TEXT_BYTES`: 45002 ("content size out of limit"); a wrong agentid 40056.

Callback side (what WeCom POSTs to the app, docs "加解密方案说明", path/90968, and "接收消息", path/90239):
:func:`text_message_xml` builds a plaintext message, :func:`encrypt_message` encrypts it the documented way (random
16 bytes + 4-byte big-endian length + message + receive id, PKCS#7 to 32 bytes, AES-256-CBC, key = base64 of the
EncodingAESKey + "=", IV = the key's first 16 bytes) with ``cryptography``, and :func:`sign` computes
``msg_signature`` with hashlib; :func:`callback_query` / :func:`callback_body` assemble a request. Both are checked
against the official test vector in tests/inbound/test_verify_wecom.py.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fake_base import FakeServer

__all__ = [
    "AGENT_ID",
    "CORP_ID",
    "CORP_SECRET",
    "MAX_TEXT_BYTES",
    "FakeWecom",
    "callback_body",
    "callback_query",
    "encrypt_message",
    "sign",
    "text_message_xml",
]

JsonDict = dict[str, Any]

CORP_ID = "ww0a1b2c3d4e5f6a7b"
CORP_SECRET = "Fake-Corp-Secret-0123456789abcdefABCDEFghij"
AGENT_ID = 1000002
MAX_TEXT_BYTES = 2048
"""Text message content limit: "最长不超过2048个字节" (docs "发送应用消息", text message)."""


def sign(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """``msg_signature``: hex SHA-1 of the four strings, sorted and concatenated."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def encrypt_message(encoding_aes_key: str, message: str, receive_id: str, random: bytes | None = None) -> str:
    """The base64 ciphertext of ``message`` for ``receive_id`` (see the module doc)."""
    key = base64.b64decode(encoding_aes_key + "=")
    raw = message.encode()
    plain = (random or os.urandom(16)) + len(raw).to_bytes(4, "big") + raw + receive_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def text_message_xml(content: str, *, from_user: str, msg_id: int, to_user: str = CORP_ID,
                     agent_id: int = AGENT_ID, msg_type: str = "text") -> str:
    """A received text message as documented ("接收消息" / 文本消息)."""
    return (f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><FromUserName><![CDATA[{from_user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>{agent_id}</AgentID></xml>")


def callback_query(token: str, encrypted: str, *, timestamp: int | None = None, echo: bool = False) -> dict[str, str]:
    """The query string of a callback carrying ``encrypted`` (in ``echostr`` when ``echo``: the URL check)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = str(secrets.randbelow(10**10))
    query = {"msg_signature": sign(token, ts, nonce, encrypted), "timestamp": ts, "nonce": nonce}
    if echo:
        query["echostr"] = encrypted
    return query


def callback_body(encrypted: str, *, to_user: str = CORP_ID, agent_id: int = AGENT_ID) -> bytes:
    """The POST body of a callback: ``ToUserName``, ``AgentID`` and ``Encrypt`` (docs "加解密方案说明")."""
    return (f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><AgentID><![CDATA[{agent_id}]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()


@dataclass
class FakeWecom(FakeServer):
    """See the module docstring. ``token_ttl_s`` is the ``expires_in`` answered (7200 as documented)."""

    corp_id: str = CORP_ID
    corp_secret: str = CORP_SECRET
    agent_id: int = AGENT_ID
    token_ttl_s: int = 7200
    token_requests: list[dict[str, str]] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    sent: list[JsonDict] = field(default_factory=list)
    send_codes: list[int] = field(default_factory=list)
    _expiry: dict[str, float] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._send)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (errcode 42001)."""
        for token in self._expiry:
            self._expiry[token] = 0.0

    async def _gettoken(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.token_requests.append(query)
        self.notify()
        if query.get("corpid") != self.corp_id:
            return web.json_response({"errcode": 40013, "errmsg": "invalid corpid"})
        if query.get("corpsecret") != self.corp_secret:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        token = f"wecom-at-{secrets.token_hex(12)}"
        self.tokens_issued.append(token)
        self._expiry[token] = time.monotonic() + self.token_ttl_s
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token,
                                  "expires_in": self.token_ttl_s})

    def _token_error(self, token: str | None) -> JsonDict | None:
        if token is None or token not in self._expiry:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if self._expiry[token] <= time.monotonic():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    async def _send(self, request: web.Request) -> web.Response:
        error = self._token_error(request.query.get("access_token"))
        body = await request.json() if error is None else {}
        if error is None:
            error = self._message_error(body)
        answer = error or {"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "", "invalidtag": "",
                           "msgid": f"msg-{next(self._ids)}"}
        self.send_codes.append(int(answer["errcode"]))
        if error is None:
            self.sent.append(body)
        self.notify()
        return web.json_response(answer)

    def _message_error(self, body: JsonDict) -> JsonDict | None:
        if body.get("agentid") != self.agent_id:
            return {"errcode": 40056, "errmsg": "invalid agentid"}
        if body.get("msgtype") != "text" or not body.get("touser"):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        content = (body.get("text") or {}).get("content", "")
        if not isinstance(content, str) or len(content.encode()) > MAX_TEXT_BYTES:
            return {"errcode": 45002, "errmsg": "content size out of limit"}
        return None

    async def wait_for(self, what: str, n: int, timeout: float = 10.0) -> list[Any]:
        """The first ``n`` items of the record list named ``what`` (``sent``, ``token_requests``)."""
        records: list[Any] = getattr(self, what)
        return await self.wait_for_records(records, n, timeout, what)
