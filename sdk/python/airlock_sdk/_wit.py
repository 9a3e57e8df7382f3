"""The only module that touches componentize-py's generated bindings (``wit_world``).

It works for both worlds with the same interface shape, ``airlock:channel/sandboxed-channel@0.1.0`` and
``near:agent/sandboxed-channel@0.3.1``: componentize-py generates the same module layout for both.
Everything else in the SDK is plain Python.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from componentize_py_types import Err  # type: ignore[import-not-found]
from wit_world import exports  # type: ignore[import-not-found]
from wit_world.exports import channel as wit_channel  # type: ignore[import-not-found]
from wit_world.imports import channel_host as wit_host  # type: ignore[import-not-found]

from . import _json, _stdio, host
from . import channel as _ch
from .errors import HostCallError
from .types import Request

__all__ = ["BACKEND", "PRELOADED", "WitBackend", "make_export", "make_optional_export", "prewarm"]

# A componentize-py component has no filesystem at run time: only modules imported while the app
# module was loaded at build time exist. Pre-import stdlib modules that plugins commonly reach for
# lazily (codecs looked up by name, urllib.parse, base64...), so they do not fail inside a callback.
_PRELOAD = (
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8_sig",
    "encodings.utf_16",
    "encodings.utf_16_le",
    "encodings.utf_16_be",
    "urllib.parse",
    "base64",
)
if sys.platform == "wasi":  # inside the component (not when tests import this on CPython)
    sys.stdout = _stdio.STDOUT
    sys.stderr = _stdio.STDERR

PRELOADED: list[str] = []
for _name in _PRELOAD:
    try:
        importlib.import_module(_name)
        PRELOADED.append(_name)
    except ImportError:
        pass


def _err_text(exc: Any) -> str:
    value = getattr(exc, "value", exc)
    return value if isinstance(value, str) else str(value)


class WitBackend:
    """``host.HostBackend`` over the generated ``channel_host`` functions."""

    def log(self, level: str, message: str) -> None:
        wit_host.log(wit_host.LogLevel[level.upper()], message)

    def now_millis(self) -> int:
        return int(wit_host.now_millis())

    def workspace_read(self, path: str) -> str | None:
        result: str | None = wit_host.workspace_read(path)
        return result

    def workspace_write(self, path: str, content: str) -> None:
        try:
            wit_host.workspace_write(path, content)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None

    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> tuple[int, str, bytes]:
        try:
            resp = wit_host.http_request(method, url, headers_json, body, timeout_ms)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None
        return int(resp.status), str(resp.headers_json), bytes(resp.body)

    def secret_exists(self, name: str) -> bool:
        return bool(wit_host.secret_exists(name))

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        try:
            wit_host.store_attachment_data(attachment_id, data)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None

    def emit_message(self, msg: dict[str, Any]) -> None:
        wit_host.emit_message(_emitted_record(msg))

    def websocket_send_text(self, payload: str) -> None:
        try:
            wit_host.websocket_send_text(payload)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None

    def pairing_upsert_request(self, channel: str, id: str, meta_json: str) -> tuple[str, bool]:
        try:
            res = wit_host.pairing_upsert_request(channel, id, meta_json)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None
        return str(res.code), bool(res.created)

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        try:
            res: str | None = wit_host.pairing_resolve_identity(channel, external_id)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None
        return res

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        try:
            res = wit_host.pairing_read_allow_from(channel)
        except Err as exc:
            raise HostCallError(_err_text(exc)) from None
        return [str(x) for x in res]


def _emitted_record(msg: dict[str, Any]) -> Any:
    attachments = [wit_host.InboundAttachment(**a) for a in msg["attachments"]]
    fields = dict(msg, attachments=attachments)
    return wit_host.EmittedMessage(**fields)


BACKEND = WitBackend()


class _WarmUpBackend(WitBackend):
    """The host seen during ``prewarm`` (at build time, where host imports cannot be called): an
    in-memory workspace, no outbound HTTP (``HttpError``), no pairing, no websocket; logs and emitted
    messages are built as for the real host, then dropped."""

    def __init__(self, workspace: dict[str, str]) -> None:
        self.workspace = dict(workspace)

    def log(self, level: str, message: str) -> None:
        wit_host.LogLevel[level.upper()]

    def now_millis(self) -> int:
        return 0

    def workspace_read(self, path: str) -> str | None:
        return self.workspace.get(path)

    def workspace_write(self, path: str, content: str) -> None:
        self.workspace[path] = content

    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> tuple[int, str, bytes]:
        raise HostCallError("no outbound HTTP while pre-warming")

    def secret_exists(self, name: str) -> bool:
        return False

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        pass

    def emit_message(self, msg: dict[str, Any]) -> None:
        _emitted_record(msg)

    def websocket_send_text(self, payload: str) -> None:
        raise HostCallError("no websocket while pre-warming")

    def pairing_upsert_request(self, channel: str, id: str, meta_json: str) -> tuple[str, bool]:
        raise HostCallError("no pairing while pre-warming")

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        raise HostCallError("no pairing while pre-warming")

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        raise HostCallError("no pairing while pre-warming")


def prewarm(
    exported: type[Any], requests: Sequence[Request], workspace: dict[str, str] | None = None, rounds: int = 3
) -> None:
    """Run ``requests`` through the exported channel at build time so the snapshot holds warm code.

    Why: componentize-py snapshots the interpreter after the app module is imported, and every callback
    starts from that snapshot. Code first run in a callback pays CPython's warm-up (adaptive bytecode
    specialisation, type and method caches) on every callback; code already run here does not. This cut
    the Telegram webhook callback by ~20% of its wasm instructions.

    Each request (made-up data only: it stays in the snapshot's memory) goes ``rounds`` times through
    ``exported().on_http_request`` with an in-memory host (``workspace``: path -> content; outbound HTTP,
    pairing and websocket calls fail as the real host's errors would; logs and emits are dropped). Then the
    real backend is installed, garbage is collected and the survivors are frozen (``gc.freeze``) so a
    collection during a callback does not walk the snapshot's objects. Call it last in the app module.
    Raises whatever the channel raises outside its own error handling (a bug to fix before shipping).
    """
    warm = _WarmUpBackend(workspace or {})
    previous = host.set_backend(warm)
    try:
        instance = exported()
        for _ in range(rounds):
            for req in requests:
                wit_req = wit_channel.IncomingHttpRequest(
                    method=req.method,
                    path=req.path,
                    headers_json=_json.dumps(req.headers),
                    query_json=_json.dumps(req.query),
                    body=bytes(req.body),
                    secret_validated=req.secret_validated,
                )
                instance.on_http_request(wit_req)
    finally:
        host.set_backend(previous if previous is not None else BACKEND)
    gc.collect()
    gc.freeze()


def _attachments(response: Any) -> list[tuple[str, str, bytes]]:
    return [(a.filename, a.mime_type, bytes(a.data)) for a in response.attachments]


def make_export(cls: type[_ch.Channel]) -> type[Any]:
    """The class componentize-py calls: it must be bound to the name ``Channel`` in the app module."""

    class Channel(exports.Channel):  # type: ignore[misc]
        def on_start(self, config_json: str) -> Any:
            try:
                cfg = _ch.call_on_start(cls, config_json)
            except _ch.CallbackFailed as exc:
                raise Err(exc.message) from None
            return wit_channel.ChannelConfig(
                display_name=cfg.display_name,
                http_endpoints=[
                    wit_channel.HttpEndpointConfig(
                        path=ep.path, methods=list(ep.methods), require_secret=ep.require_secret
                    )
                    for ep in cfg.endpoints
                ],
                poll=None
                if cfg.poll is None
                else wit_channel.PollConfig(interval_ms=cfg.poll.interval_ms, enabled=cfg.poll.enabled),
            )

        def on_http_request(self, req: Any) -> Any:
            status, headers_json, body = _ch.call_on_http_request(
                cls,
                req.method,
                req.path,
                req.headers_json,
                req.query_json,
                bytes(req.body),
                bool(req.secret_validated),
            )
            return wit_channel.OutgoingHttpResponse(status=status, headers_json=headers_json, body=body)

        def on_poll(self) -> None:
            _ch.call_on_poll(cls)

        def on_respond(self, response: Any) -> None:
            try:
                _ch.call_on_respond(
                    cls,
                    response.message_id,
                    response.content,
                    response.thread_id,
                    response.metadata_json,
                    _attachments(response),
                )
            except _ch.CallbackFailed as exc:
                raise Err(exc.message) from None

        def on_status(self, update: Any) -> None:
            _ch.call_on_status(cls, _ch.status_name(update.status.name), update.message, update.metadata_json)

        def on_broadcast(self, user_id: str, response: Any) -> None:
            try:
                _ch.call_on_broadcast(
                    cls,
                    user_id,
                    response.message_id,
                    response.content,
                    response.thread_id,
                    response.metadata_json,
                    _attachments(response),
                )
            except _ch.CallbackFailed as exc:
                raise Err(exc.message) from None

        def on_shutdown(self) -> None:
            _ch.call_on_shutdown(cls)

    Channel.__qualname__ = Channel.__name__ = "Channel"
    Channel.__doc__ = f"componentize-py export wrapping {cls.__module__}.{cls.__qualname__}"
    return Channel


# ---- world 0.2.0's optional exports (delivery, edits, reactions) -------------------------------------------


def _send_error(exc: _ch.CallbackFailed) -> Any:
    """The ``delivery.send-error`` of a failed callback (its class from ``airlock_sdk.errors.SendError``)."""
    from wit_world.exports import delivery as wit_delivery

    if exc.send_class == "rate-limited":
        return wit_delivery.SendError_RateLimited(wit_delivery.RateLimit(exc.retry_after, exc.message))
    if exc.send_class == "temporary":
        return wit_delivery.SendError_Temporary(exc.message)
    if exc.send_class == "permanent":
        return wit_delivery.SendError_Permanent(exc.message)
    return wit_delivery.SendError_Unclassified(exc.message)


def _delivery_export(cls: type[_ch.Channel]) -> type[Any]:
    class Delivery(exports.Delivery):  # type: ignore[misc]
        def on_respond(self, response: Any) -> str | None:
            try:
                return _ch.call_on_respond(cls, response.message_id, response.content, response.thread_id,
                                           response.metadata_json, _attachments(response))
            except _ch.CallbackFailed as exc:
                raise Err(_send_error(exc)) from None

        def on_broadcast(self, user_id: str, response: Any) -> str | None:
            try:
                return _ch.call_on_broadcast(cls, user_id, response.message_id, response.content, response.thread_id,
                                             response.metadata_json, _attachments(response))
            except _ch.CallbackFailed as exc:
                raise Err(_send_error(exc)) from None

    return Delivery


def _edits_export(cls: type[_ch.Channel]) -> type[Any]:
    class Edits(exports.Edits):  # type: ignore[misc]
        def on_edit(self, edit: Any) -> None:
            try:
                _ch.call_on_edit(cls, edit.platform_message_id, edit.content, edit.thread_id, edit.metadata_json)
            except _ch.CallbackFailed as exc:
                raise Err(_send_error(exc)) from None

    return Edits


def _reactions_export(cls: type[_ch.Channel]) -> type[Any]:
    class Reactions(exports.Reactions):  # type: ignore[misc]
        def on_react(self, reaction: Any) -> None:
            try:
                _ch.call_on_react(cls, reaction.platform_message_id, reaction.emoji, bool(reaction.remove),
                                  reaction.metadata_json)
            except _ch.CallbackFailed as exc:
                raise Err(_send_error(exc)) from None

    return Reactions


_OPTIONAL = {"delivery": _delivery_export, "edits": _edits_export, "reactions": _reactions_export}


def make_optional_export(cls: type[_ch.Channel], interface: str) -> type[Any]:
    """The class componentize-py calls for world 0.2.0's optional interface ``interface`` ("delivery", "edits" or
    "reactions"); bind it to ``Delivery`` / ``Edits`` / ``Reactions`` in the app module. The component must be built
    against a world that exports the interface (``airlock:channel/delivering-channel``, ``editing-channel``,
    ``reacting-channel``, ``interactive-channel``)."""
    made = _OPTIONAL[interface](cls)
    name = made.__name__
    made.__qualname__ = name
    made.__doc__ = f"componentize-py export of {interface} wrapping {cls.__module__}.{cls.__qualname__}"
    return made
