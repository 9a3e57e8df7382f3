"""Reply attachments end to end: the real channel components in the real host, the fake platforms on 127.0.0.1
receiving the uploads, checked byte for byte. Telegram (sendPhoto / sendDocument multipart) through the HTTP agent
API (upload, then reply by reference) and through the in-process ``host.respond(..., attachments=...)``; Slack
(files upload v2) and Discord (multipart ``files[n]``) through ``host.respond``."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import channel_e2e
import pytest
from conftest import BUILT_CHANNELS, InstallFn
from fake_slack import FakeSlack, message_event, signed_headers

from airlock.host import COMPACT_EVERY_S, AirlockHost
from airlock.host_config import HostConfig
from airlock.messages.reply_files import MAX_REPLY_ATTACHMENT_BYTES, ReplyFileError
from airlock.runtime.values import Attachment
from airlock.stores import SecretStore
from airlock_demo.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

USER = 5151
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
SLACK_SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
PDF = b"%PDF-1.4\n" + os.urandom(5000) + b"\r\n--airlock-telegram-boundary-lookalike--\r\n"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(bot_username="airlock_test_bot") as f:
        yield f


@asynccontextmanager
async def telegram_host(home: Path, fake: FakeTelegram, install: InstallFn, agent: str) -> AsyncIterator[AirlockHost]:
    install(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
            bot_username="airlock_test_bot", polling_enabled=True, dm_policy="open")
    store = SecretStore.open(home)
    store.set("telegram_bot_token", fake.token)
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides={"api.telegram.org": fake.base_url},
                              default_agent=agent, min_poll_interval_override_ms=100)
    async with AirlockHost(config, secrets=store) as host:
        yield host


def api(host: AirlockHost) -> str:
    return f"http://127.0.0.1:{host.agent_api_port}"


async def test_agent_api_reply_with_files_reaches_telegram(fake: FakeTelegram, airlock_home: Path,
                                                           install_channel: InstallFn) -> None:
    async with telegram_host(airlock_home, fake, install_channel, "filer") as host, aiohttp.ClientSession() as s:
        token = host.agents.add("filer", None)[0]
        h = {"Authorization": f"Bearer {token}"}
        fake.push_message("send me the files", chat_id=USER, user_id=USER, username="alice")
        r = await s.get(f"{api(host)}/v1/messages", params={"wait": "15"}, headers=h)
        [m] = (await r.json())["messages"]
        refs = []
        for data in (PNG, PDF):
            r = await s.post(f"{api(host)}/v1/attachments", data=data, headers=h)
            assert r.status == 201, await r.text()
            refs.append((await r.json())["sha256"])
        body: dict[str, Any] = {"text": "two files", "lease_token": m["lease_token"], "attachments": [
            {"sha256": refs[0], "filename": "chart.png", "mime_type": "image/png"},
            {"sha256": refs[1], "filename": "report.pdf", "mime_type": "application/pdf"}]}
        r = await s.post(f"{api(host)}/v1/messages/{m['id']}/reply", json=body, headers=h)
        assert r.status == 202, await r.text()
        outbox_id = (await r.json())["outbox_id"]
        photo, doc = await fake.wait_for_files(2, timeout=20)
        [text] = await fake.wait_for_sent(1)
        assert text["chat_id"] == USER and text["text"] == "two files"
        assert (photo["method"], photo["chat_id"], photo["filename"], photo["content_type"]) == (
            "sendPhoto", USER, "chart.png", "image/png")
        assert photo["data"] == PNG
        assert (doc["method"], doc["filename"], doc["content_type"]) == ("sendDocument", "report.pdf",
                                                                         "application/pdf")
        assert doc["data"] == PDF
        for _ in range(50):  # the outbox records the send after the callback returns
            state = (await (await s.get(f"{api(host)}/v1/outbox/{outbox_id}", headers=h)).json())["state"]
            if state == "sent":
                break
            await asyncio.sleep(0.1)
        assert state == "sent"
        # the sent reply references the files for the log's retention: garbage collection keeps them until then
        host.compact(now=time.time() + 2 * COMPACT_EVERY_S)
        assert host.blobs.get(refs[0]) == PNG and host.blobs.get(refs[1]) == PDF
        host.compact(now=time.time() + host.config.retention_s + 2 * COMPACT_EVERY_S)
        assert host.blobs.get(refs[0]) is None and host.blobs.get(refs[1]) is None


async def test_in_process_respond_with_files_reaches_telegram(fake: FakeTelegram, airlock_home: Path,
                                                              install_channel: InstallFn) -> None:
    async with telegram_host(airlock_home, fake, install_channel, "main") as host:
        fake.push_message("a file please", chat_id=USER, user_id=USER, username="alice")
        msg = await asyncio.wait_for(host.next_message(), 15)
        too_big = Attachment("big.bin", "application/octet-stream", b"\0" * (MAX_REPLY_ATTACHMENT_BYTES + 1))
        with pytest.raises(ReplyFileError, match=str(MAX_REPLY_ATTACHMENT_BYTES)):
            await host.respond(msg, "too big", attachments=[too_big])
        with pytest.raises(ReplyFileError, match="streamed reply"):
            await host.reply(msg, "streamed", stream=True, attachments=[Attachment("a.txt", "text/plain", b"a")])
        assert host.log.list_outbox() == []  # refused before anything was queued
        out = await host.reply(msg, "here", attachments=[Attachment("notes.txt", "text/plain", PDF)])
        assert out.ok, out.error
        [doc] = await fake.wait_for_files(1, timeout=20)
        assert (doc["method"], doc["filename"], doc["content_type"], doc["data"]) == (
            "sendDocument", "notes.txt", "text/plain", PDF)


async def test_slack_reply_with_files_uses_files_upload_v2(airlock_home: Path, install_channel: InstallFn) -> None:
    async with FakeSlack() as slack:
        install_channel(BUILT_CHANNELS / "slack.wasm", BUILT_CHANNELS / "slack.capabilities.json", dm_policy="open",
                        resolve_user_names=False)
        secrets = {"slack_bot_token": slack.token, "slack_signing_secret": SLACK_SIGNING}
        upstream = {"slack.com": slack.base_url, "files.slack.com": slack.base_url}
        async with channel_e2e.running_host(airlock_home, "slack", secrets, upstream) as host:
            raw = json.dumps(message_event("files please", user="U0ALICE", channel="D0ALICE",
                                           ts="1712000100.000200", thread_ts="1712000090.000100")).encode()
            async with aiohttp.ClientSession() as s:
                r = await s.post(f"{host.base_url}/webhook/slack", data=raw, headers=signed_headers(SLACK_SIGNING, raw))
                assert r.status == 200
            msg = await channel_e2e.next_message(host)
            files = [Attachment("chart.png", "image/png", PNG), Attachment("report.pdf", "application/pdf", PDF)]
            out = await host.respond(msg, "two files", attachments=files)
            assert out.ok, out.error
            [text] = await slack.wait_for_posted(1)
            assert text["text"] == "two files" and text["thread_ts"] == "1712000090.000100"
            shared = await slack.wait_for_records(slack.shared, 2, 10, "shared files")
        assert [(f["filename"], f["title"], f["channel_id"], f["thread_ts"], f["data"]) for f in shared] == [
            ("chart.png", "chart.png", "D0ALICE", "1712000090.000100", PNG),
            ("report.pdf", "report.pdf", "D0ALICE", "1712000090.000100", PDF)]
        assert shared[0]["content_type"] == "image/png"
        assert not slack.uploads  # every announced upload was completed
