"""The fake WeCom media links against what WeCom publishes: its SDK's ``decryptFile`` (WecomTeam/aibot-node-sdk,
``src/crypto.ts``: AES-256-CBC, key = base64-decoded ``aeskey``, IV = its first 16 bytes, PKCS#7 pad to a multiple
of 32 bytes) and ``downloadFile``'s file name (``Content-Disposition``, ``filename*=UTF-8''...``), and the
message types (``src/types/message.ts``: ``ImageContent``/``FileContent`` are ``{url, aeskey?}``)."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import AsyncIterator

import aiohttp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fake_wecom_cos import COS_HOST, FakeWecomCos
from fake_wecom_ws import FakeWecomWs


@pytest.fixture
async def cos() -> AsyncIterator[FakeWecomCos]:
    async with FakeWecomCos() as fake:
        yield fake


def decrypt_like_the_sdk(body: bytes, aeskey: str) -> bytes:
    key = base64.b64decode(aeskey)
    plain = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor().update(body)
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad
    return plain[:-pad]


async def fetch(cos: FakeWecomCos, url: str) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme == "https" and parts.hostname == COS_HOST and parts.hostname.endswith(".myqcloud.com")
    async with aiohttp.ClientSession() as s, s.get(f"{cos.base_url}{parts.path}?{parts.query}") as r:
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 1000])
async def test_objects_decrypt_with_the_sdk_rule(cos: FakeWecomCos, size: int) -> None:
    data = bytes(range(256)) * 4
    obj = cos.put(data[:size], filename="报告 1.pdf")
    status, headers, body = await fetch(cos, obj.url)
    assert status == 200 and len(body) % 32 == 0 and len(base64.b64decode(obj.aeskey)) == 32
    assert decrypt_like_the_sdk(body, obj.aeskey) == data[:size]
    encoded = headers["Content-Disposition"].split("filename*=UTF-8''", 1)[1]
    assert urllib.parse.unquote(encoded) == "报告 1.pdf"


async def test_keys_are_per_link_and_links_expire(cos: FakeWecomCos) -> None:
    a, b = cos.put(b"same"), cos.put(b"same")
    assert a.aeskey != b.aeskey and a.url != b.url
    assert (await fetch(cos, f"https://{COS_HOST}/missing"))[0] == 404
    corrupt = cos.put(b"x" * 64, corrupt=True)
    assert len((await fetch(cos, corrupt.url))[2]) % 16 != 0
    cos.expire()
    assert (await fetch(cos, a.url))[0] == 403
    assert cos.downloads == ["missing", corrupt.name, a.name]


async def test_media_messages_have_the_sdk_shapes() -> None:
    async with FakeWecomWs() as ws, aiohttp.ClientSession() as s, s.ws_connect(ws.base_url) as conn:
        await conn.send_json({"cmd": "aibot_subscribe", "headers": {"req_id": "s"},
                              "body": {"bot_id": ws.bot_id, "secret": ws.secret}})
        await conn.receive()
        await ws.push_image("https://x.myqcloud.com/i", "a2V5")
        await ws.push_file("https://x.myqcloud.com/f", None)
        await ws.push_mixed([{"msgtype": "text", "text": {"content": "hi"}}])
        bodies = [(await conn.receive_json())["body"] for _ in range(3)]
    assert bodies[0]["msgtype"] == "image"
    assert bodies[0]["image"] == {"url": "https://x.myqcloud.com/i", "aeskey": "a2V5"}
    assert bodies[1]["msgtype"] == "file" and bodies[1]["file"] == {"url": "https://x.myqcloud.com/f"}
    assert bodies[2]["mixed"] == {"msg_item": [{"msgtype": "text", "text": {"content": "hi"}}]}
