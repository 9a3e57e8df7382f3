"""Airlock guest SDK for Python channels (bundled into the component by componentize-py).

A channel is one class::

    from airlock_sdk import Channel, ChannelConfig, Poll, export, host

    class Echo(Channel):
        def on_start(self, config):
            return ChannelConfig(display_name="Echo", poll=Poll(interval_ms=30_000))

        def on_poll(self):
            host.info("tick")

    Channel = export(Echo)   # last line of the app module given to componentize-py

World 0.2.0 adds optional exports, each bound to its own name and built against a world that has it:
``Delivery = export_delivery(Echo)`` (on_respond returns the platform message id; raise ``RateLimited``,
``TemporaryError`` or ``PermanentError`` to tell the host how to retry), ``Edits = export_edits(Echo)`` (on_edit) and
``Reactions = export_reactions(Echo)`` (on_react).

Every callback runs on a fresh instance; an uncaught exception becomes a defined failure (500 for a
webhook, an error result for on_start/on_respond/on_broadcast, an error log line otherwise).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from . import host
from .channel import Channel
from .errors import (
    AttachmentError,
    HostError,
    HttpError,
    PairingError,
    PermanentError,
    RateLimited,
    SendError,
    TemporaryError,
    WebsocketError,
    WorkspaceError,
)
from .host import (
    debug,
    emit,
    error,
    http,
    info,
    log,
    now_millis,
    pairing_allow_from,
    pairing_resolve,
    pairing_upsert,
    secret_exists,
    store_attachment,
    trace,
    warn,
    websocket_send,
    workspace_read,
    workspace_read_json,
    workspace_write,
    workspace_write_json,
)
from .types import (
    AgentReply,
    Attachment,
    ChannelConfig,
    Endpoint,
    HttpResponse,
    InboundAttachment,
    Message,
    MessageEdit,
    Poll,
    Reaction,
    Request,
    Response,
    Status,
    StatusUpdate,
)

__version__ = "0.2.0"


#: The modules componentize-py generates for a component build; absent on plain CPython.
_BINDINGS = frozenset({"componentize_py_types", "wit_world"})


def _without_bindings(exc: ModuleNotFoundError) -> bool:
    """True when ``exc`` only says that this is plain CPython (no component build, no generated bindings)."""
    return sys.platform != "wasi" and exc.name in _BINDINGS


def export(cls: type[Channel]) -> type[Any]:
    """Wrap a ``Channel`` subclass as the class componentize-py exports.

    Bind the result to the name ``Channel`` in the app module: ``Channel = export(MyChannel)``. In a
    component build it imports the generated ``wit_world`` bindings. On plain CPython, where they do not
    exist (unit tests, ``airlock_sdk.testing``), it returns ``cls`` unchanged, so the app module imports.
    """
    if not (isinstance(cls, type) and issubclass(cls, Channel)):
        raise TypeError("export() takes a subclass of airlock_sdk.Channel")
    try:
        from ._wit import make_export
    except ModuleNotFoundError as exc:
        if not _without_bindings(exc):
            raise
        return cls
    return make_export(cls)


def _optional(cls: type[Channel], interface: str) -> type[Any]:
    if not (isinstance(cls, type) and issubclass(cls, Channel)):
        raise TypeError(f"export_{interface}() takes a subclass of airlock_sdk.Channel")
    try:
        from ._wit import make_optional_export
    except ModuleNotFoundError as exc:
        if not _without_bindings(exc):
            raise
        return cls
    return make_optional_export(cls, interface)


def export_delivery(cls: type[Channel]) -> type[Any]:
    """World 0.2.0: export ``delivery`` (``on_respond`` / ``on_broadcast`` return the platform message id; a
    ``SendError`` raised by them reaches the host with its class). Bind it to ``Delivery`` in the app module and
    build against ``airlock:channel/delivering-channel`` (or a world that includes it). On plain CPython it returns
    ``cls``."""
    return _optional(cls, "delivery")


def export_edits(cls: type[Channel]) -> type[Any]:
    """World 0.2.0: export ``edits`` (``on_edit``: streamed replies become edits). Bind it to ``Edits``; build
    against ``airlock:channel/editing-channel`` (with ``Delivery = export_delivery(cls)`` too)."""
    return _optional(cls, "edits")


def export_reactions(cls: type[Channel]) -> type[Any]:
    """World 0.2.0: export ``reactions`` (``on_react``). Bind it to ``Reactions``; build against
    ``airlock:channel/reacting-channel`` or ``interactive-channel``."""
    return _optional(cls, "reactions")


def prewarm(
    exported: type[Any], requests: Sequence[Request], workspace: dict[str, str] | None = None, rounds: int = 3
) -> None:
    """Run made-up ``requests`` through ``exported`` (what ``export`` returned) at build time, so the
    component's snapshot holds warm interpreter state and every callback is cheaper.

    Only inside a component build; call it last in the app module. See ``airlock_sdk._wit.prewarm``:
    the host is in memory (``workspace``: path -> content; no HTTP, pairing or websocket), nothing leaves
    it, and the data stays in the snapshot, so never pass secrets or real users' data. On plain CPython
    (no component build) it does nothing.
    """
    try:
        from ._wit import prewarm as _prewarm
    except ModuleNotFoundError as exc:
        if not _without_bindings(exc):
            raise
        return

    _prewarm(exported, requests, workspace, rounds)


__all__ = [
    "AgentReply",
    "Attachment",
    "AttachmentError",
    "Channel",
    "ChannelConfig",
    "Endpoint",
    "HostError",
    "HttpError",
    "HttpResponse",
    "InboundAttachment",
    "Message",
    "MessageEdit",
    "PairingError",
    "PermanentError",
    "Poll",
    "RateLimited",
    "Reaction",
    "Request",
    "Response",
    "SendError",
    "Status",
    "StatusUpdate",
    "TemporaryError",
    "WebsocketError",
    "WorkspaceError",
    "debug",
    "emit",
    "error",
    "export",
    "export_delivery",
    "export_edits",
    "export_reactions",
    "host",
    "http",
    "info",
    "log",
    "now_millis",
    "pairing_allow_from",
    "pairing_resolve",
    "pairing_upsert",
    "prewarm",
    "secret_exists",
    "store_attachment",
    "trace",
    "warn",
    "websocket_send",
    "workspace_read",
    "workspace_read_json",
    "workspace_write",
    "workspace_write_json",
]
