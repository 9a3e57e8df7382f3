"""Reply attachments through the agent API (real host, real HTTP, real SQLite and blob files; no channel): upload,
reply by reference, the limits (``messages.reply_files``), and that a refused reply loses nothing."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from apihelp import (
    Tokens,
    api,
    auth,
    host_fixture,  # noqa: F401 (fixture)
    inject,
    poll,
    session_fixture,  # noqa: F401 (fixture)
    tokens_fixture,  # noqa: F401 (fixture)
)

from airlock.agent_client import AgentApiError, AgentClient
from airlock.host import COMPACT_EVERY_S, AirlockHost
from airlock.messages.model import AttachmentRef
from airlock.messages.reply_files import MAX_REPLY_ATTACHMENT_BYTES, MAX_REPLY_ATTACHMENTS


async def upload(s: aiohttp.ClientSession, host: AirlockHost, token: str, data: bytes) -> aiohttp.ClientResponse:
    return await s.post(f"{api(host)}/v1/attachments", data=data,
                        headers=auth(token, **{"Content-Type": "application/octet-stream"}))


async def test_upload_then_reply_keeps_references_not_bytes(host: AirlockHost, tokens: Tokens,
                                                           s: aiohttp.ClientSession) -> None:
    data = os.urandom(4096)
    r = await upload(s, host, tokens["alpha"], data)
    assert r.status == 201, await r.text()
    up = await r.json()
    assert up == {"sha256": hashlib.sha256(data).hexdigest(), "size": 4096, "url": f"/v1/attachments/{up['sha256']}"}
    assert (host.blobs.path(up["sha256"]).stat().st_mode & 0o777) == 0o600
    got = await s.get(api(host) + up["url"], headers=auth(tokens["alpha"]))
    assert (got.status, await got.read()) == (200, data)
    mid = inject(host, "alpha", "send me the report")
    [m] = await poll(s, host, tokens["alpha"])
    body = {"text": "here it is", "lease_token": m["lease_token"],
            "attachments": [{"sha256": up["sha256"], "filename": "report.bin"}]}
    r = await s.post(f"{api(host)}/v1/messages/{mid}/reply", json=body, headers=auth(tokens["alpha"]))
    assert r.status == 202, await r.text()
    [entry] = host.log.list_outbox()
    assert entry.payload["attachments"] == [{"sha256": up["sha256"], "filename": "report.bin",
                                             "mime_type": "application/octet-stream", "size": 4096}]
    assert host.log.get(mid).state == "acked"  # type: ignore[union-attr]


async def test_an_inbound_attachment_can_be_sent_back(host: AirlockHost, tokens: Tokens,
                                                      s: aiohttp.ClientSession) -> None:
    digest = host.blobs.put(b"GIF89a...")
    ref = AttachmentRef(id="a1", mime_type="image/gif", filename="cat.gif", size=9, sha256=digest)
    mid = inject(host, "alpha", "echo my file", attachments=(ref,))
    [m] = await poll(s, host, tokens["alpha"])
    body = {"text": "your cat", "lease_token": m["lease_token"],
            "attachments": [{"sha256": digest, "filename": "cat.gif", "mime_type": "image/gif"}]}
    r = await s.post(f"{api(host)}/v1/messages/{mid}/reply", json=body, headers=auth(tokens["alpha"]))
    assert r.status == 202, await r.text()


async def test_upload_limits(host: AirlockHost, tokens: Tokens, s: aiohttp.ClientSession) -> None:
    r = await upload(s, host, tokens["alpha"], b"x" * MAX_REPLY_ATTACHMENT_BYTES)
    assert r.status == 201, await r.text()
    r = await upload(s, host, tokens["alpha"], b"y" * (MAX_REPLY_ATTACHMENT_BYTES + 1))
    assert r.status == 413 and str(MAX_REPLY_ATTACHMENT_BYTES) in (await r.json())["error"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the stream itself is cut at the limit
        for _ in range(MAX_REPLY_ATTACHMENT_BYTES // 65536 + 2):
            yield b"z" * 65536

    r = await s.post(f"{api(host)}/v1/attachments", data=chunked(), headers=auth(tokens["alpha"]))
    assert r.status == 413
    assert not host.blobs.path(hashlib.sha256(b"y" * (MAX_REPLY_ATTACHMENT_BYTES + 1)).hexdigest()).exists()
    r = await upload(s, host, tokens["alpha"], b"")
    assert r.status == 422 and "at least one byte" in (await r.json())["error"]
    r = await s.post(f"{api(host)}/v1/attachments", data=b"x")  # no token
    assert r.status == 401


async def refused(s: aiohttp.ClientSession, host: AirlockHost, token: str, mid: str, lease: str,
                  attachments: list[dict[str, object]], status: int = 422, **extra: object) -> str:
    body = {"text": "files", "lease_token": lease, "attachments": attachments, **extra}
    r = await s.post(f"{api(host)}/v1/messages/{mid}/reply", json=body, headers=auth(token))
    assert r.status == status, await r.text()
    error: str = (await r.json())["error"]
    return error


async def test_reply_limits_refuse_with_4xx_and_lose_nothing(host: AirlockHost, tokens: Tokens,
                                                             s: aiohttp.ClientSession) -> None:
    half = MAX_REPLY_ATTACHMENT_BYTES // 2 + 1
    a = await (await upload(s, host, tokens["alpha"], b"a" * half)).json()
    b = await (await upload(s, host, tokens["alpha"], b"b" * half)).json()
    small = await (await upload(s, host, tokens["alpha"], b"tiny")).json()
    theirs = await (await upload(s, host, tokens["beta"], b"beta's own")).json()
    mid = inject(host, "alpha", "hello")
    [m] = await poll(s, host, tokens["alpha"])
    lease, token = m["lease_token"], tokens["alpha"]

    def f(up: dict[str, str], name: str = "f.txt", **kw: str) -> dict[str, object]:
        return {"sha256": up["sha256"], "filename": name, **kw}

    error = await refused(s, host, token, mid, lease, [f(a), f(b)])
    assert f"at most {MAX_REPLY_ATTACHMENT_BYTES}" in error
    error = await refused(s, host, token, mid, lease, [f(small)] * (MAX_REPLY_ATTACHMENTS + 1))
    assert error.startswith("attachments:") and str(MAX_REPLY_ATTACHMENTS) in error
    error = await refused(s, host, token, mid, lease, [f(theirs)], status=404)  # another agent's upload: not here
    assert error.startswith("attachments.0:") and "upload it first" in error
    error = await refused(s, host, token, mid, lease, [{"sha256": "0" * 64, "filename": "x"}], status=404)
    assert "upload it first" in error
    for name in ("", "../etc/passwd", "a\nb", "x" * 256):
        assert (await refused(s, host, token, mid, lease, [f(small, name)])).startswith("attachments.0.filename")
    for mime in ("text", "text/plain; charset=utf-8", "a/b\r\nX: y"):
        assert (await refused(s, host, token, mid, lease, [f(small, mime_type=mime)])).startswith(
            "attachments.0.mime_type")
    assert "streamed reply" in await refused(s, host, token, mid, lease, [f(small)], stream=True)
    # nothing was queued and the message is still leased to alpha: the agent fixes the request and replies
    assert host.log.list_outbox() == []
    assert host.log.get(mid).state == "leased"  # type: ignore[union-attr]
    ok = [f(small, "tiny.txt", mime_type="text/plain")] * MAX_REPLY_ATTACHMENTS
    r = await s.post(f"{api(host)}/v1/messages/{mid}/reply", json={"text": "ten", "lease_token": lease,
                                                                   "attachments": ok}, headers=auth(token))
    assert r.status == 202, await r.text()
    assert len(host.log.list_outbox()[0].payload["attachments"]) == MAX_REPLY_ATTACHMENTS


async def test_blobs_are_collected_with_the_logs_retention(host: AirlockHost, tokens: Tokens,
                                                           s: aiohttp.ClientSession) -> None:
    """Blob GC (``AirlockHost.compact``): a blob lives while an inbound entry or an outbox entry references it (both
    are kept for ``retention_s`` once done); an unreferenced one goes once older than ``COMPACT_EVERY_S``; uploading
    an old blob again makes it young (else it could vanish between the upload and the reply that names it)."""
    inbound = host.blobs.put(b"inbound file")
    ref = AttachmentRef(id="a1", mime_type="text/plain", filename="in.txt", size=12, sha256=inbound)
    mid = inject(host, "alpha", "with a file", attachments=(ref,))
    [m] = await poll(s, host, tokens["alpha"])
    outbound = (await (await upload(s, host, tokens["alpha"], b"outbound file")).json())["sha256"]
    body = {"text": "reply", "lease_token": m["lease_token"],
            "attachments": [{"sha256": outbound, "filename": "out.txt"}]}
    assert (await s.post(f"{api(host)}/v1/messages/{mid}/reply", json=body, headers=auth(tokens["alpha"]))).status \
        == 202
    orphan = host.blobs.put(b"never referenced")
    reused = host.blobs.put(b"uploaded again")
    hour_ago = time.time() - COMPACT_EVERY_S - 60
    for digest in (inbound, outbound, orphan, reused):
        os.utime(host.blobs.path(digest), (hour_ago, hour_ago))
    assert (await upload(s, host, tokens["alpha"], b"uploaded again")).status == 201  # refreshes the old file
    host.compact(now=time.time())
    assert host.blobs.get(orphan) is None
    assert host.blobs.get(reused) == b"uploaded again"
    assert host.blobs.get(inbound) == b"inbound file" and host.blobs.get(outbound) == b"outbound file"
    # the reply is still pending (no channel here): its file stays even past the retention; the acked message goes
    host.compact(now=time.time() + host.config.retention_s + 2 * COMPACT_EVERY_S)
    assert host.blobs.get(inbound) is None and host.log.get(mid) is None
    assert host.blobs.get(outbound) == b"outbound file"


async def test_typed_client_uploads_downloads_and_replies_with_files(host: AirlockHost, tokens: Tokens) -> None:
    digest = host.blobs.put(b"from the user")
    ref = AttachmentRef(id="a1", mime_type="text/plain", filename="in.txt", size=13, sha256=digest)
    mid = inject(host, "alpha", "a file for you", attachments=(ref,))
    async with AgentClient(api(host), tokens["alpha"]) as agent:
        [m] = await agent.messages(wait=1)
        assert await agent.download(m.attachments[0]["url"]) == b"from the user"
        sha = await agent.upload(b"from the agent")
        assert sha == hashlib.sha256(b"from the agent").hexdigest()
        files = [{"sha256": sha, "filename": "out.txt", "mime_type": "text/plain"}]
        accepted = await agent.reply(mid, "here", lease_token=m.lease_token, attachments=files)
        assert host.log.get_outbox(accepted.outbox_id).payload["attachments"][0]["sha256"] == sha  # type: ignore[union-attr]
        with pytest.raises(AgentApiError) as err:
            await agent.upload(b"")
        assert err.value.status == 422
        with pytest.raises(AgentApiError) as err:
            await agent.download(f"/v1/attachments/{'0' * 64}")
        assert err.value.status == 404
