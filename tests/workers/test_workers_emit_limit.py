"""``airlock serve --workers 2``, all real: a guest's emit rate limit holds for the deployment, not per worker
(``capabilities.emit_shared``). Before, each worker counted its own window and the guest got twice its limit.

Guest: the WAT test component (each webhook emits one message); the log is the real ``state.db``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from watguest import build_component
from workers_harness import start

from airlock.channels.install import stage
from airlock.channels.layout import ChannelStore

pytestmark = pytest.mark.e2e

NAME = "minimal"
PER_MINUTE = 8
SENT = 48
"""Webhooks sent at once: each worker gets far more than the limit (new connections spread by a hash)."""


def caps_doc() -> bytes:
    doc: dict[str, Any] = {"name": NAME, "version": "0.1.0", "wit_version": "0.1.0",
                           "capabilities": {"channel": {
                               "allowed_paths": [f"/webhook/{NAME}"],
                               "emit_rate_limit": {"messages_per_minute": PER_MINUTE, "messages_per_hour": 1000}}},
                           "config": {"dm_policy": "open"}}
    return json.dumps(doc).encode()


async def test_the_emit_limit_holds_over_both_workers(airlock_home: Path, wat_dir: Path, tmp_path: Path) -> None:
    stage(ChannelStore(airlock_home / "channels"), build_component(wat_dir, NAME).read_bytes(), caps_doc(),
          source=NAME)
    gw = await start(airlock_home, tmp_path / "serve.log")
    answers: Counter[tuple[str, int]] = Counter()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            for n in range(SENT):
                async with s.post(f"{gw.base}/webhook/{NAME}", data=f"m-{n:02d}".encode()) as r:
                    answers[(r.headers["X-Airlock-Worker"], r.status)] += 1
                    if r.status == 429:
                        assert 0 < int(r.headers["Retry-After"]) <= 60
    finally:
        assert await gw.stop() == 0, gw.log()[-3000:]
    by_worker = Counter(w for w, _ in answers.elements())
    assert min(by_worker["0"], by_worker["1"]) > PER_MINUTE, answers  # each alone could have passed the limit
    accepted = sum(n for (_, status), n in answers.items() if status == 200)
    assert accepted == PER_MINUTE and set(s for _, s in answers) == {200, 429}, answers
    with sqlite3.connect(airlock_home / "state.db") as db:
        logged = db.execute("SELECT count(*) FROM inbound WHERE instance = ?", (NAME,)).fetchone()[0]
    assert logged == PER_MINUTE
