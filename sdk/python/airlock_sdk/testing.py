"""An in-memory fake of the host for unit-testing channels on plain CPython (no componentize-py needed).

    from airlock_sdk.testing import FakeHost

    with FakeHost() as fake:
        fake.start(MyChannel, {"dm_policy": "open"})          # on_start; the config is what the host passes
        resp = fake.webhook(MyChannel, "POST", "/webhook/my", json={"text": "hi"}, secret_validated=True)
        assert resp.status == 200 and fake.emitted[0].content == "hi"
        fake.queue_http(200, {"ok": True})
        fake.respond(MyChannel, "hello", metadata={"chat": 1})  # on_respond with the original metadata
        assert fake.http_calls[0].json() == {...}

The ``start`` / ``webhook`` / ``poll`` / ``respond`` / ``broadcast`` / ``status`` / ``shutdown`` methods run
the callback through the same dispatch the component uses (``airlock_sdk.channel.call_on_*``): a fresh
instance of the class per callback, an exception in ``on_http_request`` becomes a 500 response, one in
``on_start`` / ``on_respond`` / ``on_broadcast`` raises ``CallbackFailed("Type: message")``, and the other
callbacks log it at error level (``fake.logs_at("error")``). Unlike the host, the fake applies workspace
writes at once (the host drops them when a callback fails) and enforces no capabilities file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import channel as _dispatch
from . import host
from .channel import Channel
from .errors import HostCallError
from .types import ChannelConfig, HttpResponse, InboundAttachment, Message, Response

__all__ = ["CallbackFailed", "FakeHost", "HttpCall"]

CallbackFailed = _dispatch.CallbackFailed
_json_dumps = json.dumps
_json_loads = json.loads


@dataclass
class HttpCall:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout_ms: int | None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


HttpReply = HttpResponse | Exception


@dataclass
class FakeHost:
    """Records every host call; scripted HTTP answers come from ``queue_http`` or ``http_handler``."""

    now: int = 1_700_000_000_000
    workspace: dict[str, str] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    logs: list[tuple[str, str]] = field(default_factory=list)
    http_calls: list[HttpCall] = field(default_factory=list)
    http_queue: list[HttpReply] = field(default_factory=list)
    http_handler: Callable[[HttpCall], HttpReply] | None = None
    emitted_wire: list[dict[str, Any]] = field(default_factory=list)
    attachments: dict[str, bytes] = field(default_factory=dict)
    websocket_open: bool = False
    websocket_sent: list[str] = field(default_factory=list)
    #: (channel, external_id) -> code of a live pairing request
    pairing_requests: dict[tuple[str, str], str] = field(default_factory=dict)
    pairing_meta: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: (channel, external_id) -> paired owner id
    paired: dict[tuple[str, str], str] = field(default_factory=dict)
    allow_from: dict[str, list[str]] = field(default_factory=dict)
    #: when set, the named host function returns this err string
    fail: dict[str, str] = field(default_factory=dict)
    _previous: list[Any] = field(default_factory=list)

    # -- context manager installs the fake as the backend
    def __enter__(self) -> FakeHost:
        # A stack, so the callback methods below can install the fake again inside a ``with FakeHost()``.
        self._previous.append(host.set_backend(self))
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        host.set_backend(self._previous.pop())

    # -- scripting helpers
    def queue_http(self, status: int = 200, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        if isinstance(body, dict | list):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = bytes(body)
        self.http_queue.append(HttpResponse(status=status, headers=dict(headers or {}), body=data))

    def queue_http_error(self, message: str) -> None:
        self.http_queue.append(HostCallError(message))

    @property
    def emitted(self) -> list[Message]:
        out = []
        for w in self.emitted_wire:
            out.append(
                Message(
                    user_id=w["user_id"],
                    content=w["content"],
                    user_name=w["user_name"],
                    thread_id=w["thread_id"],
                    metadata=json.loads(w["metadata_json"]),
                    attachments=[
                        InboundAttachment(
                            id=a["id"],
                            mime_type=a["mime_type"],
                            filename=a["filename"],
                            size_bytes=a["size_bytes"],
                            source_url=a["source_url"],
                            storage_key=a["storage_key"],
                            extracted_text=a["extracted_text"],
                            extras=json.loads(a["extras_json"]),
                        )
                        for a in w["attachments"]
                    ],
                )
            )
        return out

    # -- running callbacks (module docstring); each installs this fake for the call
    def start(self, cls: type[Channel], config: dict[str, Any] | None = None) -> ChannelConfig:
        """``on_start(config)``; raises ``CallbackFailed`` as the component would return an error."""
        with self:
            return _dispatch.call_on_start(cls, json.dumps(config or {}))

    def webhook(
        self,
        cls: type[Channel],
        method: str,
        path: str,
        *,
        body: bytes | str = b"",
        json: Any = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        secret_validated: bool = False,
    ) -> Response:
        """``on_http_request``; ``json`` (any JSON value) replaces ``body``. Returns the channel's answer as a
        ``Response`` whose ``body`` is bytes (a failing callback gives the host's 500)."""
        data = _json_dumps(json).encode() if json is not None else body.encode() if isinstance(body, str) else body
        with self:
            status, headers_json, out = _dispatch.call_on_http_request(
                cls, method, path, _json_dumps(headers or {}), _json_dumps(query or {}), data, secret_validated
            )
        return Response(status=status, headers=_json_loads(headers_json), body=out)

    def poll(self, cls: type[Channel]) -> None:
        with self:
            _dispatch.call_on_poll(cls)

    def respond(
        self,
        cls: type[Channel],
        content: str,
        *,
        metadata: dict[str, Any] | None = None,
        thread_id: str | None = None,
        message_id: str = "msg-1",
    ) -> str | None:
        """``on_respond`` with ``metadata`` as the original message's; returns the platform message id it returned
        (world 0.2.0), raises ``CallbackFailed`` on failure (``send_class`` tells a ``SendError``'s class)."""
        with self:
            return _dispatch.call_on_respond(cls, message_id, content, thread_id, _json_dumps(metadata or {}), [])

    def broadcast(self, cls: type[Channel], user_id: str, content: str, *, message_id: str = "msg-1") -> str | None:
        with self:
            return _dispatch.call_on_broadcast(cls, user_id, message_id, content, None, "{}", [])

    def edit(self, cls: type[Channel], platform_message_id: str, content: str, *,
             metadata: dict[str, Any] | None = None, thread_id: str | None = None) -> None:
        """``on_edit`` (world 0.2.0); raises ``CallbackFailed`` on failure."""
        with self:
            _dispatch.call_on_edit(cls, platform_message_id, content, thread_id, _json_dumps(metadata or {}))

    def react(self, cls: type[Channel], platform_message_id: str, emoji: str, *, remove: bool = False,
              metadata: dict[str, Any] | None = None) -> None:
        """``on_react`` (world 0.2.0); raises ``CallbackFailed`` on failure."""
        with self:
            _dispatch.call_on_react(cls, platform_message_id, emoji, remove, _json_dumps(metadata or {}))

    def status(self, cls: type[Channel], status: str, message: str = "", *,
               metadata: dict[str, Any] | None = None) -> None:
        """``on_status``; ``status`` as the host names it (``thinking``, ``tool-started``, ...)."""
        with self:
            _dispatch.call_on_status(cls, status, message, _json_dumps(metadata or {}))

    def shutdown(self, cls: type[Channel]) -> None:
        with self:
            _dispatch.call_on_shutdown(cls)

    def logs_at(self, level: str) -> list[str]:
        return [m for lvl, m in self.logs if lvl == level]

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise HostCallError(self.fail[name])

    # -- HostBackend
    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def now_millis(self) -> int:
        return self.now

    def workspace_read(self, path: str) -> str | None:
        return self.workspace.get(path)

    def workspace_write(self, path: str, content: str) -> None:
        self._maybe_fail("workspace_write")
        if path.startswith("/") or ".." in path.split("/") or "\0" in path:
            raise HostCallError(f"invalid workspace path: {path}")
        self.workspace[path] = content

    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> tuple[int, str, bytes]:
        call = HttpCall(method, url, json.loads(headers_json), body, timeout_ms)
        self.http_calls.append(call)
        self._maybe_fail("http_request")
        if self.http_queue:
            reply = self.http_queue.pop(0)
        elif self.http_handler is not None:
            reply = self.http_handler(call)
        else:
            raise HostCallError(f"FakeHost: no scripted response for {method} {url}")
        if isinstance(reply, Exception):
            raise reply
        return reply.status, json.dumps(reply.headers), reply.body

    def secret_exists(self, name: str) -> bool:
        return name in self.secrets

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        self._maybe_fail("store_attachment_data")
        self.attachments[attachment_id] = data

    def emit_message(self, msg: dict[str, Any]) -> None:
        self.emitted_wire.append(msg)

    def websocket_send_text(self, payload: str) -> None:
        self._maybe_fail("websocket_send_text")
        if not self.websocket_open:
            raise HostCallError("no websocket is open")
        self.websocket_sent.append(payload)

    def pairing_upsert_request(self, channel: str, id: str, meta_json: str) -> tuple[str, bool]:
        self._maybe_fail("pairing_upsert_request")
        key = (channel, id)
        if key in self.pairing_requests:
            return self.pairing_requests[key], False
        code = f"CODE{len(self.pairing_requests) + 1:04d}"
        self.pairing_requests[key] = code
        self.pairing_meta[key] = json.loads(meta_json)
        return code, True

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        self._maybe_fail("pairing_resolve_identity")
        return self.paired.get((channel, external_id))

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        self._maybe_fail("pairing_read_allow_from")
        return list(self.allow_from.get(channel, []))
