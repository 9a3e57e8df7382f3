"""``airlock_sdk.testing.FakeHost`` as a channel author's harness: each callback method dispatches like the
component (fresh instance, the same failure rules), installs the fake only for the call (re-entrant inside a
``with FakeHost()``), and ``export()`` returns the class itself on plain CPython.

The ``wit`` fixtures of test_sdk.py put generated bindings on ``sys.path`` for some tests; the ``export``
checks here run in a subprocess so they see a plain interpreter whatever ran before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

from airlock_sdk import Channel, ChannelConfig, Endpoint, Message, Request, Response, host  # noqa: E402
from airlock_sdk.testing import CallbackFailed, FakeHost  # noqa: E402
from airlock_sdk.types import AgentReply, StatusUpdate  # noqa: E402


class Recorder(Channel):
    """Records what it is given in the workspace; fails on demand."""

    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        if config.get("fail"):
            raise ValueError("bad config")
        host.workspace_write_json("state/config", config)
        return ChannelConfig(display_name="rec", endpoints=[Endpoint("/webhook/rec", ["POST"])])

    def on_http_request(self, req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("boom")
        host.emit(Message(user_id=req.header("x-user") or "?", content=req.text(), metadata=dict(req.query)))
        return Response.json({"validated": req.secret_validated, "json": req.json()}, status=202)

    def on_poll(self) -> None:
        raise RuntimeError("poll failed")

    def on_respond(self, reply: AgentReply) -> None:
        if reply.content == "fail":
            raise RuntimeError("no route")
        host.workspace_write_json("state/reply", {"content": reply.content, "meta": reply.metadata,
                                                  "thread": reply.thread_id})

    def on_broadcast(self, user_id: str, reply: AgentReply) -> None:
        host.workspace_write("state/broadcast", f"{user_id}:{reply.content}")

    def on_status(self, update: StatusUpdate) -> None:
        host.workspace_write("state/status", f"{update.status}:{update.message}:{json.dumps(update.metadata)}")

    def on_shutdown(self) -> None:
        host.info("bye")


def test_each_callback_through_the_harness() -> None:
    with FakeHost() as fake:
        config = fake.start(Recorder, {"a": 1})
        assert [e.path for e in config.endpoints] == ["/webhook/rec"]
        assert json.loads(fake.workspace["state/config"]) == {"a": 1}
        with pytest.raises(CallbackFailed, match="ValueError: bad config"):
            fake.start(Recorder, {"fail": True})

        resp = fake.webhook(Recorder, "post", "/webhook/rec", json={"k": [1]}, headers={"X-User": "u1"},
                            query={"q": "v"}, secret_validated=True)
        assert (resp.status, resp.headers["content-type"]) == (202, "application/json")
        assert json.loads(resp.body) == {"validated": True, "json": {"k": [1]}}  # type: ignore[arg-type]
        assert [(m.user_id, m.content, m.metadata) for m in fake.emitted] == [("u1", '{"k": [1]}', {"q": "v"})]
        assert fake.webhook(Recorder, "POST", "/boom", body="x").status == 500

        fake.poll(Recorder)
        assert any("poll failed" in line for line in fake.logs_at("error"))
        fake.respond(Recorder, "hi", metadata={"chat": 7}, thread_id="t1")
        assert json.loads(fake.workspace["state/reply"]) == {"content": "hi", "meta": {"chat": 7}, "thread": "t1"}
        with pytest.raises(CallbackFailed, match="RuntimeError: no route"):
            fake.respond(Recorder, "fail")
        fake.broadcast(Recorder, "u9", "news")
        assert fake.workspace["state/broadcast"] == "u9:news"
        fake.status(Recorder, "thinking", "hmm", metadata={"chat": 7})
        assert fake.workspace["state/status"] == 'thinking:hmm:{"chat": 7}'
        fake.shutdown(Recorder)
        assert fake.logs_at("info") == ["bye"]


def test_the_fake_is_installed_only_while_used() -> None:
    previous = host.set_backend(None)
    try:
        with FakeHost() as fake:
            fake.start(Recorder, {})  # installs itself again inside the with: must not leak afterwards
            assert host.set_backend(fake) is fake
        assert host.set_backend(None) is None
        fake.start(Recorder, {})  # outside a with: installed for the call only
        assert host.set_backend(None) is None
    finally:
        host.set_backend(previous)


def test_export_returns_the_class_on_plain_cpython(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from airlock_sdk import Channel, Request, export, prewarm\n"
        "class Mine(Channel):\n    pass\n"
        "Channel = export(Mine)\n"
        "prewarm(Channel, [Request('POST', '/x')])\n"
    )
    probe = ("import app, sys; assert app.Channel is app.Mine; "
             "assert 'componentize_py_types' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT / "sdk" / "python"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
