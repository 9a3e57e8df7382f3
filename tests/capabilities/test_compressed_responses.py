"""Compressed responses under ``max_response_bytes`` (``airlock.capabilities.body_decoder`` via ``Egress``).

A real aiohttp server on 127.0.0.1 sends gzip/deflate bodies, "zip bombs" (a few KB that inflate to 64 MiB),
encodings the host did not ask for, and streams of empty gzip members. The limit holds on the decoded bytes
while they stream in, and on the compressed bytes, and the host never inflates much past the limit.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from fake_base import serving
from test_http import call, make_cap

from airlock.capabilities.body_decoder import BodyDecoder, compressed_slack
from airlock.capabilities.egress import Egress
from airlock.capabilities.http import AllowRule, HttpRefused

LIMIT = 1024 * 1024
BOMB_DECODED = 64 * 1024 * 1024
ALLOW = (AllowRule("api.example.com", "/"),)


def _compress(wbits: int, decoded_size: int, piece: bytes = b"\0" * (1 << 20)) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    out = [comp.compress(piece) for _ in range(decoded_size // len(piece))]
    out.append(comp.flush())
    return b"".join(out)


BOMBS = {
    "gzip": _compress(16 + zlib.MAX_WBITS, BOMB_DECODED),
    "deflate": _compress(zlib.MAX_WBITS, BOMB_DECODED),  # zlib-wrapped, as RFC 9110 says
    "raw-deflate": _compress(-zlib.MAX_WBITS, BOMB_DECODED),  # what some servers send as "deflate"
}
OK_TEXT = json.dumps({"ok": True, "text": "hello " * 1000}).encode()


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def bomb(request: web.Request, name: str) -> web.StreamResponse:
        kind = name.removesuffix("-bomb")
        stream = kind.endswith("-stream")
        kind = kind.removesuffix("-stream")
        headers = {"Content-Encoding": "deflate" if kind == "raw-deflate" else kind}
        if not stream:
            return web.Response(body=BOMBS[kind], headers=headers)
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)  # chunked: no Content-Length
        body = BOMBS[kind]
        for i in range(0, len(body), 4096):
            await resp.write(body[i : i + 4096])
        await resp.write_eof()
        return resp

    async def route(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name.endswith("-bomb"):
            return await bomb(request, name)
        if name == "gzip-ok":
            return web.Response(body=gzip.compress(OK_TEXT), headers={"Content-Encoding": "gzip"})
        if name == "gzip-members":
            return web.Response(body=gzip.compress(b"first,") + gzip.compress(b"second"),
                                headers={"Content-Encoding": "gzip"})
        if name == "empty-members":  # 40 KB of gzip frames that decode to nothing
            return web.Response(body=gzip.compress(b"") * 2000, headers={"Content-Encoding": "gzip"})
        if name == "truncated":
            return web.Response(body=gzip.compress(OK_TEXT)[:-12], headers={"Content-Encoding": "gzip"})
        if name == "garbage":
            return web.Response(body=b"not gzip at all", headers={"Content-Encoding": "gzip"})
        if name in ("br", "zstd", "compress"):
            return web.Response(body=b"\x8b\x02\x80hello\x03", headers={"Content-Encoding": name})
        if name == "stacked":
            return web.Response(body=gzip.compress(gzip.compress(OK_TEXT)), headers={"Content-Encoding": "gzip, gzip"})
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", route)
    async with serving(app) as url:
        yield url


@pytest.fixture
def egress(server: str) -> Iterator[Egress]:
    eg = Egress(upstream_overrides={"api.example.com": server})
    yield eg
    eg.close()


@pytest.mark.parametrize("name", ["gzip-bomb", "deflate-bomb", "raw-deflate-bomb", "gzip-stream-bomb",
                                  "deflate-stream-bomb"])
async def test_bombs_are_refused_without_inflating_them(egress: Egress, name: str) -> None:
    cap = make_cap(egress, allow=ALLOW, max_response_bytes=LIMIT)
    tracemalloc.start()
    try:
        with pytest.raises(HttpRefused, match=rf"response body exceeds max_response_bytes \({LIMIT} bytes\)"):
            await call(cap, f"https://api.example.com/{name}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The host inflated at most the limit (+1 byte) and kept it in pieces: far below the 64 MiB bomb.
    assert peak < 4 * LIMIT, f"peak Python allocation {peak} bytes"


async def test_compressed_bodies_within_the_limit_are_decoded(egress: Egress) -> None:
    cap = make_cap(egress, allow=ALLOW, max_response_bytes=LIMIT)
    result = await call(cap, "https://api.example.com/gzip-ok")
    assert result.body == OK_TEXT
    headers = json.loads(result.headers_json)
    assert "content-encoding" not in headers and "content-length" not in headers
    both = await call(cap, "https://api.example.com/gzip-members")
    assert both.body == b"first,second"


async def test_the_limit_counts_decoded_bytes(egress: Egress) -> None:
    # OK_TEXT is ~7 KB decoded and ~100 bytes compressed: a 5,000-byte limit refuses it.
    cap = make_cap(egress, allow=ALLOW, max_response_bytes=5000)
    with pytest.raises(HttpRefused, match=r"exceeds max_response_bytes \(5000 bytes\)"):
        await call(cap, "https://api.example.com/gzip-ok")


async def test_compressed_bytes_are_bounded_too(egress: Egress) -> None:
    # 2,000 empty gzip members: 40 KB on the wire, nothing decoded. Past max + slack compressed bytes.
    cap = make_cap(egress, allow=ALLOW, max_response_bytes=10_000)
    assert 10_000 + compressed_slack(10_000) < len(gzip.compress(b"")) * 2000
    with pytest.raises(HttpRefused, match=r"exceeds max_response_bytes \(10000 bytes\)"):
        await call(cap, "https://api.example.com/empty-members")


@pytest.mark.parametrize("name", ["br", "zstd", "compress", "stacked"])
async def test_encodings_the_host_did_not_ask_for_are_refused(egress: Egress, name: str) -> None:
    cap = make_cap(egress, allow=ALLOW, max_response_bytes=LIMIT)
    refused = r"^response uses a content-encoding the host did not ask for \(it accepts gzip and deflate\)$"
    with pytest.raises(HttpRefused, match=refused):
        await call(cap, f"https://api.example.com/{name}")


@pytest.mark.parametrize(("name", "message"), [("truncated", "truncated"), ("garbage", "not valid gzip")])
async def test_broken_compressed_bodies_are_refused(egress: Egress, name: str, message: str) -> None:
    cap = make_cap(egress, allow=ALLOW, max_response_bytes=LIMIT)
    with pytest.raises(HttpRefused, match=message):
        await call(cap, f"https://api.example.com/{name}")


def test_decoder_inflates_one_chunk_at_most_to_the_limit() -> None:
    decoder = BodyDecoder("gzip", 1000)
    with pytest.raises(HttpRefused, match="exceeds"):
        decoder.feed(BOMBS["gzip"][:4096])  # one 4 KB chunk would inflate to ~4 MB
    assert sum(len(p) for p in decoder._parts) <= 1000
