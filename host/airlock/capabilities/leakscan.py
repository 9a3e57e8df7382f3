"""Finding a secret in an upstream response however the upstream encoded it.

An allow-listed upstream that reflects the request (an echo endpoint, an error message quoting the URL, a
redirect) can hand back a credential the host injected, in whatever encoding it chose: ``%2f`` or ``%2F``,
``+`` for space, JSON with ``\\/`` and ``\\u00XX``, HTML entities, base64 or base64url, a query string
decoded halfway (``qs=t=SECRET/6c%2B5b%3D4a``), or several of these nested. Redaction that enumerates
encodings of the secret misses the next one (issue 13, defect 2). ``LeakScanner`` works the other way
round: it decodes the response into every form a reader could decode it into, and looks for the plain
secret in each.

The forms (views): the bytes as they are, then, recursively up to ``MAX_DEPTH`` decodings deep, each of
these applied wherever it changes something:

- percent-decoding (``%XX``, hex digits in any case), once keeping ``+`` and once reading ``+`` as space;
- JSON string unescaping (``\\"`` ``\\\\`` ``\\/`` ``\\b`` ``\\f`` ``\\n`` ``\\r`` ``\\t`` and ``\\uXXXX``
  including surrogate pairs) wherever the escapes occur, not only inside valid JSON;
- HTML character references (``&amp;`` ``&#47;`` ``&#x2F;`` ``&sol;``: what ``html.unescape`` knows, with or
  without the ``;``);
- base64 and base64url: every run of base64-alphabet characters long enough to hold the shortest secret,
  decoded from each of its first four positions (the encoded data may start anywhere in the run); the
  printable text in what they decode to is decoded further.

Views reached twice (percent then JSON, JSON then percent) are searched once. Binary data is not decoded
byte by byte: only its printable ASCII runs are (every encoding above writes printable ASCII), after the
raw bytes were searched whole. Data that is at least 1/8 NUL bytes is also read as UTF-16 (both byte
orders), and the printable runs of that text searched the same way. Secrets are compared as UTF-8 bytes,
case-sensitively.

Cost: a few passes over the body per distinct view (at most 15 for text that uses every encoding),
each in C except one Python call per ``\\uXXXX`` escape, HTML reference and percent escape.
"""

from __future__ import annotations

import binascii
import functools
import html
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_DEPTH", "LeakScanner", "text_segments"]

#: Decodings stacked on one another at most (e.g. base64 of percent-encoding of a JSON string: 3).
MAX_DEPTH = 3

_UNICODE_ESCAPE = re.compile(rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")
_JSON_SIMPLE = ((b'\\"', b'"'), (b"\\/", b"/"), (b"\\b", b"\b"), (b"\\f", b"\f"), (b"\\n", b"\n"),
                (b"\\r", b"\r"), (b"\\t", b"\t"))
# Stands for an escaped backslash while the other escapes are replaced (bytes.replace works left to right
# like a JSON decoder, so "\\\\n" stays a backslash followed by "n").
_BACKSLASH_MARK = b"\x00\xfe\x00"
_HTML_REF = re.compile(rb"&(?:#[0-9]{1,8};?|#[xX][0-9a-fA-F]{1,8};?|[A-Za-z][A-Za-z0-9]{1,31};?)")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_URLSAFE = bytes.maketrans(b"-_", b"+/")
# In the standard alphabet "-" and "_" are not data: binascii would skip them and shift every quantum
# after them, so they are read as "A" (garbage bits where they stand, alignment kept).
_STANDARD = bytes.maketrans(b"-_", b"AA")
_B64_SEPARATOR = b"////"  # decodes to b"\xff\xff\xff": never part of a printable secret


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _unicode_escape(m: re.Match[bytes]) -> bytes:
    high, low, single = m.groups()
    if high is not None:
        return _utf8(chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)))
    return _utf8(chr(int(single, 16)))


def _json_unescape(data: bytes) -> bytes | None:
    if b"\\" not in data:
        return None
    out = data.replace(b"\\\\", _BACKSLASH_MARK)
    for escape, char in _JSON_SIMPLE:
        out = out.replace(escape, char)
    if b"\\u" in out:
        out = _UNICODE_ESCAPE.sub(_unicode_escape, out)
    out = out.replace(_BACKSLASH_MARK, b"\\")
    return out if out != data else None


def _html_unescape(data: bytes) -> bytes | None:
    if b"&" not in data:
        return None
    out = _HTML_REF.sub(lambda m: _utf8(html.unescape(m.group(0).decode("ascii"))), data)
    return out if out != data else None


def _percent(data: bytes) -> bytes | None:
    if b"%" not in data:
        return None
    out = unquote_to_bytes(data)
    return out if out != data else None


def _percent_plus(data: bytes) -> bytes | None:
    if b"+" not in data:
        return None
    return unquote_to_bytes(data.replace(b"+", b" "))


_DECODERS = (_percent, _percent_plus, _json_unescape, _html_unescape)


@functools.lru_cache(maxsize=64)
def _run_re(min_len: int) -> re.Pattern[bytes]:
    return re.compile(rb"[A-Za-z0-9+/_-]{%d,}" % min_len)


@functools.lru_cache(maxsize=64)
def _segment_re(min_len: int) -> re.Pattern[bytes]:
    return re.compile(rb"[\t\n\r\x20-\x7e]{%d,}" % min_len)


def _quanta(run: bytes) -> bytes:
    """``run`` cut or filled to whole 4-character quanta: a lone last character is dropped, a partial
    quantum is completed with ``A`` (zero bits), so the bytes before it decode unchanged."""
    extra = len(run) % 4
    if extra == 1:
        return run[:-1]
    return run + b"A" * ((4 - extra) % 4)


def base64_decodings(runs: list[bytes]) -> list[bytes]:
    """For each alphabet in use and each start offset 0-3, all ``runs`` decoded in one C call (each run
    padded to whole quanta and followed by ``_B64_SEPARATOR``, so runs never merge into one secret)."""
    out = []
    alphabets = [runs]
    if any(b"-" in r or b"_" in r for r in runs):
        alphabets = [[r.translate(_STANDARD) for r in runs], [r.translate(_URLSAFE) for r in runs]]
    for texts in alphabets:
        for start in range(4):
            joined = _B64_SEPARATOR.join(_quanta(r[start:]) for r in texts if len(r) - start >= 2)
            out.append(binascii.a2b_base64(joined, strict_mode=False))
    return out


def text_segments(data: bytes, min_len: int) -> list[bytes]:
    """The parts of ``data`` worth decoding: all of it when it is text (control characters other than tab
    and line breaks are at most 1 % of it), else its runs of at least ``min_len`` printable ASCII
    characters: every encoding this module decodes writes printable ASCII."""
    controls = len(data) - len(data.translate(None, _CONTROL))
    if controls * 100 <= len(data):
        return [data]
    return _segment_re(max(1, min_len)).findall(data)


def _utf16_readings(data: bytes) -> Iterator[bytes]:
    """``data`` read as UTF-16LE and UTF-16BE (from its first and its second byte), as UTF-8, one at a
    time, when at least an eighth of it is NUL bytes (UTF-16 text of ASCII characters is half NULs; most
    binary formats have far fewer); else none."""
    if data.count(b"\x00") * 8 < len(data):
        return
    for codec in ("utf-16-le", "utf-16-be"):
        for start in (0, 1):
            yield data[start:].decode(codec, "ignore").encode("utf-8", "surrogatepass")


class _Scan:
    """One search: the needles, the views already searched (by length and hash) and the base64 runs
    already decoded, so that what two orders of decoding reach alike is searched once."""

    def __init__(self, needles: tuple[bytes, ...], shortest: int) -> None:
        self.needles = needles
        self.shortest = shortest
        # base64 of L bytes takes at least 4*L/3 characters; shorter runs cannot hold a whole secret.
        self.min_run = max(4, -(-4 * shortest // 3))
        self.seen: set[tuple[int, int]] = set()
        self.runs: set[bytes] = set()

    def found(self, data: bytes) -> bool:
        return any(needle in data for needle in self.needles)

    def deep(self, data: bytes, depth: int) -> bool:
        """Search ``data`` and its decodings up to ``depth`` levels."""
        key = (len(data), hash(data))
        if key in self.seen:
            return False
        self.seen.add(key)
        if self.found(data):
            return True
        if depth <= 0:
            return False
        for decode in _DECODERS:
            out = decode(data)
            if out is not None and self.deep(out, depth - 1):
                return True
        fresh = [r for r in dict.fromkeys(_run_re(self.min_run).findall(data)) if r not in self.runs]
        self.runs.update(fresh)
        for decoded in base64_decodings(fresh) if fresh else ():
            if self.found(decoded):
                return True
            if depth > 1 and any(self.deep(t, depth - 1) for t in _segment_re(self.shortest).findall(decoded)):
                return True
        return False


class LeakScanner:
    """Searches data for any of ``secrets`` (non-empty strings) in every view (module docstring).
    Thread-safe: each search keeps its own state."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._needles = tuple(sorted({_utf8(s) for s in secrets if s}, key=len))
        self._shortest = len(self._needles[0]) if self._needles else 0

    def __bool__(self) -> bool:
        return bool(self._needles)

    def leaks(self, data: bytes) -> bool:
        """True if ``data`` or one of its decodings (``MAX_DEPTH`` deep) contains a secret."""
        if not self._needles:
            return False
        scan = _Scan(self._needles, self._shortest)
        if scan.found(data):
            return True
        if any(scan.deep(part, MAX_DEPTH) for part in text_segments(data, self._shortest)):
            return True
        # Only the printable runs of the UTF-16 readings: random bytes read as UTF-16 are not text.
        runs = _segment_re(max(1, self._shortest))
        return any(scan.deep(part, MAX_DEPTH) for text in _utf16_readings(data) for part in runs.findall(text))

    def leaks_text(self, text: str) -> bool:
        """``leaks`` for a header name or value (a ``str`` as aiohttp decoded it)."""
        return self.leaks(text.encode("utf-8", "surrogateescape"))
