"""End to end: reply files of the AI bot. The real WeCom component (Rust) in the real host answers a message with
``host.respond(..., attachments=...)``: the text goes back as the stream reply at once, and each file is uploaded
over the long connection (``aibot_upload_media_init`` -> ``_chunk`` x N -> ``_finish``, each step after the
previous step's ack, which reaches the guest as a frame) and sent with ``aibot_send_msg``. The fake long connection
(tests/fakes/fake_wecom_ws.py with fake_wecom_uploads.py) checks every step and keeps the bytes it received."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from channel_e2e import next_message, running_host
from conftest import BUILT_CHANNELS, InstallFn
from fake_wecom_uploads import BAD_REQUEST, CHUNK_BYTES
from fake_wecom_ws import FakeWecomWs

from airlock.host import AirlockHost
from airlock.runtime.values import Attachment

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "wecom.wasm"
CAPS = BUILT_CHANNELS / "wecom.capabilities.json"
USER = "zhangsan"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(CHUNK_BYTES + 1000)  # two chunks
PDF = b"%PDF-1.7\n" + os.urandom(3000)


@pytest.fixture
async def bot() -> AsyncIterator[FakeWecomWs]:
    async with FakeWecomWs() as fake:
        yield fake


def sent_media(bot: FakeWecomWs) -> list[dict[str, Any]]:
    return [c["body"] for c in bot.commands if c["cmd"] == "aibot_send_msg" and c["body"]["msgtype"] != "markdown"]


def host_for(home: Path, bot: FakeWecomWs) -> AbstractAsyncContextManager[AirlockHost]:
    """The host with the WeCom channel's AI-bot secrets, its socket pointed at the fake."""
    secrets = {"wecom_bot_id": bot.bot_id, "wecom_bot_secret": bot.secret}
    return running_host(home, "wecom", secrets, {"openws.work.weixin.qq.com": bot.base_url})


async def ask(host: AirlockHost, bot: FakeWecomWs, chatid: str | None = None) -> Any:
    await bot.wait_for(lambda: len(bot.connections) == 1, "subscribe")
    if chatid is None:
        await bot.push_text("send me the files", userid=USER)
    else:
        await bot.push_text("@bot send me the files", userid=USER, chatid=chatid)
    return await next_message(host)


async def test_reply_files_are_uploaded_and_sent_to_the_chat(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot) as host:
        msg = await ask(host, bot)
        files = [Attachment("chart.png", "image/png", PNG), Attachment("季度报告.pdf", "application/pdf", PDF)]
        out = await host.respond(msg, "two files", attachments=files)
        assert out.ok, out.error
        await bot.wait_for(lambda: len(sent_media(bot)) == 2, "both media messages", timeout=20)
        reply = next(c for c in bot.commands if c["cmd"] == "aibot_respond_msg")
        assert reply["body"]["stream"]["content"] == "two files"
        image, doc = sorted(sent_media(bot), key=lambda b: str(b["msgtype"]) != "image")
        assert (image["chatid"], image["msgtype"], doc["chatid"], doc["msgtype"]) == (USER, "image", USER, "file")
        got_png, got_pdf = bot.uploads.media[image["image"]["media_id"]], bot.uploads.media[doc["file"]["media_id"]]
        assert hashlib.sha256(got_png.data).digest() == hashlib.sha256(PNG).digest() and got_png.total_chunks == 2
        assert (got_pdf.filename, got_pdf.data) == ("季度报告.pdf", PDF)
        chunk_indexes = [c["body"]["chunk_index"] for c in bot.commands if c["cmd"] == "aibot_upload_media_chunk"]
        assert sorted(chunk_indexes) == [0, 0, 1]
        state = host.manager.slots["wecom"].channel.workspace
        await bot.wait_for(lambda: state.get("uploads/index") == "[]", "the uploads' state cleared")


async def test_group_reply_files_go_to_the_group_and_a_refusal_is_told(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot) as host:
        msg = await ask(host, bot, chatid="wrkGroupChat01")
        assert (await host.respond(msg, "", attachments=[Attachment("a.txt", "text/plain", b"hello")])).ok
        await bot.wait_for(lambda: len(sent_media(bot)) == 1, "the file message")
        assert sent_media(bot)[0]["chatid"] == "wrkGroupChat01"
        assert not any(c["cmd"] == "aibot_respond_msg" for c in bot.commands)  # no text, no text reply
        bot.upload_refusal = BAD_REQUEST
        assert (await host.respond(msg, "again", attachments=[Attachment("b.txt", "text/plain", b"hi")])).ok
        await bot.wait_for(lambda: any(c["body"].get("msgtype") == "markdown" for c in bot.commands), "the note")
        note = next(c["body"] for c in bot.commands if c["body"].get("msgtype") == "markdown")
        assert note == {"chatid": "wrkGroupChat01", "msgtype": "markdown",
                        "markdown": {"content": f"[b.txt not sent: WeCom refused it (errcode {BAD_REQUEST})]"}}
