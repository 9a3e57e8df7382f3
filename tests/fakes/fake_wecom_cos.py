"""A fake of the download links of the WeCom AI bot's media (Tencent COS, ``*.myqcloud.com``) on 127.0.0.1.

    async with FakeWecomCos() as cos:
        overrides = {COS_HOST: cos.base_url}       # the host's upstream override routes the COS host here
        obj = cos.put(b"\\x89PNG...", filename="chart.png")
        await wecom_ws.push_image(obj.url, obj.aeskey)

What WeCom documents (the long-connection doc "智能机器人长连接", developer.work.weixin.qq.com/document/path/101463,
接收消息回调 / 多媒体资源解密; the types and ``decryptFile`` of WeCom's own SDK WecomTeam/aibot-node-sdk,
``src/types/message.ts`` and ``src/crypto.ts``; IronClaw's wecom capabilities file allow-lists ``GET`` on
``*.myqcloud.com`` for these links):

- an image or file item of a message callback is ``{"url", "aeskey"}``; the URL is a download link valid for five
  minutes ("五分钟内有效，已加密"); every link has its own ``aeskey`` ("每个下载链接的 aeskey 唯一");
- the object is AES-256-CBC ciphertext: key = base64-decoded ``aeskey`` (32 bytes), IV = its first 16 bytes,
  plaintext padded PKCS#7-style to a multiple of 32 bytes;
- the SDK takes the file's name from the response's ``Content-Disposition`` (``filename*=UTF-8''...`` first, then
  ``filename=``), which the fake sends when :meth:`FakeWecomCos.put` is given a ``filename``.

The fake serves ``GET /<object>`` (any query: the real links are signed) with the ciphertext and
``Content-Type: application/octet-stream``; an unknown object answers 404 and an expired link 403. Its own test
hooks: ``put(..., corrupt=True)`` serves the ciphertext less its last byte (it can no longer decrypt), and
:meth:`expire` ages every link past five minutes. Records: ``downloads`` (object names, in order).
"""

from __future__ import annotations

import base64
import itertools
import os
import time
import urllib.parse
from dataclasses import dataclass

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fake_base import FakeServer

__all__ = ["COS_HOST", "LINK_VALID_S", "PAD_BLOCK", "CosObject", "FakeWecomCos", "encrypt_media"]

COS_HOST = "ww-aibot-media-1250000000.cos.ap-guangzhou.myqcloud.com"
"""The host of the fake's links: a name under ``myqcloud.com`` (the real bucket's name is WeCom's business)."""
LINK_VALID_S = 5 * 60
"""A download link works for five minutes (WeCom: "五分钟内有效")."""
PAD_BLOCK = 32
"""WeCom pads media to a multiple of 32 bytes (aibot-node-sdk ``decryptFile``: "PKCS#7 填充至 32 字节的倍数")."""


def encrypt_media(data: bytes, aeskey: str) -> bytes:
    """``data`` encrypted the way WeCom serves media: AES-256-CBC, IV = key[:16], 32-byte-block PKCS#7 pad."""
    key = base64.b64decode(aeskey)
    pad = PAD_BLOCK - len(data) % PAD_BLOCK
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()


@dataclass(frozen=True)
class CosObject:
    """A stored object: the link and key a message callback carries for it."""

    name: str
    url: str
    aeskey: str


class FakeWecomCos(FakeServer):
    """See the module docstring."""

    max_body_bytes = 64 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.downloads: list[str] = []
        self._objects: dict[str, tuple[bytes, str | None, float]] = {}
        self._ids = itertools.count(1)
        self._age_s = 0.0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{name}", self._get)

    def put(self, data: bytes, *, filename: str | None = None, corrupt: bool = False) -> CosObject:
        """Store ``data`` encrypted with a fresh random key; returns its link (on :data:`COS_HOST`) and key."""
        aeskey = base64.b64encode(os.urandom(32)).decode()
        body = encrypt_media(data, aeskey)
        if corrupt:
            body = body[:-1]
        name = f"aibot-media-{next(self._ids)}"
        self._objects[name] = (body, filename, time.monotonic())
        url = f"https://{COS_HOST}/{name}?sign=q-sign-algorithm%3Dsha1%26q-ak%3Dfake&t={int(time.time())}"
        return CosObject(name=name, url=url, aeskey=aeskey)

    def expire(self) -> None:
        """Make every link older than :data:`LINK_VALID_S`."""
        self._age_s = LINK_VALID_S + 1

    async def _get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.downloads.append(name)
        self.notify()
        found = self._objects.get(name)
        if found is None:
            return web.Response(status=404, text="NoSuchKey")
        body, filename, created = found
        if time.monotonic() + self._age_s - created > LINK_VALID_S:
            return web.Response(status=403, text="Request has expired")
        headers = {"Content-Type": "application/octet-stream"}
        if filename is not None:
            quoted = urllib.parse.quote(filename, safe="")
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quoted}"
        return web.Response(body=body, headers=headers)
