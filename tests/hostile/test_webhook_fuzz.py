"""Webhook fuzzing with hypothesis against the running gateway: raw bytes over TCP to 127.0.0.1 (so malformed HTTP
is possible) at the paths of real installed channels (Telegram in Python, Slack in Rust, and the hostile guest
echoing what it received), some correctly authenticated, many not.

Every answer must be a status below 500, the documented guest-failure 500 (``{"error": "internal error"}``) or
the documented busy 503 (``{"error": "busy"}`` with Retry-After); an incomplete request (a body shorter than it
said, the connection half-closed) may also be closed without an answer. A complete, authenticated request to the
echoing guest must reach it whole (its answer is the body it saw); one over ``MAX_BODY_BYTES`` must get 413. The
host may log nothing with a traceback and no host bug. The gateway must still answer at the end.

Bounded: ``MAX_EXAMPLES`` batches of up to ``BATCH`` concurrent requests (a few thousand in all), and no new
batch after ``BUDGET_S`` seconds. Shrinking is off (a failure names the request in full instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import hostile_guest
import pytest
from conftest import BUILT_CHANNELS, InstallFn
from fake_slack import FakeSlack
from hostile_env import hostile_caps
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from airlock.config import HostConfig
from airlock.fakes.telegram import FakeTelegram
from airlock.host import AirlockHost
from airlock.inbound.server import MAX_BODY_BYTES
from airlock.stores import SecretStore

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 150
BATCH = 30
BUDGET_S = 60.0
ANSWER_TIMEOUT_S = 15.0
"""Longest wait for an answer; a complete request not answered in this time is a failure (a hung gateway)."""
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FUZZ_SECRET_HEADER = "X-Fuzz-Secret"
PATHS = {"telegram": b"/webhook/telegram", "slack": b"/webhook/slack", "fuzz": b"/webhook/fuzz"}
INCOMPLETE = frozenset({"long", "chunked-trunc"})
"""Framings that leave the request unfinished; the client half-closes the connection after them."""
SEMANTIC = (b"content-length", b"transfer-encoding", b"content-encoding", b"expect", b"host", b"connection",
            b"x-fuzz-secret", b"x-slack-signature", b"x-slack-request-timestamp", b"x-telegram-bot-api-secret-token")
"""Header names whose fuzzed copies change how a request is framed or checked (no echo check then)."""

STANDARD_METHODS = frozenset({b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"})
_PLAIN_TARGET = re.compile(rb"/[\x21-\x7e]{0,7998}")
_TOKEN = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 field values: no controls but tab

T = TypeVar("T")


@dataclass(frozen=True)
class Fuzzed:
    """One request as it goes on the wire (auth headers are added at send time: Slack's must be fresh)."""

    channel: str | None
    method: bytes
    target: bytes
    version: bytes
    extra: tuple[tuple[bytes, bytes], ...]
    body: bytes
    framing: str
    auth: bool
    split: bool

    @property
    def complete(self) -> bool:
        """Well-formed HTTP/1.x that a server must answer: a standard method, a plain target, valid header lines
        (none of them a fuzzed copy of a header that changes how the request is framed or checked), and a body
        framed as it says."""
        return (self.framing in ("length", "chunked") and self.method in STANDARD_METHODS
                and (self.version, self.framing) in ((b"HTTP/1.1", "length"), (b"HTTP/1.1", "chunked"),
                                                     (b"HTTP/1.0", "length"))
                and _PLAIN_TARGET.fullmatch(self.target) is not None
                and all(_TOKEN.fullmatch(n) and n.lower() not in SEMANTIC and not _BAD_VALUE.search(v)
                        and len(v) < 8000 for n, v in self.extra)
                and len({n.lower() for n, _ in self.extra}) == len(self.extra))  # aiohttp refuses some repeats

    def show(self) -> str:
        body = self.body if len(self.body) < 200 else self.body[:200] + f"... ({len(self.body)} bytes)".encode()
        return (f"{self.method!r} {self.target[:200]!r} {self.version!r} framing={self.framing} auth={self.auth} "
                f"split={self.split} extra={[(n, v[:80]) for n, v in self.extra]} body={body!r}")


def _chunked(body: bytes, how: str) -> bytes:
    cut = max(1, len(body) // 2)
    parts = [p for p in (body[:cut], body[cut:]) if p]
    if how == "chunked-bad":
        return b"".join(b"%X;x\r\n%s\r\nzz\r\n" % (len(p) + 3, p) for p in parts) + b"0\r\n\r\n"
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out if how == "chunked-trunc" else out + b"0\r\n\r\n"


def wire(req: Fuzzed, auth: dict[str, str]) -> tuple[bytes, bytes]:
    """(head, payload): the request line and headers, then the framed body."""
    headers: list[tuple[bytes, bytes]] = [(b"Host", b"127.0.0.1"), (b"Connection", b"close")]
    payload = req.body
    if req.framing in ("length", "short", "long", "both"):
        declared = {"length": len(req.body), "short": len(req.body) // 2, "long": len(req.body) + 100,
                    "both": len(req.body)}[req.framing]
        headers.append((b"Content-Length", str(declared).encode()))
    if req.framing.startswith("chunked") or req.framing == "both":
        headers.append((b"Transfer-Encoding", b"chunked"))
        payload = _chunked(req.body, req.framing if req.framing != "both" else "chunked")
    headers += [(k.encode(), v.encode()) for k, v in auth.items()] + list(req.extra)
    head = b"%s %s %s\r\n" % (req.method, req.target, req.version)
    head += b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers) + b"\r\n"
    return head, payload


# ---- strategies ------------------------------------------------------------------------------------------

_header_names = st.one_of(
    st.sampled_from([b"Content-Type", b"Accept", b"Cookie", b"X-Forwarded-For", b"User-Agent", b"X-Request-Id"]),
    st.from_regex(rb"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}\Z"),
)
_semantic_names = st.sampled_from([b"X-Telegram-Bot-Api-Secret-Token", b"X-Slack-Signature",
                                   b"X-Slack-Request-Timestamp", FUZZ_SECRET_HEADER.encode(), b"Content-Encoding",
                                   b"Expect", b"Content-Length", b"Transfer-Encoding", b"Host", b"Connection"])
_header_values = st.one_of(
    st.from_regex(rb"\A[\x20-\x7e]{0,60}\Z"),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40).map(str.encode),
    st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"caf\xe9", b"gzip", b"100-continue", b"chunked",
                     b"application/json", b"-1", b"99999999999999999999"]),
)
_odd_values = st.one_of(
    st.binary(max_size=64),
    st.integers(1, 20).map(lambda k: b"a" * (k * 5000)),  # long lines, up to 100 KB
)
_odd_headers = st.one_of(
    st.tuples(_semantic_names, st.one_of(_header_values, _odd_values)),
    st.tuples(st.one_of(_header_names, st.binary(min_size=1, max_size=24)), _odd_values),
)
"""Header lines that are not HTTP at all (control bytes, CR/LF inside, binary names) or too long."""
_targets = st.one_of(
    st.sampled_from(list(PATHS.values())),
    st.sampled_from(list(PATHS.values())),
    st.sampled_from([b"/webhook/nobody", b"/webhook/", b"/webhook/../health", b"//webhook/fuzz", b"/health",
                     b"/health/slack", b"/webhook/fuzz?x=1&x=2&%ff=%00", b"*", b"http://127.0.0.1/webhook/fuzz",
                     b"/webhook/fuzz#frag", b"/webhook/%2e%2e/health", b"/webhook/fuzz\x00", b"/webhook/fuzz/"]),
    st.binary(max_size=64).map(lambda b: b"/webhook/" + b),
    st.integers(1, 30).map(lambda k: b"/webhook/fuzz?q=" + b"a" * (k * 4000)),
)
_methods = st.one_of(
    st.sampled_from([b"POST"] * 12 + [b"GET", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]),
    st.sampled_from([b"TRACE", b"CONNECT", b"PRI", b"post", b"P OST", b""]),
    st.binary(min_size=1, max_size=12),
)


@st.composite
def _body(draw: st.DrawFn, channel: str | None) -> bytes:
    kind = draw(st.integers(0, 19))
    if kind == 0:  # large: near and past the body limit
        size = draw(st.sampled_from([300_000, 1_000_000, MAX_BODY_BYTES - 1, MAX_BODY_BYTES + 1, 3 * 1024 * 1024]))
        body = (b"e" + bytes(range(256)) * (size // 256 + 1))[:size]
    elif kind < 8 and channel == "telegram":
        text = draw(st.text(max_size=200))
        update = {"update_id": draw(st.integers(-2**40, 2**40)), "message": {
            "message_id": draw(st.integers(0, 2**31)), "date": 0, "text": text,
            "chat": {"id": draw(st.integers(-2**40, 2**40)), "type": draw(st.sampled_from(["private", "group", "x"]))},
            "from": {"id": draw(st.integers(0, 2**40)), "is_bot": False, "first_name": text[:10]}}}
        body = json.dumps(update).encode()
    elif kind < 8 and channel == "slack":
        event = {"type": draw(st.sampled_from(["message", "app_mention", "url_verification", "x"])),
                 "text": draw(st.text(max_size=100)), "user": "U0ALICE", "channel": "D0ALICE", "ts": "1.2"}
        body = json.dumps({"type": "event_callback", "event": event, "event_id": draw(st.text(max_size=8)),
                           "challenge": "c"}).encode()
    else:
        body = draw(st.binary(max_size=1024))
    # Mostly the echo op: another first byte is another order to the hostile guest (a loop, a memory bomb...).
    return b"e" + body if channel == "fuzz" and draw(st.integers(0, 9)) else body


@st.composite
def fuzzed(draw: st.DrawFn) -> Fuzzed:
    target = draw(_targets)
    channel = next((name for name, path in PATHS.items() if target == path), None)
    weird = draw(st.integers(0, 4)) == 0  # one request in five is odd HTTP, or not HTTP, in some way
    return Fuzzed(
        channel=channel,
        method=draw(_methods if weird else st.sampled_from([b"POST"] * 12 + [b"GET", b"PUT", b"HEAD"])),
        target=target,
        version=draw(st.sampled_from([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/0.9"]) if weird
                     else st.sampled_from([b"HTTP/1.1"] * 9 + [b"HTTP/1.0"])),
        extra=tuple(draw(st.lists(st.tuples(_header_names, _header_values), max_size=5))
                    + draw(st.lists(_odd_headers, min_size=1, max_size=3) if weird else st.just([]))),
        body=draw(_body(channel)),
        framing=draw(st.sampled_from(["none", "short", "long", "chunked-bad", "chunked-trunc", "both"]) if weird
                     else st.sampled_from(["length"] * 2 + ["chunked"])),
        auth=draw(st.integers(0, 3)) > 0,
        split=draw(st.booleans()),
    )


# ---- the gateway on its own thread -----------------------------------------------------------------------


@dataclass
class Gateway:
    """The host and the fake platforms on an event loop in a background thread (hypothesis drives the test
    synchronously); ``call`` runs a coroutine there and waits for it."""

    home: Path
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    host: AirlockHost | None = None
    port: int = 0
    telegram_secret: str = ""
    fuzz_secret: str = ""
    methods: dict[str, frozenset[bytes]] = field(default_factory=dict)
    sent: int = 0
    _closers: list[Any] = field(default_factory=list)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def start(self) -> None:
        telegram, slack = FakeTelegram(), FakeSlack()
        await telegram.__aenter__()
        await slack.__aenter__()
        self._closers += [slack, telegram]
        store = SecretStore.open(self.home)
        store.set("telegram_bot_token", telegram.token)
        store.set("slack_bot_token", slack.token)
        store.set("slack_signing_secret", SLACK_SECRET)
        store.set("fuzz_webhook_secret", "fuzz-" + "s3cret" * 4)
        config = HostConfig.build(home=self.home, listen_port=0, upstream_overrides={
            "api.telegram.org": telegram.base_url, "slack.com": slack.base_url})
        self.host = AirlockHost(config, secrets=store)
        await self.host.start()
        for name, path in PATHS.items():
            slot = self.host.manager.slots[name]
            assert slot.active, (name, slot.reason)
            self.methods[name] = frozenset(m.encode() for m in slot.endpoints[path.decode()].methods)
        self.port = self.host.port or 0
        self.telegram_secret = store.get("telegram_webhook_secret") or ""
        self.fuzz_secret = store.get("fuzz_webhook_secret") or ""
        self._closers.append(asyncio.create_task(self._drain()))

    async def _drain(self) -> None:
        assert self.host is not None
        while True:
            await self.host.next_message()

    async def stop(self) -> None:
        assert self.host is not None
        self._closers[-1].cancel()
        await self.host.stop()
        for fake in self._closers[:-1]:
            await fake.__aexit__(None, None, None)

    def auth_for(self, req: Fuzzed) -> dict[str, str]:
        if not req.auth or req.channel is None:
            return {}
        if req.channel == "telegram":
            return {"X-Telegram-Bot-Api-Secret-Token": self.telegram_secret}
        if req.channel == "fuzz":
            return {FUZZ_SECRET_HEADER: self.fuzz_secret}
        # Slack's construction (v0:timestamp:body, HMAC-SHA256), over bytes: slack_sdk's helper wants UTF-8 text.
        stamp = str(int(time.time()))
        mac = hmac.new(SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + req.body, hashlib.sha256)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + mac.hexdigest()}


@pytest.fixture
def gateway(airlock_home: Path, install_channel: InstallFn, wat_dir: Path) -> Any:
    install_channel(BUILT_CHANNELS / "telegram.wasm", BUILT_CHANNELS / "telegram.capabilities.json",
                    webhook_enabled=True, polling_enabled=False, dm_policy="open", bot_username="fuzz_bot")
    install_channel(BUILT_CHANNELS / "slack.wasm", BUILT_CHANNELS / "slack.capabilities.json", dm_policy="open")
    caps = hostile_caps("fuzz", callback_timeout_secs=1)
    caps["capabilities"]["channel"]["webhook"] = {"scheme": "header", "secret_header": FUZZ_SECRET_HEADER,
                                                  "secret_name": "fuzz_webhook_secret"}
    caps["capabilities"]["secrets"]["allowed_names"] = ["fuzz_*"]
    install_channel(hostile_guest.build_component(wat_dir, "fuzz"), caps)
    gw = Gateway(airlock_home)
    thread = threading.Thread(target=gw.loop.run_forever, name="fuzz-gateway", daemon=True)
    thread.start()
    gw.call(gw.start())
    yield gw
    gw.call(gw.stop())
    gw.call(_cancel_the_rest())  # handlers of connections the fuzz left behind
    gw.loop.call_soon_threadsafe(gw.loop.stop)
    thread.join(10)
    gw.loop.close()


async def _cancel_the_rest() -> None:
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


# ---- sending and judging ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes


async def send(gw: Gateway, req: Fuzzed) -> Reply:
    """Send ``req`` and read the answer while sending (a gateway may answer 413 or 400 and close before it has
    read everything); a reset after an answer keeps the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    received = bytearray()

    async def read_all() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.extend(chunk)

    reading = asyncio.create_task(read_all())
    try:
        head, payload = wire(req, gw.auth_for(req))
        with contextlib.suppress(OSError):  # the gateway closed first: its answer (if any) is read below
            if req.split:  # headers and the first 60 bytes, a pause, then the rest (two TCP writes)
                writer.write(head + payload[:60])
                await writer.drain()
                await asyncio.sleep(0.04)
                writer.write(payload[60:])
            else:
                writer.write(head + payload)
            await writer.drain()
            if req.framing in INCOMPLETE:
                writer.write_eof()
        await asyncio.wait_for(reading, ANSWER_TIMEOUT_S)
    finally:
        reading.cancel()
        writer.close()
    return parse(bytes(received))


def parse(raw: bytes) -> Reply:
    if not raw:
        return Reply(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {k.decode().strip().lower(): v.decode().strip()
               for k, _, v in (line.partition(b":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Reply(status, headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def judge(req: Fuzzed, reply: Reply, methods: dict[str, frozenset[bytes]]) -> str | None:
    """What is wrong with ``reply`` to ``req``, or None. ``methods``: each channel's registered methods."""
    if reply.status is None:  # a server may close on a malformed request; it must answer a well-formed one
        return "closed without an answer" if req.complete else None
    if reply.status >= 500:
        documented = {500: {"error": "internal error"}, 503: {"error": "busy"}}.get(reply.status)
        try:
            parsed = json.loads(reply.body)
        except ValueError:
            parsed = None
        if parsed != documented or (reply.status == 503 and "retry-after" not in reply.headers):
            return f"undocumented {reply.status}: {reply.body[:200]!r}"
    routed = req.complete and req.channel is not None and req.method in methods[req.channel]
    if not routed:
        return None
    if len(req.body) > MAX_BODY_BYTES:
        return None if reply.status == 413 else f"{len(req.body)}-byte body answered {reply.status}, not 413"
    if req.auth and req.channel == "telegram" and reply.status in (401, 403):
        return f"a correctly authenticated request refused with {reply.status}"
    if req.auth and req.channel == "fuzz" and req.body[:1] == b"e" and req.method != b"HEAD":
        if reply.status != 200:
            return f"complete authenticated request answered {reply.status}"
        if reply.body != req.body[1:]:
            return f"the guest saw {len(reply.body)} of {len(req.body) - 1} bytes"
    return None


def log_problems(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.name} {r.levelname}: {r.getMessage()[:300]}" for r in records
            if r.exc_info or "Traceback" in r.getMessage() or "host bug" in r.getMessage()]


async def _batch(gw: Gateway, batch: list[Fuzzed]) -> list[Reply | BaseException]:
    return await asyncio.gather(*(send(gw, r) for r in batch), return_exceptions=True)


def test_webhook_fuzz(gateway: Gateway, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    stats: dict[int | None, int] = {}
    base = Fuzzed("fuzz", b"POST", PATHS["fuzz"], b"HTTP/1.1", (), b"e" + b"x" * 100, "length", True, False)
    big = b"e" + bytes(range(256)) * 4096

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=(Phase.explicit, Phase.generate),
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.lists(fuzzed(), min_size=BATCH // 2, max_size=BATCH))
    # Reproductions, always run: issue 13's findings (a non-UTF-8 secret header, a body in two writes, bodies
    # around the limit in one write and chunked, a long header line) and this suite's (a non-UTF-8 Expect header:
    # aiohttp's default expect handler fails building its 417).
    @example([replace(base, extra=((FUZZ_SECRET_HEADER.encode(), b"\xff\xfe"),), auth=False),
              replace(base, channel="telegram", target=PATHS["telegram"],
                      extra=((b"X-Telegram-Bot-Api-Secret-Token", b"\xff\xfe"),), auth=False),
              replace(base, split=True), replace(base, body=big[:300_000]), replace(base, body=big[:1_000_000]),
              replace(base, body=big[:1_000_000], framing="chunked"),
              replace(base, body=(big * 3)[:3 * 1024 * 1024], framing="chunked"),
              replace(base, body=b"x" * 100, extra=((b"X-Long", b"a" * 100_000),)),
              replace(base, extra=((b"Expect", b"caf\xe9"),))])
    def run(batch: list[Fuzzed]) -> None:
        if time.monotonic() - started > BUDGET_S:
            return
        first = len(caplog.records)
        replies = gateway.call(_batch(gateway, batch))
        gateway.sent += len(batch)
        problems = []
        for req, reply in zip(batch, replies, strict=True):
            if isinstance(reply, BaseException):
                problems.append(f"{type(reply).__name__}: {reply} <- {req.show()}")
                continue
            stats[reply.status] = stats.get(reply.status, 0) + 1
            wrong = judge(req, reply, gateway.methods)
            if wrong:
                problems.append(f"{wrong} <- {req.show()}")
        problems += log_problems(caplog.records[first:])
        assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])

    run()
    alive = gateway.call(send(gateway, base))
    assert (alive.status, alive.body) == (200, base.body[1:]), alive
    with capsys.disabled():
        sys.stdout.write(f"\n[fuzz] {gateway.sent} requests in {time.monotonic() - started:.1f} s; statuses "
                         f"{dict(sorted(stats.items(), key=lambda kv: str(kv[0])))}\n")
    assert not log_problems(caplog.records)
