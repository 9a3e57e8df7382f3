"""An in-memory fake of the host for unit-testing channels on plain CPython.

with FakeHost() as fake:
    fake.queue_http(200, {"ok": True, "result": []})
    call_on_poll(MyChannel)
    assert fake.http_calls[0].url.endswith("/getUpdates?timeout=25")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import host
from .errors import HostCallError
from .types import HttpResponse, InboundAttachment, Message

__all__ = ["FakeHost", "HttpCall"]


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
    _previous: Any = None

    # -- context manager installs the fake as the backend
    def __enter__(self) -> FakeHost:
        self._previous = host.set_backend(self)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        host.set_backend(self._previous)

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
