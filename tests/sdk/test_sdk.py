"""The Python guest SDK on plain CPython: data classes, host calls and error mapping.

The WIT layer is faked two ways: ``airlock_sdk.testing.FakeHost`` replaces the host backend, and the
``wit`` fixture generates the real componentize-py bindings and replaces their host functions.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

from wit_fixtures import bindings_dir_fixture, wit_fixture  # noqa: E402, F401 (fixtures)

import airlock_sdk  # noqa: E402
from airlock_sdk import (  # noqa: E402
    AgentReply,
    Channel,
    ChannelConfig,
    Endpoint,
    HttpError,
    HttpResponse,
    InboundAttachment,
    Message,
    PairingError,
    Poll,
    Request,
    Response,
    Status,
    StatusUpdate,
    WebsocketError,
    WorkspaceError,
    host,
)
from airlock_sdk import channel as ch  # noqa: E402
from airlock_sdk.testing import FakeHost  # noqa: E402


@pytest.fixture
def fake() -> Iterator[FakeHost]:
    with FakeHost() as f:
        yield f


# --------------------------------------------------------------------------- data classes


def test_request_helpers() -> None:
    req = Request("POST", "/x", headers={"content-type": "application/json"}, body=b'{"a": [1, 2]}')
    assert req.json() == {"a": [1, 2]}
    assert req.text() == '{"a": [1, 2]}'
    assert req.header("Content-Type") == "application/json"
    assert req.header("missing", "d") == "d"
    with pytest.raises(ValueError):
        Request("POST", "/x", body=b"{nope").json()
    with pytest.raises(ValueError):
        Request("POST", "/x", body=b"\xff\xfe").json()
    assert Request("GET", "/", body=b"\xffok").text() == "\ufffdok"


def test_response_encoding() -> None:
    assert Response().encoded() == (200, {}, b"")
    assert Response.json({"ok": True}, status=201).encoded() == (
        201,
        {"content-type": "application/json"},
        b'{"ok": true}',
    )
    status, headers, body = Response(body="héllo").encoded()
    assert (status, body) == (200, "héllo".encode())
    assert headers == {"content-type": "text/plain; charset=utf-8"}
    _, headers, body = Response(body={"a": 1}).encoded()
    assert json.loads(body) == {"a": 1} and headers["content-type"] == "application/json"
    _, headers, _ = Response(body=[1], headers={"Content-Type": "x/y"}).encoded()
    assert headers == {"Content-Type": "x/y"}
    assert Response.text("hi", status=404).encoded()[0] == 404
    with pytest.raises(ValueError):
        Response(status=99).encoded()
    with pytest.raises(TypeError):
        Response(body=3.5).encoded()  # type: ignore[arg-type]


def test_http_response_helpers() -> None:
    r = HttpResponse(200, {"Content-Type": "application/json"}, b'{"x": 1}')
    assert r.ok and r.json() == {"x": 1} and r.text() == '{"x": 1}'
    assert r.header("content-type") == "application/json"
    assert not HttpResponse(404).ok


def test_defaults() -> None:
    msg = Message(user_id="1", content="hi")
    assert msg.metadata == {} and msg.attachments == [] and msg.user_name is None
    assert Message(user_id="2", content="x").metadata is not msg.metadata
    assert Endpoint("/hook").methods == ["POST"]
    assert Poll(1000).enabled is True
    assert ChannelConfig("x").endpoints == [] and ChannelConfig("x").poll is None
    assert StatusUpdate("thinking").metadata == {}
    assert Status.TOOL_STARTED == "tool-started" and len(Status.ALL) == 11


# --------------------------------------------------------------------------- host functions


def test_http_request_encoding(fake: FakeHost) -> None:
    fake.queue_http(201, {"ok": True}, headers={"X-A": "1"})
    resp = host.http("post", "https://api.example/x", headers={"A": "b"}, body="é", timeout_ms=1500)
    call = fake.http_calls[0]
    assert (call.method, call.url, call.headers, call.body, call.timeout_ms) == (
        "POST",
        "https://api.example/x",
        {"A": "b"},
        "é".encode(),
        1500,
    )
    assert resp.status == 201 and resp.json() == {"ok": True} and resp.headers == {"X-A": "1"}

    fake.queue_http(200)
    host.http("GET", "https://api.example/y")
    assert fake.http_calls[1].body is None and fake.http_calls[1].timeout_ms is None

    fake.queue_http(200)
    host.http("POST", "https://api.example/z", json_body={"k": [1]})
    assert fake.http_calls[2].json() == {"k": [1]}
    assert fake.http_calls[2].headers == {"Content-Type": "application/json"}
    with pytest.raises(ValueError):
        host.http("POST", "u", body=b"x", json_body={})


def test_http_error_mapping(fake: FakeHost) -> None:
    fake.queue_http_error("host not in allow-list: evil.example")
    with pytest.raises(HttpError) as info:
        host.http("GET", "https://evil.example/")
    assert info.value.message == "host not in allow-list: evil.example"
    assert isinstance(info.value, airlock_sdk.HostError)


def test_response_headers_tolerant(fake: FakeHost) -> None:
    fake.http_handler = lambda call: HttpResponse(200, {}, b"")
    assert host._parse_headers('{"a": ["1", "2"], "b": 3}') == {"a": "1, 2", "b": "3"}
    assert host._parse_headers('[["a", "1"], ["b"]]') == {"a": "1"}
    assert host._parse_headers("not json") == {}
    assert host._parse_headers("") == {}


def test_workspace(fake: FakeHost) -> None:
    assert host.workspace_read("state/x") is None
    host.workspace_write("state/x", "1")
    assert host.workspace_read("state/x") == "1"
    host.workspace_write_json("state/j", {"a": 1})
    assert host.workspace_read_json("state/j") == {"a": 1}
    assert host.workspace_read_json("state/x") == 1
    assert host.workspace_read_json("missing", default=[]) == []
    fake.workspace["bad"] = "{"
    assert host.workspace_read_json("bad", default="d") == "d"
    with pytest.raises(WorkspaceError) as info:
        host.workspace_write("../escape", "x")
    assert "invalid workspace path" in info.value.message


def test_emit_wire_format_and_attachments(fake: FakeHost) -> None:
    host.emit(
        Message(
            user_id="7",
            content="hi",
            user_name="al",
            thread_id="3",
            metadata={"chat_id": 9},
            attachments=[InboundAttachment(id="a1", mime_type="image/png", data=b"PNG", extras={"w": 1})],
        )
    )
    wire = fake.emitted_wire[0]
    assert wire["metadata_json"] == '{"chat_id": 9}'
    att = wire["attachments"][0]
    assert att["size_bytes"] == 3 and att["extras_json"] == '{"w": 1}' and "data" not in att
    assert fake.attachments == {"a1": b"PNG"}
    assert fake.emitted[0].metadata == {"chat_id": 9}
    assert set(wire) == {"user_id", "user_name", "content", "thread_id", "metadata_json", "attachments"}


def test_log_levels_and_truncation(fake: FakeHost) -> None:
    host.log("WARNING", "w")
    host.log("bogus", "b")
    host.debug("d")
    host.error("x" * 10_000)
    assert fake.logs[:3] == [("warn", "w"), ("info", "b"), ("debug", "d")]
    level, text = fake.logs[3]
    assert level == "error" and len(text.encode()) <= host.MAX_LOG_BYTES and text.endswith("[truncated]")
    host.info("é" * 5000)  # multi-byte characters are cut on a character boundary
    assert len(fake.logs[4][1].encode()) <= host.MAX_LOG_BYTES


def test_pairing_and_misc(fake: FakeHost) -> None:
    code, created = host.pairing_upsert("telegram", "42", {"username": "al"})
    assert created and host.pairing_upsert("telegram", "42", {}) == (code, False)
    assert fake.pairing_meta[("telegram", "42")] == {"username": "al"}
    assert host.pairing_resolve("telegram", "42") is None
    fake.paired[("telegram", "42")] = "owner"
    assert host.pairing_resolve("telegram", "42") == "owner"
    fake.allow_from["telegram"] = ["1", "2"]
    assert host.pairing_allow_from("telegram") == ["1", "2"]
    fake.fail["pairing_read_allow_from"] = "store down"
    with pytest.raises(PairingError, match="store down"):
        host.pairing_allow_from("telegram")
    with pytest.raises(WebsocketError):
        host.websocket_send("x")
    fake.websocket_open = True
    host.websocket_send("x")
    assert fake.websocket_sent == ["x"]
    fake.secrets.add("token")
    assert host.secret_exists("token") and not host.secret_exists("other")
    assert host.now_millis() == fake.now


def test_no_backend_outside_component() -> None:
    previous = host.set_backend(None)
    try:
        if importlib.util.find_spec("wit_world") is None:
            with pytest.raises(RuntimeError, match="only work inside a component"):
                host.info("x")
    finally:
        host.set_backend(previous)


# --------------------------------------------------------------------------- dispatch + error mapping


class Echo(Channel):
    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        if config.get("fail"):
            raise ValueError("bad config")
        return ChannelConfig(
            "Echo",
            endpoints=[Endpoint("/hook", ["post", "GET"], require_secret=True)],
            poll=Poll(interval_ms=config.get("interval", 1000)),
        )

    def on_http_request(self, req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("secret internals")
        if req.path == "/none":
            return None  # type: ignore[return-value]
        return Response.json(
            {
                "method": req.method,
                "headers": req.headers,
                "query": req.query,
                "body": req.text(),
                "validated": req.secret_validated,
            }
        )

    def on_poll(self) -> None:
        raise KeyError("cursor")

    def on_respond(self, reply: AgentReply) -> None:
        if reply.content == "fail":
            raise ConnectionError("send failed")
        host.info(f"respond {reply.metadata} {[a.filename for a in reply.attachments]}")

    def on_status(self, update: StatusUpdate) -> None:
        raise RuntimeError(update.status)

    def on_broadcast(self, user_id: str, reply: AgentReply) -> None:
        raise RuntimeError(f"no broadcast to {user_id}")

    def on_shutdown(self) -> None:
        raise RuntimeError("bye")


def test_on_start_ok_and_normalised(fake: FakeHost) -> None:
    cfg = ch.call_on_start(Echo, '{"interval": 5000}')
    assert cfg == ChannelConfig("Echo", [Endpoint("/hook", ["POST", "GET"], True)], Poll(5000, True))
    assert ch.call_on_start(Echo, "").display_name == "Echo"


@pytest.mark.parametrize(
    ("config_json", "expected"),
    [
        ('{"fail": true}', "ValueError: bad config"),
        ("[1]", "ValueError: config-json is not a JSON object"),
        ('{"interval": -1}', "ValueError: poll interval -1 ms is out of range"),
    ],
)
def test_on_start_errors_become_err(fake: FakeHost, config_json: str, expected: str) -> None:
    with pytest.raises(ch.CallbackFailed) as info:
        ch.call_on_start(Echo, config_json)
    assert info.value.message == expected
    assert "Traceback" not in info.value.message
    assert any("Traceback" in m for m in fake.logs_at("error"))


def test_on_start_bad_return_and_invalid_json(fake: FakeHost) -> None:
    class Bad(Channel):
        def on_start(self, config: dict[str, Any]) -> ChannelConfig:
            return {"display_name": "x"}  # type: ignore[return-value]

    with pytest.raises(ch.CallbackFailed, match=r"^TypeError: on_start must return a ChannelConfig"):
        ch.call_on_start(Bad, "{}")
    with pytest.raises(ch.CallbackFailed, match=r"^JSONDecodeError"):
        ch.call_on_start(Echo, "{")


def test_http_request_plain_values(fake: FakeHost) -> None:
    status, headers_json, body = ch.call_on_http_request(
        Echo, "post", "/hook", '{"X-Token": "t", "Accept": ["a", "b"]}', '{"q": "1"}', b"hi", True
    )
    assert status == 200 and json.loads(headers_json) == {"content-type": "application/json"}
    assert json.loads(body) == {
        "method": "POST",
        "headers": {"x-token": "t", "accept": "a, b"},
        "query": {"q": "1"},
        "body": "hi",
        "validated": True,
    }
    # unparsable headers/query are empty, not fatal
    status, _, body = ch.call_on_http_request(Echo, "GET", "/hook", "garbage", "", b"", False)
    assert status == 200 and json.loads(body)["headers"] == {}


@pytest.mark.parametrize("path", ["/boom", "/none"])
def test_http_request_exception_becomes_generic_500(fake: FakeHost, path: str) -> None:
    status, headers_json, body = ch.call_on_http_request(Echo, "GET", path, "{}", "{}", b"", True)
    assert status == 500 and body == ch.INTERNAL_ERROR_BODY
    assert b"secret internals" not in body and b"Traceback" not in body
    assert json.loads(headers_json) == {"content-type": "application/json"}
    errors = fake.logs_at("error")
    assert len(errors) == 1 and errors[0].startswith("on_http_request raised") and "Traceback" in errors[0]


def test_default_channel_behaviour(fake: FakeHost) -> None:
    class Minimal(Channel):
        display_name = "Mini"

    assert ch.call_on_start(Minimal, "{}") == ChannelConfig("Mini")
    assert ch.call_on_http_request(Minimal, "GET", "/", "{}", "{}", b"", True)[0] == 404
    ch.call_on_poll(Minimal)
    ch.call_on_status(Minimal, "thinking", "", "{}")
    ch.call_on_shutdown(Minimal)
    with pytest.raises(ch.CallbackFailed, match=r"^NotImplementedError: Minimal does not implement on_respond"):
        ch.call_on_respond(Minimal, "m", "c", None, "{}", [])
    assert fake.logs_at("error")  # the failure was logged
    assert ch.call_on_start(type("Anon", (Channel,), {}), "{}").display_name == "Anon"


def test_respond_and_broadcast_error_mapping(fake: FakeHost) -> None:
    ch.call_on_respond(Echo, "m1", "ok", "t", '{"chat_id": 1}', [("a.txt", "text/plain", b"A")])
    assert fake.logs_at("info") == ["respond {'chat_id': 1} ['a.txt']"]
    with pytest.raises(ch.CallbackFailed) as info:
        ch.call_on_respond(Echo, "m1", "fail", None, "{}", [])
    assert info.value.message == "ConnectionError: send failed"
    with pytest.raises(ch.CallbackFailed, match=r"^ValueError: metadata-json is not a JSON object$"):
        ch.call_on_respond(Echo, "m1", "ok", None, "[]", [])
    with pytest.raises(ch.CallbackFailed) as info:
        ch.call_on_broadcast(Echo, "u9", "m", "c", None, "", [])
    assert info.value.message == "RuntimeError: no broadcast to u9"


def test_poll_status_shutdown_errors_are_logged_not_raised(fake: FakeHost) -> None:
    ch.call_on_poll(Echo)
    ch.call_on_status(Echo, "tool-started", "m", "{}")
    ch.call_on_status(Echo, "thinking", "m", "not json")
    ch.call_on_shutdown(Echo)
    errors = fake.logs_at("error")
    assert [e.split("\n")[0] for e in errors] == [
        "on_poll raised KeyError: 'cursor'",
        "on_status raised RuntimeError: tool-started",
        "on_status raised JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        "on_shutdown raised RuntimeError: bye",
    ]


def test_long_traceback_keeps_innermost_frames(fake: FakeHost) -> None:
    class Deep(Channel):
        def on_poll(self) -> None:
            def recurse(n: int) -> None:
                if n == 0:
                    raise RuntimeError("deep failure")
                recurse(n - 1)

            recurse(200)

    ch.call_on_poll(Deep)
    (text,) = fake.logs_at("error")
    assert len(text.encode()) <= host.MAX_LOG_BYTES
    assert text.startswith("on_poll raised RuntimeError: deep failure")
    assert text.rstrip().endswith("RuntimeError: deep failure")


def test_status_name() -> None:
    assert ch.status_name("TOOL_STARTED") == "tool-started"
    assert ch.status_name("THINKING") == Status.THINKING


def test_export_rejects_non_channel() -> None:
    with pytest.raises(TypeError):
        airlock_sdk.export(object)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the real WIT layer
# (fixtures ``bindings_dir`` and ``wit``: tests/sdk/wit_fixtures.py)


def test_wit_export_on_start(wit: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from componentize_py_types import Err  # type: ignore[import-not-found]
    from wit_world import exports  # type: ignore[import-not-found]
    from wit_world.exports import channel as wc  # type: ignore[import-not-found]
    from wit_world.imports import channel_host as wh  # type: ignore[import-not-found]

    logs: list[tuple[Any, str]] = []
    monkeypatch.setattr(wh, "log", lambda level, msg: logs.append((level, msg)))
    cls = airlock_sdk.export(Echo)
    assert cls.__name__ == "Channel" and exports.Channel in cls.__mro__
    cfg = cls().on_start('{"interval": 3000}')
    assert cfg == wc.ChannelConfig(
        display_name="Echo",
        http_endpoints=[wc.HttpEndpointConfig(path="/hook", methods=["POST", "GET"], require_secret=True)],
        poll=wc.PollConfig(interval_ms=3000, enabled=True),
    )
    with pytest.raises(Err) as info:
        cls().on_start('{"fail": 1}')
    assert info.value.value == "ValueError: bad config"
    assert logs and logs[-1][0] == wh.LogLevel.ERROR and "Traceback" in logs[-1][1]


def test_wit_export_callbacks(wit: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from componentize_py_types import Err
    from wit_world.exports import channel as wc
    from wit_world.imports import channel_host as wh

    logs: list[tuple[Any, str]] = []
    monkeypatch.setattr(wh, "log", lambda level, msg: logs.append((level, msg)))
    cls = wit.make_export(Echo)

    resp = cls().on_http_request(wc.IncomingHttpRequest("POST", "/boom", "{}", "{}", b"", True))
    assert resp == wc.OutgoingHttpResponse(500, '{"content-type": "application/json"}', ch.INTERNAL_ERROR_BODY)
    resp = cls().on_http_request(wc.IncomingHttpRequest("POST", "/hook", '{"A": "1"}', "{}", b"x", False))
    assert resp.status == 200 and json.loads(resp.body)["headers"] == {"a": "1"}

    reply = wc.AgentResponse("m", "fail", None, "{}", [wc.Attachment("f", "text/plain", b"x")])
    with pytest.raises(Err) as info:
        cls().on_respond(reply)
    assert info.value.value == "ConnectionError: send failed"
    with pytest.raises(Err) as info:
        cls().on_broadcast("u1", reply)
    assert info.value.value == "RuntimeError: no broadcast to u1"

    logs.clear()
    assert cls().on_status(wc.StatusUpdate(wc.StatusType.TOOL_STARTED, "", "{}")) is None
    assert cls().on_poll() is None
    assert cls().on_shutdown() is None
    heads = [msg.split("\n")[0] for _, msg in logs]
    assert heads == [
        "on_status raised RuntimeError: tool-started",
        "on_poll raised KeyError: 'cursor'",
        "on_shutdown raised RuntimeError: bye",
    ]


def test_wit_backend_host_calls(wit: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from componentize_py_types import Err
    from wit_world.imports import channel_host as wh

    seen: dict[str, Any] = {}

    def http_request(method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None) -> Any:
        seen["http"] = (method, url, headers_json, body, timeout_ms)
        if "bad" in url:
            raise Err("denied by allow-list")
        return wh.HttpResponse(204, '{"x": "y"}', b"")

    monkeypatch.setattr(wh, "http_request", http_request)
    monkeypatch.setattr(wh, "emit_message", lambda msg: seen.setdefault("emit", msg))
    monkeypatch.setattr(wh, "workspace_write", lambda p, c: (_ for _ in ()).throw(Err("quota")))
    monkeypatch.setattr(wh, "pairing_upsert_request", lambda c, i, m: wh.PairingUpsertResult("ABCD2345", True))
    monkeypatch.setattr(wh, "pairing_resolve_identity", lambda c, i: None)
    monkeypatch.setattr(wh, "pairing_read_allow_from", lambda c: ["5"])
    monkeypatch.setattr(wh, "store_attachment_data", lambda i, d: seen.setdefault("att", (i, d)))
    monkeypatch.setattr(wh, "log", lambda level, msg: seen.setdefault("log", (level, msg)))

    resp = host.http("GET", "https://ok.example/", headers={"H": "v"}, timeout_ms=5)
    assert resp == HttpResponse(204, {"x": "y"}, b"")
    assert seen["http"] == ("GET", "https://ok.example/", '{"H": "v"}', None, 5)
    with pytest.raises(HttpError, match="denied by allow-list"):
        host.http("GET", "https://bad.example/")
    with pytest.raises(WorkspaceError, match="quota"):
        host.workspace_write("a", "b")
    assert host.pairing_upsert("telegram", "1", {}) == ("ABCD2345", True)
    assert host.pairing_resolve("telegram", "1") is None
    assert host.pairing_allow_from("telegram") == ["5"]
    host.warn("careful")
    assert seen["log"] == (wh.LogLevel.WARN, "careful")
    host.emit(Message("1", "hi", metadata={"k": 1}, attachments=[InboundAttachment("a", "image/png", data=b"D")]))
    assert seen["att"] == ("a", b"D")
    assert seen["emit"] == wh.EmittedMessage(
        user_id="1",
        user_name=None,
        content="hi",
        thread_id=None,
        metadata_json='{"k": 1}',
        attachments=[wh.InboundAttachment("a", "image/png", None, 1, None, None, None, "{}")],
    )


def test_print_goes_to_host_log_during_callbacks(fake: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    from airlock_sdk import _stdio

    # inside a component _wit installs these as sys.stdout/sys.stderr; do it here for the test only
    monkeypatch.setattr(sys, "stdout", _stdio.STDOUT)
    monkeypatch.setattr(sys, "stderr", _stdio.STDERR)

    class Printer(Channel):
        def on_poll(self) -> None:
            print("line one")
            print("two", "parts", end="")
            print("oops", file=sys.stderr)

    print("outside a callback is dropped")
    ch.call_on_poll(Printer)
    monkeypatch.undo()
    assert fake.logs == [("info", "line one"), ("warn", "oops"), ("info", "two parts")]
    assert not _stdio.STDOUT.active and not _stdio.STDERR.active
