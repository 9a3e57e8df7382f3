"""``LeakScanner`` on its own: the decodings it stacks, binary data, and what it must not flag."""

from __future__ import annotations

import base64
import json
import os
import random
import re
from urllib.parse import quote

import pytest

from airlock.capabilities.leakscan import MAX_DEPTH, LeakScanner, text_segments

SECRET = "tok/EN+sec=ret:9"


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _json(data: str) -> str:
    return json.dumps(data).replace("/", "\\/")


@pytest.mark.parametrize(
    "body",
    [
        SECRET,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(SECRET, safe="")),  # %2f, %2b
        "qs=t=" + quote(SECRET, safe="").replace("%2F", "/"),
        _json(SECRET),
        '"' + "".join(f"\\u{ord(c):04X}" for c in SECRET) + '"',
        "".join(f"&#{ord(c)};" for c in SECRET),
        "Basic " + _b64("user:" + SECRET),
        "x" + _b64(SECRET),  # the encoded data does not start where the base64-alphabet run does
        base64.urlsafe_b64encode(("??>" + SECRET).encode()).decode().rstrip("="),
        _b64(quote(_json(SECRET), safe="")),  # three decodings deep: base64, then percent, then JSON
        quote(_b64(_json(SECRET)), safe=""),
    ],
)
def test_found_in_every_supported_encoding(body: str) -> None:
    assert LeakScanner([SECRET]).leaks(("prefix " + body + " suffix").encode())


def test_depth_is_bounded_at_three() -> None:
    four_deep = quote(quote(quote(quote(SECRET, safe=""), safe=""), safe=""), safe="")
    three_deep = quote(quote(quote(SECRET, safe=""), safe=""), safe="")
    assert MAX_DEPTH == 3
    assert LeakScanner([SECRET]).leaks(three_deep.encode())
    assert not LeakScanner([SECRET]).leaks(four_deep.encode())


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-16"])
def test_utf16_text_is_read_as_text(codec: str) -> None:
    body = ("error: bad token " + quote(SECRET, safe="")).encode(codec)
    assert LeakScanner([SECRET]).leaks(b"\x01" + body)  # also when it starts at an odd offset
    assert not LeakScanner([SECRET]).leaks("error: bad token".encode(codec))


def test_non_bmp_secret_through_surrogate_pairs() -> None:
    secret = "key-\U0001f511-and-more"
    escaped = json.dumps(secret)  # ensure_ascii: the emoji becomes \ud83d\udd11
    assert "\\ud83d\\udd11" in escaped
    assert LeakScanner([secret]).leaks(escaped.encode())


def test_binary_bodies_are_searched_by_their_printable_runs() -> None:
    rng = random.Random(7)
    noise = bytes(rng.getrandbits(8) for _ in range(200_000))
    scanner = LeakScanner([SECRET])
    assert not scanner.leaks(noise)
    assert scanner.leaks(noise[:1000] + quote(SECRET, safe="").encode() + noise[1000:])
    assert scanner.leaks(noise[:1000] + SECRET.encode() + noise[1000:])  # raw: searched in the whole body
    assert len(text_segments(noise, len(SECRET))) < 50  # random bytes have few long printable runs
    assert text_segments(b"plain text\n" * 10, 8) == [b"plain text\n" * 10]


@pytest.mark.parametrize(
    "body",
    [
        "an ordinary JSON answer: " + json.dumps({"ok": True, "result": {"id": 1, "text": "tok/EN sec=ret"}}),
        quote("tok/EN+sec=ret:8", safe=""),  # one character off
        _b64(SECRET[:-1]),  # a prefix of the secret is not the secret
        base64.b64encode(os.urandom(4096)).decode(),
    ],
)
def test_what_is_not_the_secret_is_not_flagged(body: str) -> None:
    assert not LeakScanner([SECRET]).leaks(body.encode())


def test_no_secrets_means_no_scan() -> None:
    scanner = LeakScanner(["", ""])
    assert not scanner
    assert not scanner.leaks(SECRET.encode())
