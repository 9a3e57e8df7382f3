"""Reading an upstream response body with a hard size limit that holds for compressed bodies too.

The host asks for ``Accept-Encoding: gzip, deflate`` (``ACCEPT_ENCODING``) and decodes the body itself, as
it streams in, instead of leaving it to aiohttp (whose bound on one decompression step depends on its
version; the project allows aiohttp >= 3.9). Each network chunk is inflated with ``max_length`` set to
what is left of the limit plus one byte, so a 1 KB "zip bomb" that would inflate to gigabytes costs at most
``max_bytes + 1`` bytes of output before it is refused. The compressed bytes are bounded as well
(``max_bytes`` plus ``compressed_slack``: deflate never grows data by more than a few bytes per 64 KiB),
so a stream of empty deflate blocks cannot keep a request busy until its timeout.

Any other ``Content-Encoding`` (``br``, ``zstd``, ``compress``, stacked encodings) was not asked for and is
refused; ``identity`` or none passes the bytes through under the same limit.
"""

from __future__ import annotations

import zlib

from .http_policy import HttpRefused

__all__ = ["ACCEPT_ENCODING", "BodyDecoder", "compressed_slack"]

#: What the host asks upstreams for; ``BodyDecoder`` decodes exactly these.
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = frozenset({"gzip", "x-gzip"})


def compressed_slack(max_bytes: int) -> int:
    """Compressed bytes allowed beyond ``max_bytes``: 1/1000 of it plus 1 KiB (deflate's worst-case growth
    on incompressible data is 5 bytes per 64 KiB block plus an 18-byte gzip frame)."""
    return max_bytes // 1000 + 1024


def too_large(max_bytes: int) -> HttpRefused:
    return HttpRefused(f"response body exceeds max_response_bytes ({max_bytes} bytes)")


class BodyDecoder:
    """Collects one response body. ``content_encoding``: the response header's value (``None`` if absent);
    ``max_bytes``: limit on the decoded body. ``feed`` raw chunks in order, then ``finish``.

    Raises ``HttpRefused`` (guest-safe) for an encoding the host did not ask for, a decoded or compressed
    size past the limit, or data that does not decode.
    """

    def __init__(self, content_encoding: str | None, max_bytes: int) -> None:
        encoding = (content_encoding or "").strip().lower()
        if encoding not in ("", "identity", "deflate", *_GZIP):
            # The value is not repeated: it is upstream text, and an upstream can reflect anything into it.
            raise HttpRefused("response uses a content-encoding the host did not ask for (it accepts gzip and deflate)")
        self.encoding = encoding if encoding not in ("", "identity") else None
        self._max = max_bytes
        self._raw_max = max_bytes + compressed_slack(max_bytes)
        self._raw = 0
        self._total = 0
        self._parts: list[bytes] = []
        self._z: zlib._Decompress | None = None
        self._ended = False

    def feed(self, chunk: bytes) -> None:
        """Add the next raw chunk; raises ``HttpRefused`` as soon as a limit is passed."""
        if not chunk:
            return
        if self.encoding is None:
            self._keep(chunk)
            return
        self._raw += len(chunk)
        if self._raw > self._raw_max:
            raise too_large(self._max)
        if self._z is None:
            self._z = self._decompressor(chunk[0])
        self._inflate(chunk)

    def finish(self) -> bytes:
        """The decoded body. Raises ``HttpRefused`` if a compressed body stopped before its end."""
        if self._z is not None and not (self._ended or self._z.eof):
            raise HttpRefused(f"response body is truncated or not valid {self.encoding} data")
        body = b"".join(self._parts)
        self._parts = []
        return body

    def _decompressor(self, first: int) -> zlib._Decompress:
        if self.encoding in _GZIP:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" should be zlib-wrapped (RFC 9110 8.4.1.2) but servers also send raw deflate: a zlib
        # stream starts with a header whose low nibble is 8 (the method), as aiohttp also checks.
        return zlib.decompressobj(zlib.MAX_WBITS if first & 0x0F == 8 else -zlib.MAX_WBITS)

    def _inflate(self, data: bytes) -> None:
        while data and not self._ended:
            assert self._z is not None
            room = self._max - self._total
            try:
                out = self._z.decompress(data, room + 1)  # +1: one byte past the limit proves it is passed
            except zlib.error:
                raise HttpRefused(f"response body is not valid {self.encoding} data") from None
            if len(out) > room or self._z.unconsumed_tail:
                raise too_large(self._max)
            self._keep(out)
            if not self._z.eof:
                return
            data = self._z.unused_data
            if self.encoding in _GZIP and data:  # concatenated gzip members decode as one body
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                self._ended = True  # bytes after the end of the stream are ignored

    def _keep(self, data: bytes) -> None:
        self._total += len(data)
        if self._total > self._max:
            raise too_large(self._max)
        if data:
            self._parts.append(data)
