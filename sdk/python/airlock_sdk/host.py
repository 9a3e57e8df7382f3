"""Host functions as plain Python functions.

Every function goes through a *backend* that mirrors the WIT ``channel-host`` interface with plain
Python values (JSON strings stay strings, ``err`` becomes ``HostCallError``). Inside a component the
backend is ``airlock_sdk._wit`` (loaded lazily); tests install ``airlock_sdk.testing.FakeHost`` with
``set_backend``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from . import _json
from .errors import (
    AttachmentError,
    HostCallError,
    HostError,
    HttpError,
    PairingError,
    WebsocketError,
    WorkspaceError,
)
from .types import HttpResponse, Message

__all__ = [
    "LOG_LEVELS",
    "HostBackend",
    "debug",
    "emit",
    "error",
    "get_backend",
    "http",
    "info",
    "log",
    "now_millis",
    "pairing_allow_from",
    "pairing_resolve",
    "pairing_upsert",
    "secret_exists",
    "set_backend",
    "store_attachment",
    "trace",
    "warn",
    "websocket_send",
    "workspace_read",
    "workspace_read_json",
    "workspace_write",
    "workspace_write_json",
]

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
_LEVEL_ALIASES = {"warning": "warn", "critical": "error", "fatal": "error", "err": "error"}
MAX_LOG_BYTES = 4096


class HostBackend(Protocol):
    """The WIT ``channel-host`` functions with plain values. Errors raise ``HostCallError``.

    ``emit_message`` receives a dict whose keys are the WIT record fields in snake_case
    (``user_id, user_name, content, thread_id, metadata_json, attachments``; each attachment has
    ``id, mime_type, filename, size_bytes, source_url, storage_key, extracted_text, extras_json``).
    """

    def log(self, level: str, message: str) -> None: ...
    def now_millis(self) -> int: ...
    def workspace_read(self, path: str) -> str | None: ...
    def workspace_write(self, path: str, content: str) -> None: ...
    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> tuple[int, str, bytes]: ...
    def secret_exists(self, name: str) -> bool: ...
    def store_attachment_data(self, attachment_id: str, data: bytes) -> None: ...
    def emit_message(self, msg: dict[str, Any]) -> None: ...
    def websocket_send_text(self, payload: str) -> None: ...
    def pairing_upsert_request(self, channel: str, id: str, meta_json: str) -> tuple[str, bool]: ...
    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None: ...
    def pairing_read_allow_from(self, channel: str) -> list[str]: ...


_backend: HostBackend | None = None


def set_backend(backend: HostBackend | None) -> HostBackend | None:
    """Install a backend (``None`` restores the lazy WIT backend); returns the previous one."""
    global _backend
    previous = _backend
    _backend = backend
    return previous


def get_backend() -> HostBackend:
    global _backend
    if _backend is None:
        try:
            from . import _wit
        except ImportError as exc:  # plain CPython: no generated bindings
            raise RuntimeError(
                "airlock_sdk host functions only work inside a component; "
                "in tests install a fake with airlock_sdk.host.set_backend(airlock_sdk.testing.FakeHost())"
            ) from exc
        _backend = _wit.BACKEND
    return _backend


_T = TypeVar("_T")


def _call(err_type: type[HostError], fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except HostCallError as exc:
        raise err_type(exc.message) from None


# --------------------------------------------------------------------------- logging


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker = " ...[truncated]"
    return data[: limit - len(marker)].decode("utf-8", errors="ignore") + marker


def log(level: str, msg: str) -> None:
    """Log through the host (buffered, flushed after the callback). ``level``: trace..error."""
    lvl = str(level).lower()
    lvl = _LEVEL_ALIASES.get(lvl, lvl)
    if lvl not in LOG_LEVELS:
        lvl = "info"
    get_backend().log(lvl, _truncate_utf8(str(msg), MAX_LOG_BYTES))


def trace(msg: str) -> None:
    log("trace", msg)


def debug(msg: str) -> None:
    log("debug", msg)


def info(msg: str) -> None:
    log("info", msg)


def warn(msg: str) -> None:
    log("warn", msg)


def error(msg: str) -> None:
    log("error", msg)


def now_millis() -> int:
    """Wall-clock milliseconds since the Unix epoch."""
    return get_backend().now_millis()


# --------------------------------------------------------------------------- workspace


def workspace_read(path: str) -> str | None:
    """The content stored at ``path``, or None if it was never written."""
    return get_backend().workspace_read(path)


def workspace_write(path: str, content: str) -> None:
    """Store ``content`` (visible to later callbacks only if this one succeeds). Raises WorkspaceError."""
    backend = get_backend()
    _call(WorkspaceError, lambda: backend.workspace_write(path, content))


def workspace_read_json(path: str, default: Any = None) -> Any:
    """``workspace_read`` parsed as JSON; ``default`` if absent or not valid JSON."""
    raw = workspace_read(path)
    if raw is None:
        return default
    try:
        return _json.loads(raw)
    except ValueError:
        return default


def workspace_write_json(path: str, value: Any) -> None:
    workspace_write(path, json.dumps(value, separators=(",", ":")))


# --------------------------------------------------------------------------- outbound HTTP


def _parse_headers(headers_json: str) -> dict[str, str]:
    try:
        raw = _json.loads(headers_json) if headers_json else {}
    except ValueError:
        return {}
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            out[str(k)] = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    elif isinstance(raw, list):  # [[name, value], ...]
        for item in raw:
            if isinstance(item, list | tuple) and len(item) == 2:
                out[str(item[0])] = str(item[1])
    return out


def http(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    timeout_ms: int | None = None,
    *,
    json_body: Any = None,
) -> HttpResponse:
    """Outbound HTTPS request through the host's allow-list.

    ``{SECRET_NAME}`` placeholders in the URL/headers are filled in by the host. Any HTTP status is
    returned as an ``HttpResponse``; a refused or failed request raises ``HttpError``.
    ``json_body`` (instead of ``body``) sends JSON with a content-type header.
    """
    hdrs = {str(k): str(v) for k, v in (headers or {}).items()}
    data: bytes | None
    if json_body is not None:
        if body is not None:
            raise ValueError("pass either body or json_body, not both")
        data = _json.dumps(json_body).encode("utf-8")
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif body is None:
        data = None
    else:
        data = bytes(body)
    if timeout_ms is not None:
        timeout_ms = max(0, min(int(timeout_ms), 0xFFFFFFFF))
    backend = get_backend()
    status, headers_json, resp_body = _call(
        HttpError,
        lambda: backend.http_request(method.upper(), url, _json.dumps(hdrs), data, timeout_ms),
    )
    return HttpResponse(status=status, headers=_parse_headers(headers_json), body=bytes(resp_body))


def secret_exists(name: str) -> bool:
    """True if the secret is allowed for this channel and has a value (never returns the value)."""
    return get_backend().secret_exists(name)


# --------------------------------------------------------------------------- emitting messages


def store_attachment(attachment_id: str, data: bytes) -> None:
    """Hand raw bytes for an attachment emitted later in this callback. Raises AttachmentError."""
    backend = get_backend()
    _call(AttachmentError, lambda: backend.store_attachment_data(attachment_id, bytes(data)))


def _message_to_wire(msg: Message) -> dict[str, Any]:
    return {
        "user_id": str(msg.user_id),
        "user_name": None if msg.user_name is None else str(msg.user_name),
        "content": str(msg.content),
        "thread_id": None if msg.thread_id is None else str(msg.thread_id),
        "metadata_json": _json.dumps(msg.metadata or {}),
        "attachments": [
            {
                "id": a.id,
                "mime_type": a.mime_type,
                "filename": a.filename,
                "size_bytes": a.size_bytes
                if a.size_bytes is not None
                else (len(a.data) if a.data is not None else None),
                "source_url": a.source_url,
                "storage_key": a.storage_key,
                "extracted_text": a.extracted_text,
                "extras_json": _json.dumps(a.extras or {}),
            }
            for a in msg.attachments
        ],
    }


def emit(msg: Message) -> None:
    """Queue a message for the agent (delivered after the callback succeeds).

    Attachments carrying ``data`` are stored first with ``store_attachment``.
    """
    for att in msg.attachments:
        if att.data is not None:
            store_attachment(att.id, att.data)
    get_backend().emit_message(_message_to_wire(msg))


def websocket_send(text: str) -> None:
    """Send a text frame on the host-managed websocket. Raises WebsocketError if none is open."""
    backend = get_backend()
    _call(WebsocketError, lambda: backend.websocket_send_text(text))


# --------------------------------------------------------------------------- pairing


def pairing_upsert(channel: str, external_id: str, meta: dict[str, Any] | None = None) -> tuple[str, bool]:
    """Create (or find) a pairing request for an unknown sender: ``(code, created)``."""
    backend = get_backend()
    meta_json = _json.dumps(meta or {})
    return _call(PairingError, lambda: backend.pairing_upsert_request(channel, external_id, meta_json))


def pairing_resolve(channel: str, external_id: str) -> str | None:
    """The owner id this sender is paired with, or None."""
    backend = get_backend()
    return _call(PairingError, lambda: backend.pairing_resolve_identity(channel, external_id))


def pairing_allow_from(channel: str) -> list[str]:
    """External ids approved for this channel."""
    backend = get_backend()
    return list(_call(PairingError, lambda: backend.pairing_read_allow_from(channel)))
