"""``airlock_sdk.prewarm`` against the real generated bindings: the channel's webhook path runs at build
time with an in-memory host, no real host import is called, and the WIT backend is installed after."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

from wit_fixtures import bindings_dir_fixture, wit_fixture  # noqa: E402, F401 (fixtures)

import airlock_sdk  # noqa: E402
from airlock_sdk import Channel, HttpError, Message, Request, Response, host  # noqa: E402

# The ``wit`` fixture (real bindings, host backend removed, pre-warm freezes undone) is in wit_fixtures.py.

SEEN: list[Any] = []


class Warm(Channel):
    def on_http_request(self, req: Request) -> Response:
        cfg = host.workspace_read_json("state/config", {})
        host.workspace_write("state/seen", req.path)
        host.info(f"warming {req.json()['n']}")
        print("printed while warming")
        try:
            host.http("GET", "https://example.invalid/")
        except HttpError as exc:
            SEEN.append(("http refused", exc.message))
        host.emit(Message(user_id="u", content=str(cfg.get("mode")), metadata={"k": 1}))
        SEEN.append((req.method, req.path, req.header("Content-Type"), host.workspace_read("state/seen")))
        return Response.json({"ok": True})


def test_prewarm_runs_the_channel_without_the_real_host(wit: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from wit_world.imports import channel_host as wh  # type: ignore[import-not-found]

    real_calls: list[str] = []
    for name in ("log", "workspace_read", "workspace_write", "http_request", "emit_message", "now_millis"):
        monkeypatch.setattr(wh, name, lambda *a, _n=name: real_calls.append(_n))
    SEEN.clear()
    workspace = {"state/config": '{"mode": "open"}'}
    exported = airlock_sdk.export(Warm)
    req = Request("POST", "/hook", {"content-type": "application/json"}, {}, b'{"n": 1}', True)
    airlock_sdk.prewarm(exported, [req], workspace=workspace, rounds=2)

    assert real_calls == []
    assert SEEN.count(("POST", "/hook", "application/json", "/hook")) == 2
    assert SEEN.count(("http refused", "no outbound HTTP while pre-warming")) == 2
    assert workspace == {"state/config": '{"mode": "open"}'}  # the caller's dict is not written to
    assert host.get_backend() is wit.BACKEND
    assert gc.get_freeze_count() > 0

