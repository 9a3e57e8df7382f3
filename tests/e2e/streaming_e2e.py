"""Shared driver of the streamed-reply end-to-end tests (world 0.2.0 ``edits``): one agent stream through the real
host, its outbox and the real channel component, against a fake platform that records its sends and edits with
``time.monotonic()`` stamps."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from airlock.agents.delivery import Delivery
from airlock.host import AirlockHost
from airlock.messages.streaming import EDIT_INTERVAL_S

PARTS = 12
PART_GAP_S = 0.15
"""The agent's partial texts: 12 of them, 0.15 s apart (1.8 s of streaming, far faster than one edit per second)."""
TIMING_SLACK_S = 0.05
"""Allowed jitter under the 1-second spacing of edits (the fakes stamp arrivals, not the host's due times)."""


@dataclass(frozen=True)
class Sent:
    """One platform call the fake recorded: ``kind`` "send" or "edit", its monotonic time and the text."""

    kind: str
    at: float
    text: str


def texts(final: str) -> list[str]:
    """The partial texts of a stream that ends with ``final`` (each a prefix of the next, like a model's output)."""
    return [final[: max(1, len(final) * (i + 1) // (PARTS + 1))] for i in range(PARTS)]


async def stream_reply(host: AirlockHost, msg: Delivery, final: str) -> float:
    """Stream ``final`` as :data:`PARTS` growing texts, then finish with it; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    parts = texts(final)
    stream = await host.reply(msg, parts[0], stream=True)
    for text in parts[1:]:
        await asyncio.sleep(PART_GAP_S)
        await stream.update(text)
    outcome = await stream.finish(final)
    assert outcome.ok, outcome.error
    return loop.time() - started


async def wait_for_text(current: Callable[[], str | None], final: str, timeout: float = 10.0) -> None:
    """Until the platform shows ``final`` (the last edit is paced, so it may land after ``finish`` returned)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while current() != final:
        assert asyncio.get_running_loop().time() < deadline, f"the platform shows {current()!r}, not the final text"
        await asyncio.sleep(0.05)


def check_stream(calls: list[Sent], final: str, elapsed_s: float) -> None:
    """One send, then edits at most one per :data:`EDIT_INTERVAL_S`, the final text last, nothing else."""
    assert calls and calls[0].kind == "send", calls
    assert calls[0].text == texts(final)[0]
    edits = calls[1:]
    assert edits and all(c.kind == "edit" for c in edits), calls
    assert edits[-1].text == final, "the final text is the last one the platform got"
    partials = texts(final)
    assert all(c.text in partials or c.text == final for c in edits), "edits carry the agent's texts, unchanged"
    assert [partials.index(c.text) if c.text in partials else PARTS for c in edits] == sorted(
        partials.index(c.text) if c.text in partials else PARTS for c in edits), "texts never go backwards"
    for a, b in itertools.pairwise(edits):
        assert b.at - a.at >= EDIT_INTERVAL_S - TIMING_SLACK_S, f"two edits {b.at - a.at:.3f} s apart"
    # at most one edit per second over the whole stream (plus the final one)
    assert len(edits) <= math.ceil(elapsed_s / EDIT_INTERVAL_S) + 1, (len(edits), elapsed_s)
    assert len(edits) < PARTS, "partial texts were coalesced"
