"""The ``Channel`` base class and the pure-Python callback dispatch.

The ``call_*`` functions take and return plain values; ``airlock_sdk._wit`` only converts WIT records
to and from them. Each callback runs on a fresh instance of the author's class (every WIT callback
runs in a fresh component instance anyway, so nothing may be kept in memory between callbacks; use
the workspace instead).
"""

from __future__ import annotations

import contextlib
import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar, cast

from . import _json as json
from . import host
from ._parse import json_object, make_reply, make_status_update, status_name, string_map, validate_config
from ._stdio import begin_callback, end_callback
from .errors import PermanentError, RateLimited, SendError
from .types import AgentReply, ChannelConfig, MessageEdit, Reaction, Request, Response, StatusUpdate

__all__ = [
    "INTERNAL_ERROR_BODY",
    "CallbackFailed",
    "Channel",
    "call_on_broadcast",
    "call_on_edit",
    "call_on_http_request",
    "call_on_poll",
    "call_on_react",
    "call_on_respond",
    "call_on_shutdown",
    "call_on_start",
    "call_on_status",
    "make_reply",
    "make_status_update",
    "status_name",
]

INTERNAL_ERROR_BODY = b'{"error":"internal error"}'


class Channel:
    """Base class of a channel. Override the callbacks you need.

    A fresh instance is created for every callback: store anything that must survive in the
    workspace (``host.workspace_write``), never on ``self`` between callbacks.
    """

    #: Default display name when ``on_start`` is not overridden.
    display_name: str = ""

    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        """Called on activation with the ``config`` object of the capabilities file."""
        return ChannelConfig(display_name=self.display_name or type(self).__name__)

    def on_http_request(self, req: Request) -> Response:
        """One request to a path returned by ``on_start``."""
        return Response(status=404, body=b"not found")

    def on_poll(self) -> None:
        """One polling tick."""

    def on_respond(self, reply: AgentReply) -> str | None:
        """Deliver the agent's reply; raise to report a failure to the host (a ``SendError`` subclass says how to
        retry). May return the platform's id of the message sent (world 0.2.0, ``export_delivery``: the host
        keeps it, and ``on_edit`` gets it back); ``None`` when there is none."""
        raise NotImplementedError(f"{type(self).__name__} does not implement on_respond")

    def on_status(self, update: StatusUpdate) -> None:
        """Typing indicators / progress. Must be idempotent."""

    def on_broadcast(self, user_id: str, reply: AgentReply) -> str | None:
        """Proactive message to a user without an inbound message; may return the platform's message id."""
        raise NotImplementedError(f"{type(self).__name__} does not implement on_broadcast")

    def on_edit(self, edit: MessageEdit) -> None:
        """World 0.2.0 (``export_edits``): replace the text of the sent message ``edit.platform_message_id`` with
        ``edit.content``. A platform's "not modified" answer is a success."""
        raise PermanentError(f"{type(self).__name__} does not edit messages")

    def on_react(self, reaction: Reaction) -> None:
        """World 0.2.0 (``export_reactions``): add or remove a reaction."""
        raise PermanentError(f"{type(self).__name__} does not react to messages")

    def on_shutdown(self) -> None:
        """Cleanup on unload."""


class CallbackFailed(Exception):
    """A callback failed; ``message`` becomes the WIT ``err(string)`` (or, world 0.2.0, the text of a ``send-error``
    of class ``send_class``: "rate-limited" with ``retry_after`` seconds, "temporary", "permanent", "unclassified")."""

    def __init__(self, message: str, send_class: str = "unclassified", retry_after: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.send_class = send_class
        self.retry_after = retry_after


def _delivery_failed(callback: str, exc: Exception) -> CallbackFailed:
    """Log ``exc`` and describe it as the callback's failure, with its class when it is a ``SendError``."""
    _log_failure(callback, exc)
    if isinstance(exc, SendError):
        return CallbackFailed(exc.message, exc.send_class, exc.seconds if isinstance(exc, RateLimited) else 0)
    return CallbackFailed(describe(exc))


def _delivery_metadata(callback: str, metadata_json: str) -> dict[str, Any]:
    """The metadata of an edit or a reaction; ``CallbackFailed`` of class "permanent" when it is not a JSON object
    (no retry can fix it)."""
    try:
        return json_object(metadata_json, "metadata-json")
    except ValueError as exc:
        raise _delivery_failed(callback, PermanentError(str(exc))) from None


def _platform_id(value: Any, callback: str) -> str | None:
    """The platform message id a callback returned: a non-empty ``str``, else None (a 0.1.0 channel's return value
    was ignored, so anything else is not an id)."""
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- helpers


def describe(exc: BaseException) -> str:
    """``TypeName: message`` (no traceback) for an error result."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_failure(callback: str, exc: BaseException) -> None:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    head = f"{callback} raised {describe(exc)}"
    text = f"{head}\n{tb}"
    limit = host.MAX_LOG_BYTES - 64
    if len(text.encode("utf-8")) > limit:
        # keep the head and the innermost frames (the end of the traceback)
        tail = tb.encode("utf-8")[-(limit - len(head.encode("utf-8")) - 8) :].decode("utf-8", "ignore")
        text = f"{head}\n...\n{tail}"
    with contextlib.suppress(Exception):  # logging must never turn a defined failure into a trap
        host.error(text)


# --------------------------------------------------------------------------- dispatch

_F = TypeVar("_F", bound=Callable[..., Any])


def _scoped(fn: _F) -> _F:
    """Run a dispatch function with print()/stderr routed to the host log (inside a component).

    A plain try/finally rather than a ``contextmanager``: this runs on every callback, in a fresh
    interpreter where each bytecode costs ~100 wasm instructions.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        begin_callback()
        try:
            return fn(*args, **kwargs)
        finally:
            end_callback()

    return cast(_F, wrapper)


@_scoped
def call_on_start(cls: type[Channel], config_json: str) -> ChannelConfig:
    """Run ``on_start``; any exception becomes ``CallbackFailed`` (the WIT err)."""
    try:
        config = json_object(config_json, "config-json")
        return validate_config(cls().on_start(config))
    except Exception as exc:
        _log_failure("on_start", exc)
        raise CallbackFailed(describe(exc)) from None


@_scoped
def call_on_http_request(
    cls: type[Channel],
    method: str,
    path: str,
    headers_json: str,
    query_json: str,
    body: bytes,
    secret_validated: bool,
) -> tuple[int, str, bytes]:
    """Run ``on_http_request``; returns ``(status, headers_json, body)``. Failures become a 500."""
    try:
        req = Request(
            method=method.upper(),
            path=path,
            headers=string_map(headers_json, lower_keys=True),
            query=string_map(query_json),
            body=bytes(body),
            secret_validated=bool(secret_validated),
        )
        resp = cls().on_http_request(req)
        if not isinstance(resp, Response):
            raise TypeError(f"on_http_request must return a Response, not {type(resp).__name__}")
        status, headers, data = resp.encoded()
        return status, json.dumps(headers), data
    except Exception as exc:
        _log_failure("on_http_request", exc)
        return 500, json.dumps({"content-type": "application/json"}), INTERNAL_ERROR_BODY


def _run_logged(name: str, fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        _log_failure(name, exc)


@_scoped
def call_on_poll(cls: type[Channel]) -> None:
    """Run ``on_poll``; an exception is logged at error level and the callback returns normally."""
    _run_logged("on_poll", lambda: cls().on_poll())


@_scoped
def call_on_status(cls: type[Channel], status: str, message: str, metadata_json: str) -> None:
    def run() -> None:
        cls().on_status(make_status_update(status, message, metadata_json))

    _run_logged("on_status", run)


@_scoped
def call_on_shutdown(cls: type[Channel]) -> None:
    _run_logged("on_shutdown", lambda: cls().on_shutdown())


@_scoped
def call_on_respond(
    cls: type[Channel],
    message_id: str,
    content: str,
    thread_id: str | None,
    metadata_json: str,
    attachments: list[tuple[str, str, bytes]],
) -> str | None:
    """Run ``on_respond``; returns the platform message id it returned (or None). Any exception becomes
    ``CallbackFailed("Type: message")`` (a ``SendError`` keeps its class and its own message)."""
    try:
        return _platform_id(cls().on_respond(make_reply(message_id, content, thread_id, metadata_json, attachments)),
                            "on_respond")
    except Exception as exc:
        raise _delivery_failed("on_respond", exc) from None


@_scoped
def call_on_broadcast(
    cls: type[Channel],
    user_id: str,
    message_id: str,
    content: str,
    thread_id: str | None,
    metadata_json: str,
    attachments: list[tuple[str, str, bytes]],
) -> str | None:
    """Run ``on_broadcast``, as ``call_on_respond``."""
    try:
        reply = make_reply(message_id, content, thread_id, metadata_json, attachments)
        return _platform_id(cls().on_broadcast(user_id, reply), "on_broadcast")
    except Exception as exc:
        raise _delivery_failed("on_broadcast", exc) from None


@_scoped
def call_on_edit(cls: type[Channel], platform_message_id: str, content: str, thread_id: str | None,
                 metadata_json: str) -> None:
    """Run ``on_edit`` (world 0.2.0); failures as ``call_on_respond``'s. Bad metadata is a permanent error."""
    metadata = _delivery_metadata("on_edit", metadata_json)
    try:
        cls().on_edit(MessageEdit(platform_message_id, content, thread_id, metadata))
    except Exception as exc:
        raise _delivery_failed("on_edit", exc) from None


@_scoped
def call_on_react(cls: type[Channel], platform_message_id: str, emoji: str, remove: bool,
                  metadata_json: str) -> None:
    """Run ``on_react`` (world 0.2.0); failures as ``call_on_edit``'s."""
    metadata = _delivery_metadata("on_react", metadata_json)
    try:
        cls().on_react(Reaction(platform_message_id, emoji, bool(remove), metadata))
    except Exception as exc:
        raise _delivery_failed("on_react", exc) from None
