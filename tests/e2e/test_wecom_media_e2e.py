"""End to end: the AI bot's inbound images and files. The real WeCom component (Rust) in the real host, the fake long
connection (tests/fakes/fake_wecom_ws.py) pushing image, file and mixed message callbacks, and the fake media links
(tests/fakes/fake_wecom_cos.py: encrypted objects on a ``*.myqcloud.com`` host, routed to 127.0.0.1 by the host's
upstream override after its allow-list check). The guest downloads each item through the host, decrypts it with
the item's ``aeskey`` and stores it; the agent gets the exact bytes (compared by sha256), or a note in the text when
an item cannot be attached: the message is never lost."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from channel_e2e import assert_no_message, next_message, running_host
from conftest import BUILT_CHANNELS, InstallFn
from fake_wecom_cos import COS_HOST, FakeWecomCos
from fake_wecom_ws import FakeWecomWs

from airlock.agents.delivery import Delivery
from airlock.host import AirlockHost

pytestmark = pytest.mark.e2e

WASM = BUILT_CHANNELS / "wecom.wasm"
CAPS = BUILT_CHANNELS / "wecom.capabilities.json"
USER = "zhangsan"
DEFAULT_MAX_MEDIA_BYTES = 2 * 1024 * 1024
"""guest-plugins/wecom/src/media.rs ``DEFAULT_MAX_MEDIA_BYTES`` (the config's default ``max_media_bytes``)."""
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(70_000)
PDF = b"%PDF-1.7\n" + os.urandom(40_000)


@pytest.fixture
async def bot() -> AsyncIterator[FakeWecomWs]:
    async with FakeWecomWs() as fake:
        yield fake


@pytest.fixture
async def cos() -> AsyncIterator[FakeWecomCos]:
    async with FakeWecomCos() as fake:
        yield fake


def host_for(home: Path, bot: FakeWecomWs, cos: FakeWecomCos) -> AbstractAsyncContextManager[AirlockHost]:
    secrets = {"wecom_bot_id": bot.bot_id, "wecom_bot_secret": bot.secret}
    upstream = {"openws.work.weixin.qq.com": bot.base_url, COS_HOST: cos.base_url}
    return running_host(home, "wecom", secrets, upstream)


def files_of(host: AirlockHost, msg: Delivery) -> list[tuple[str, str | None, str, bytes]]:
    """(id, filename, mime type, bytes) of each attachment; the bytes from the host's blob store, checked against
    the ones handed over with the message."""
    out = []
    for a in msg.inbound.message.attachments:
        assert a.storage_key is not None, a
        data = host.blobs.get(a.storage_key)
        assert data is not None and hashlib.sha256(data).hexdigest() == a.storage_key
        assert msg.inbound.attachment_data[a.id] == data and a.size_bytes == len(data)
        out.append((a.id, a.filename, a.mime_type, data))
    return out


def over(limit: int) -> str:
    return f"larger than the channel's limit of {limit} bytes"


async def started(host: AirlockHost, bot: FakeWecomWs) -> AirlockHost:
    await bot.wait_for(lambda: len(bot.connections) == 1, "subscribe")
    return host


async def test_image_and_file_messages_reach_the_agent_with_the_decrypted_bytes(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, cos: FakeWecomCos) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot, cos) as host:
        await started(host, bot)
        image = cos.put(PNG)
        await bot.push_image(image.url, image.aeskey, userid=USER)
        msg = await next_message(host)
        assert (msg.user_id, msg.content, msg.metadata["mode"]) == (USER, "", "bot")
        [(att_id, name, mime, data)] = files_of(host, msg)
        assert hashlib.sha256(data).digest() == hashlib.sha256(PNG).digest()
        assert (att_id, name, mime) == ("image-1", "image-1.png", "image/png")
        report = cos.put(PDF, filename="季度报告 Q3.pdf")
        await bot.push_file(report.url, report.aeskey, userid=USER)
        [(att_id, name, mime, data)] = files_of(host, await next_message(host))
        assert (att_id, name, mime, data) == ("file-1", "季度报告 Q3.pdf", "application/pdf", PDF)
        assert cos.downloads == [image.name, report.name]


async def test_mixed_message_keeps_its_text_and_attaches_its_images(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, cos: FakeWecomCos) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot, cos) as host:
        await started(host, bot)
        jpeg = b"\xff\xd8\xff\xe0" + os.urandom(5000)
        first, second = cos.put(PNG), cos.put(jpeg)
        await bot.push_mixed([
            {"msgtype": "text", "text": {"content": "look at "}},
            {"msgtype": "image", "image": {"url": first.url, "aeskey": first.aeskey}},
            {"msgtype": "text", "text": {"content": "these two"}},
            {"msgtype": "image", "image": {"url": second.url, "aeskey": second.aeskey}},
        ], userid=USER)
        msg = await next_message(host)
        assert msg.content == "look at\nthese two"
        got = files_of(host, msg)
        assert [(i, m) for i, _, m, _ in got] == [("image-1", "image/png"), ("image-2", "image/jpeg")]
        sha = [hashlib.sha256(d).hexdigest() for *_, d in got]
        assert sha == [hashlib.sha256(PNG).hexdigest(), hashlib.sha256(jpeg).hexdigest()]


async def test_items_that_cannot_be_attached_become_notes_and_the_message_still_arrives(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, cos: FakeWecomCos) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot, cos) as host:
        await started(host, bot)
        too_big = cos.put(b"\0" * (DEFAULT_MAX_MEDIA_BYTES + 1), filename="big.bin")
        at_limit = cos.put(b"\1" * DEFAULT_MAX_MEDIA_BYTES, filename="limit.bin")
        corrupt = cos.put(PNG, corrupt=True)
        await bot.push_file(too_big.url, too_big.aeskey, userid=USER)
        msg = await next_message(host)
        assert msg.content == f"[file 1 not attached: {over(DEFAULT_MAX_MEDIA_BYTES)}]"
        assert msg.inbound.message.attachments == ()
        await bot.push_file(at_limit.url, at_limit.aeskey, userid=USER)
        [(_, name, _, data)] = files_of(host, await next_message(host))
        assert (name, len(data)) == ("limit.bin", DEFAULT_MAX_MEDIA_BYTES)
        ok = cos.put(PNG)
        await bot.push_mixed([
            {"msgtype": "text", "text": {"content": "three pictures"}},
            {"msgtype": "image", "image": {"url": corrupt.url, "aeskey": corrupt.aeskey}},
            {"msgtype": "image", "image": {"url": ok.url, "aeskey": ok.aeskey}},
            # An object the store does not have (a link of another bucket, say): 404.
            {"msgtype": "image", "image": {"url": f"https://{COS_HOST}/no-such-object", "aeskey": ok.aeskey}},
        ], userid=USER)
        msg = await next_message(host)
        assert msg.content.splitlines() == [
            "three pictures", "[image 1 not attached: it could not be decrypted]",
            "[image 3 not attached: the download answered HTTP 404]"]
        [(att_id, _, _, data)] = files_of(host, msg)
        assert (att_id, data) == ("image-2", PNG)
        cos.expire()  # WeCom's links last five minutes
        await bot.push_image(ok.url, ok.aeskey, userid=USER)
        assert (await next_message(host)).content == "[image 1 not attached: the download answered HTTP 403]"


async def test_a_link_off_the_allow_list_is_not_fetched(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, cos: FakeWecomCos) -> None:
    install_channel(WASM, CAPS, dm_policy="open")
    async with host_for(airlock_home, bot, cos) as host:
        await started(host, bot)
        obj = cos.put(PNG)
        # Same fake object, but on a host the capabilities file does not allow: the host refuses before any request.
        await bot.push_mixed([{"msgtype": "text", "text": {"content": "see"}},
                              {"msgtype": "image", "image": {"url": obj.url.replace(COS_HOST, "files.example.net"),
                                                             "aeskey": obj.aeskey}}], userid=USER)
        msg = await next_message(host)
        assert msg.content == "see\n[image 1 not attached: the download was refused or failed]"
        assert msg.inbound.message.attachments == () and cos.downloads == []


async def test_an_operator_limit_and_an_unpaired_sender(
        airlock_home: Path, install_channel: InstallFn, bot: FakeWecomWs, cos: FakeWecomCos) -> None:
    install_channel(WASM, CAPS, dm_policy="pairing", max_media_bytes=4096, allow_from=[USER])
    async with host_for(airlock_home, bot, cos) as host:
        await started(host, bot)
        small, large = cos.put(b"%PDF-" + b"x" * 4091, filename="s.pdf"), cos.put(PDF, filename="l.pdf")
        await bot.push_file(large.url, large.aeskey, userid=USER)
        assert (await next_message(host)).content == f"[file 1 not attached: {over(4096)}]"
        await bot.push_file(small.url, small.aeskey, userid=USER)
        assert [n for _, n, _, _ in files_of(host, await next_message(host))] == ["s.pdf"]
        # A sender who is not paired gets a code; nothing of theirs is downloaded.
        stranger = cos.put(PNG)
        await bot.push_image(stranger.url, stranger.aeskey, userid="stranger")
        await bot.wait_for(lambda: len(bot.commands) == 1, "the pairing code")
        await assert_no_message(host)
        assert cos.downloads == [large.name, small.name]
