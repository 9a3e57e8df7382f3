"""Raw HTTP/1.x requests for the webhook fuzz test (``test_webhook_fuzz``): what a request is (``Fuzzed``), how it
goes on the wire (``wire``), hypothesis strategies that make them (``fuzzed``), and how an answer is read
(``parse``) and judged (``judge``, ``log_problems``); see the test module for the rules."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from hypothesis import strategies as st

from airlock.inbound.body import MAX_BODY_BYTES

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



@dataclass(frozen=True)
class Reply:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes


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
