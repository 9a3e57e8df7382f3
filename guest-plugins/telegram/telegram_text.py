"""Text measured as Telegram measures it, and long replies split into messages it accepts.

The Bot API counts message lengths and entity offsets in UTF-16 code units; ``split_message`` cuts a reply into
``sendMessage``-sized chunks on paragraph, line or word boundaries, keeping ``` code blocks closed and reopened.
Apart from ``telegram_logic`` (config, updates, admission) because it is about outgoing text, not incoming
messages; pure like it, so it is unit-tested on plain CPython.
"""

from __future__ import annotations

import re

__all__ = ["MAX_MESSAGE_UTF16", "split_message", "utf16_len", "utf16_slice"]

MAX_MESSAGE_UTF16 = 4096
"""The longest ``sendMessage`` text (Bot API: 1-4096 characters after entities parsing), in UTF-16 units."""

# Telegram measures offsets and lengths in UTF-16 code units. (No "utf-16" codec here on purpose: a
# componentize-py component only has the modules imported at build time, and that codec is imported
# lazily by str.encode.)

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def utf16_len(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (what Telegram counts)."""
    if text.isascii():
        return len(text)
    return len(text) + len(_ASTRAL.findall(text))


def _index_at_utf16(text: str, units: int) -> int:
    """The largest code-point index i such that utf16_len(text[:i]) <= units."""
    if units >= len(text) and utf16_len(text) <= units:
        return len(text)
    if _ASTRAL.search(text, 0, units) is None:  # no surrogate pairs in the first `units` code points
        return min(units, len(text))
    total = 0
    for i, ch in enumerate(text):
        total += 2 if ord(ch) > 0xFFFF else 1
        if total > units:
            return i
    return len(text)


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The piece of ``text`` an entity's ``offset`` and ``length`` (UTF-16 units) name."""
    start = _index_at_utf16(text, offset)
    end = _index_at_utf16(text, offset + length)
    return text[start:end]


def _prefix_fitting(text: str, units: int) -> int:
    """The largest index i such that utf16_len(text[:i]) <= units."""
    return _index_at_utf16(text, units)


# --------------------------------------------------------------------------- outbound splitting

_FENCE = re.compile(r"^\s{0,3}(`{3,})(.*)$")
_FENCE_RESERVE = 8  # "\n" + up to 7 backticks


def _fence_state(text: str, open_fence: str | None) -> str | None:
    """The fence opener (e.g. "```python") still open after ``text``, starting from ``open_fence``."""
    state = open_fence
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if not m:
            continue
        if state is None:
            state = m.group(1) + m.group(2).strip()
        elif not m.group(2).strip() and len(m.group(1)) >= len(state) - len(state.lstrip("`")):
            state = None
    return state


def _cut_point(text: str, limit_index: int) -> tuple[int, int]:
    """Where to cut ``text`` at or before ``limit_index``: (end of chunk, start of the rest)."""
    window = text[:limit_index]
    floor = limit_index // 4  # a boundary earlier than this wastes too much of the chunk
    for sep in ("\n\n", "\n", " "):
        pos = window.rfind(sep)
        if pos > floor:
            return pos, pos + len(sep)
    # no boundary: hard cut (never between the halves of a surrogate pair: we cut code points)
    return limit_index, limit_index


def split_message(text: str, limit: int = MAX_MESSAGE_UTF16) -> list[str]:
    """Split into chunks of at most ``limit`` UTF-16 units.

    Prefers paragraph, then line, then word boundaries. A ``` code block cut by a chunk boundary is
    closed at the end of the chunk and reopened (with its language) at the start of the next.
    """
    if utf16_len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    rest = text
    open_fence: str | None = None
    while rest:
        prefix = open_fence + "\n" if open_fence else ""
        if utf16_len(prefix + rest) <= limit:
            chunks.append(prefix + rest)
            break
        budget = limit - utf16_len(prefix) - _FENCE_RESERVE  # room to close a fence: "\n```"
        if budget < 16:  # a pathological fence line: give up on fence handling
            prefix, open_fence, budget = "", None, limit - _FENCE_RESERVE
        idx = _prefix_fitting(rest, budget)
        end, start = _cut_point(rest, idx)
        piece = rest[:end]
        rest = rest[start:]
        if not piece.strip() and not prefix:
            continue
        state = _fence_state(piece, open_fence)
        chunk = prefix + piece
        if state is not None:
            fence_ticks = state[: len(state) - len(state.lstrip("`"))]
            chunk = chunk.rstrip("\n") + "\n" + fence_ticks
        chunks.append(chunk)
        open_fence = state
        if open_fence is None:
            rest = rest.lstrip("\n")
    return chunks
