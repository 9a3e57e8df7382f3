"""The webhook listener against hostile or clumsy clients, over raw sockets to the real aiohttp server and a real
(WAT) component that emits the body it received (so the test sees exactly the bytes the guest got).

Issue 13: bodies cut short (split writes, chunked, large one-shot bodies), non-UTF-8 header bytes, aiohttp
tracebacks for malformed HTTP, header/body deadlines and connection caps, and "accepted, then dropped" at the emit
rate limit."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import watguest
from conftest import InstallFn, minimal_caps
from webhook_signing import slack_headers

from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.inbound.body import MAX_BODY_BYTES
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

BIG = 4 * 1024 * 1024  # max_message_size for these channels, so the guest can emit the whole body back
SLACK_SECRET = "slack-signing-secret-for-pieces"


@asynccontextmanager
async def serving(home: Path, secrets: dict[str, str] | None = None, **config: Any) -> AsyncIterator[AirlockHost]:
    store = SecretStore.open(home)
    for name, value in (secrets or {}).items():
        store.set(name, value)
    async with AirlockHost(HostConfig.build(home=home, listen_port=0, **config), secrets=store) as host:
        yield host


@pytest.fixture
def echo_home(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> Path:
    install_channel(watguest.build_component(wat_dir), minimal_caps(max_message_size=BIG))
    return airlock_home


async def raw(host: AirlockHost, *parts: bytes, pause_s: float = 0.0, read: bool = True) -> bytes:
    """Send ``parts`` as separate TCP writes (``pause_s`` apart); return everything the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    try:
        for i, part in enumerate(parts):
            if i and pause_s:
                await asyncio.sleep(pause_s)
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=20) if read else b""
    finally:
        writer.close()


def head(path: str, length: int | None, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def chunked(body: bytes, size: int = 64 * 1024) -> list[bytes]:
    parts = [f"{len(body[i:i + size]):x}\r\n".encode() + body[i:i + size] + b"\r\n" for i in range(0, len(body), size)]
    return [*parts, b"0\r\n\r\n"]


async def emitted(host: AirlockHost) -> str:
    return (await asyncio.wait_for(host.next_message(), timeout=10)).content


async def test_body_in_two_writes_reaches_the_guest_whole(echo_home: Path) -> None:
    body = b"a" * 1000
    async with serving(echo_home) as host:
        answer = await raw(host, head("/webhook/minimal", len(body)) + body[:60], body[60:], pause_s=0.04)
        assert status_of(answer) == 200
        assert await emitted(host) == body.decode()


@pytest.mark.parametrize("size", [300 * 1024, 1024 * 1024, MAX_BODY_BYTES])
async def test_large_one_shot_bodies_arrive_whole(echo_home: Path, size: int) -> None:
    body = b"b" * size
    async with serving(echo_home) as host:
        answer = await raw(host, head("/webhook/minimal", size) + body)
        assert status_of(answer) == 200
        assert len(await emitted(host)) == size


async def test_chunked_bodies_below_and_above_the_limit(echo_home: Path) -> None:
    below = b"c" * (MAX_BODY_BYTES - 10)
    async with serving(echo_home) as host:
        assert status_of(await raw(host, head("/webhook/minimal", None), *chunked(below))) == 200
        assert len(await emitted(host)) == len(below)
        for size in (3 * 1024 * 1024, 10 * 1024 * 1024):
            answer = await raw(host, head("/webhook/minimal", None), *chunked(b"d" * size))
            assert status_of(answer) == 413
        assert host.bus.qsize() == 0  # the guest never ran on a fragment


async def test_slow_sender_gets_408_and_the_guest_never_runs(echo_home: Path) -> None:
    async with serving(echo_home, webhook_body_timeout_s=0.5) as host:
        started = time.monotonic()
        answer = await raw(host, head("/webhook/minimal", 1000) + b"x" * 10)
        assert status_of(answer) == 408
        assert time.monotonic() - started < 10
        assert host.bus.qsize() == 0


async def test_slack_signed_body_delivered_in_pieces_is_verified_whole(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    wasm = watguest.build_component(wat_dir, "slk")
    install_channel(wasm, minimal_caps("slk", webhook={"hmac_secret_name": "slack_signing_secret"},
                                       max_message_size=BIG))
    body = json.dumps({"type": "event_callback", "text": "x" * 5000}).encode()
    async with serving(airlock_home, {"slack_signing_secret": SLACK_SECRET}) as host:
        headers = slack_headers(SLACK_SECRET, body, int(time.time()))
        pieces = [head("/webhook/slk", len(body), headers) + body[:100], body[100:2000], body[2000:]]
        answer = await raw(host, *pieces, pause_s=0.04)
        assert status_of(answer) == 200
        assert await emitted(host) == body.decode()


@pytest.mark.parametrize("value", [b"\xff\xfe", b"ok\x80\x81", b"\xc3\x28"])
async def test_non_utf8_secret_header_is_refused_not_500(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, value: bytes
) -> None:
    wasm = watguest.build_component(wat_dir, "hdr")
    install_channel(wasm, minimal_caps("hdr", webhook={"secret_header": "X-Airlock-Webhook-Secret",
                                                       "secret_name": "hdr_secret"}))
    async with serving(airlock_home, {"hdr_secret": "s3cret"}) as host:
        req = head("/webhook/hdr", 2).replace(b"\r\n\r\n", b"\r\nX-Airlock-Webhook-Secret: " + value + b"\r\n\r\n")
        assert status_of(await raw(host, req + b"hi")) in (400, 401, 403)


@pytest.mark.parametrize("value", [b"\xff\xfe", b"\xc3\x28"])
async def test_non_utf8_slack_headers_are_refused_not_500(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path, value: bytes
) -> None:
    install_channel(watguest.build_component(wat_dir, "slk"),
                    minimal_caps("slk", webhook={"hmac_secret_name": "slack_signing_secret"}))
    async with serving(airlock_home, {"slack_signing_secret": SLACK_SECRET}) as host:
        for name in (b"X-Slack-Signature", b"X-Slack-Request-Timestamp"):
            other = b"X-Slack-Request-Timestamp: 1" if name == b"X-Slack-Signature" else b"X-Slack-Signature: v0=00"
            req = head("/webhook/slk", 2).replace(b"\r\n\r\n", b"\r\n" + name + b": " + value + b"\r\n" + other
                                                  + b"\r\n\r\n")
            assert status_of(await raw(host, req + b"hi")) in (400, 401, 403)


@pytest.mark.parametrize("request_bytes", [
    b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /webhook/minimal HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /webhook/minimal HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain-HTTP port
])
async def test_malformed_http_is_one_line_without_traceback(
    echo_home: Path, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(echo_home) as host:
        answer = await raw(host, request_bytes)
        assert not answer or 400 <= status_of(answer) < 500
        await asyncio.sleep(0.05)
    for record in caplog.records:
        assert record.exc_info is None and record.exc_text is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()


async def test_slow_header_connections_are_closed_while_webhooks_are_answered(echo_home: Path) -> None:
    async with serving(echo_home, webhook_header_timeout_s=0.5) as host:
        slow = [await asyncio.open_connection("127.0.0.1", host.port) for _ in range(20)]
        for _reader, writer in slow:
            writer.write(b"POST /webhook/minimal HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        answers = [status_of(await raw(host, head("/webhook/minimal", 2) + b"hi")) for _ in range(5)]
        assert answers == [200] * 5
        closed = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _w in slow)), timeout=10)
        assert all(data == b"" or status_of(data) >= 400 for data in closed)  # each was closed by the server
        for _r, w in slow:
            w.close()


async def test_connection_cap_per_address(echo_home: Path) -> None:
    async with serving(echo_home, webhook_max_connections_per_ip=4, webhook_header_timeout_s=1.0) as host:
        idle = [await asyncio.open_connection("127.0.0.1", host.port) for _ in range(4)]
        await asyncio.sleep(0.05)
        assert await raw(host, head("/webhook/minimal", 2) + b"hi") == b""  # aborted on accept
        assert host.site is not None and host.site.gate.refused >= 1
        await asyncio.wait_for(asyncio.gather(*(r.read() for r, _w in idle)), timeout=10)  # header deadline
        for _r, w in idle:
            w.close()
        await asyncio.sleep(0.05)
        assert status_of(await raw(host, head("/webhook/minimal", 2) + b"hi")) == 200


async def test_over_the_emit_rate_is_429_not_accepted_then_dropped(
    airlock_home: Path, install_channel: InstallFn, wat_dir: Path
) -> None:
    install_channel(watguest.build_component(wat_dir),
                    minimal_caps(emit_rate_limit={"messages_per_minute": 2, "messages_per_hour": 100}))
    async with serving(airlock_home) as host:
        answers = [await raw(host, head("/webhook/minimal", 2) + b"m" + str(i).encode()) for i in range(4)]
        assert [status_of(a) for a in answers] == [200, 200, 429, 429]
        retry = int(answers[2].split(b"Retry-After: ")[1].split(b"\r\n")[0])
        assert 1 <= retry <= 60
        assert [await emitted(host), await emitted(host)] == ["m0", "m1"]
        assert host.bus.qsize() == 0
        slot = host.manager.slots["minimal"]
        assert slot.channel.emit_limiter.refused == 2 and slot.channel.emit_limiter.dropped == 0
