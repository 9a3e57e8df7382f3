"""The only module that touches wasmtime component values and WIT kebab-case names.

Records cross as ``wasmtime.component.Record`` objects whose attributes carry the WIT field names with
hyphens; ``option<T>`` is ``None`` or the value; enums are ``str``; ``list<u8>`` is ``bytes``. A
``result<T, E>`` whose cases lower to distinct Python classes is untagged (ok value or err value);
otherwise it is a ``Variant`` (source: wasmtime-py 50.0.1 ``component/_types.py``).
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import Record, Variant

from ..errors import GuestReturnedError
from .values import (
    AgentResponse,
    ChannelConfig,
    EmittedMessage,
    HttpEndpoint,
    HttpResponse,
    InboundAttachment,
    IncomingHttpRequest,
    MessageEdit,
    OutgoingHttpResponse,
    PollConfig,
    Reaction,
    StatusUpdate,
)

MAX_PLATFORM_ID_BYTES = 256
"""The longest platform message id a guest may return (``delivery.on-respond``); a longer one is a guest error."""
MAX_SEND_ERROR_CHARS = 2000
"""A typed send error's text is cut to this many characters (it is logged and stored with the outbox entry)."""


def _record(**fields: Any) -> Record:
    rec = Record()
    for name, value in fields.items():
        setattr(rec, name.replace("_", "-"), value)
    return rec


def _wit_record(fields: dict[str, Any]) -> Record:
    """A ``Record`` from fields already named in kebab case (the per-callback paths: no renaming work)."""
    rec = Record()
    rec.__dict__.update(fields)
    return rec


_get = getattr


# ---- host -> guest (export arguments) ---------------------------------------------------------------


def incoming_request_to_wit(req: IncomingHttpRequest) -> Record:
    return _wit_record({
        "method": req.method, "path": req.path, "headers-json": req.headers_json, "query-json": req.query_json,
        "body": req.body, "secret-validated": req.secret_validated,
    })


def agent_response_to_wit(resp: AgentResponse) -> Record:
    attachments = [
        _record(filename=a.filename, mime_type=a.mime_type, data=a.data) for a in resp.attachments
    ]
    return _record(
        message_id=resp.message_id, content=resp.content, thread_id=resp.thread_id,
        metadata_json=resp.metadata_json, attachments=attachments,
    )


def status_update_to_wit(update: StatusUpdate) -> Record:
    return _record(status=update.status, message=update.message, metadata_json=update.metadata_json)


def message_edit_to_wit(edit: MessageEdit) -> Record:
    return _record(platform_message_id=edit.platform_message_id, content=edit.content, thread_id=edit.thread_id,
                   metadata_json=edit.metadata_json)


def reaction_to_wit(reaction: Reaction) -> Record:
    return _record(platform_message_id=reaction.platform_message_id, emoji=reaction.emoji, remove=reaction.remove,
                   metadata_json=reaction.metadata_json)


# ---- guest -> host (export results) -----------------------------------------------------------------


def channel_config_from_wit(rec: Any) -> ChannelConfig:
    endpoints = tuple(
        HttpEndpoint(
            path=_get(e, "path"), methods=tuple(_get(e, "methods")),
            require_secret=bool(_get(e, "require-secret")),
        )
        for e in _get(rec, "http-endpoints")
    )
    poll_rec = _get(rec, "poll")
    poll = None
    if poll_rec is not None:
        poll = PollConfig(interval_ms=int(_get(poll_rec, "interval-ms")), enabled=bool(_get(poll_rec, "enabled")))
    return ChannelConfig(display_name=_get(rec, "display-name"), http_endpoints=endpoints, poll=poll)


def outgoing_response_from_wit(rec: Any) -> OutgoingHttpResponse:
    return OutgoingHttpResponse(
        status=int(_get(rec, "status")), headers_json=_get(rec, "headers-json"), body=bytes(_get(rec, "body"))
    )


def unit_result_from_wit(value: Any) -> str | None:
    """``result<_, string>`` lifted untagged: ``None`` is ok, a ``str`` is the error."""
    return None if value is None else str(value)


def send_error_from_wit(value: Any) -> GuestReturnedError:
    """``delivery.send-error`` (a ``Variant``: tag and payload) as the error it stands for (``errors``)."""
    tag = str(getattr(value, "tag", "unclassified"))
    payload = getattr(value, "payload", None)
    if tag == "rate-limited":
        seconds = int(_get(payload, "retry-after-secs"))
        text = str(_get(payload, "message"))[:MAX_SEND_ERROR_CHARS]
        return GuestReturnedError(text or f"rate limited for {seconds} s", "rate_limited", float(seconds))
    text = str(payload)[:MAX_SEND_ERROR_CHARS]
    if tag in ("temporary", "permanent"):
        return GuestReturnedError(text, "temporary" if tag == "temporary" else "permanent")
    return GuestReturnedError(text)


def sent_result_from_wit(value: Any) -> tuple[str | None, GuestReturnedError | None]:
    """``result<option<string>, send-error>`` (or ``result<_, send-error>``) lifted untagged (the ok and err cases
    lower to distinct classes): ``(platform message id or None, None)`` on ok, ``(None, error)`` on err. An id over
    :data:`MAX_PLATFORM_ID_BYTES` is the guest's error (permanent: sending again would duplicate the message)."""
    if isinstance(value, Variant):
        return None, send_error_from_wit(value)
    if value is None:
        return None, None
    ident = str(value)
    if len(ident.encode()) > MAX_PLATFORM_ID_BYTES:
        return None, GuestReturnedError(
            f"platform message id longer than {MAX_PLATFORM_ID_BYTES} bytes (the message was sent)", "permanent")
    return ident, None


# ---- guest -> host (import arguments) ---------------------------------------------------------------


def emitted_message_from_wit(rec: Any) -> EmittedMessage:
    attachments = tuple(
        InboundAttachment(
            id=_get(a, "id"), mime_type=_get(a, "mime-type"), filename=_get(a, "filename"),
            size_bytes=_get(a, "size-bytes"), source_url=_get(a, "source-url"),
            storage_key=_get(a, "storage-key"), extracted_text=_get(a, "extracted-text"),
            extras_json=_get(a, "extras-json"),
        )
        for a in _get(rec, "attachments")
    )
    return EmittedMessage(
        user_id=_get(rec, "user-id"), user_name=_get(rec, "user-name"), content=_get(rec, "content"),
        thread_id=_get(rec, "thread-id"), metadata_json=_get(rec, "metadata-json"), attachments=attachments,
    )


# ---- host -> guest (import results) -----------------------------------------------------------------


def http_response_to_wit(resp: HttpResponse) -> Record:
    return _record(status=resp.status, headers_json=resp.headers_json, body=resp.body)


def http_head_to_wit(status: int, headers_json: str, body_length: int) -> Record:
    """``airlock:adapter/http-chunks``'s ``http-head`` (``runtime.adapter``)."""
    return _record(status=status, headers_json=headers_json, body_length=body_length)


def pairing_upsert_to_wit(code: str, created: bool) -> Record:
    return _record(code=code, created=created)


def tagged_ok(value: Any) -> Variant:
    """``ok(value)`` for a result whose ok and err lower to the same Python class."""
    return Variant("ok", value)


def tagged_err(message: str) -> Variant:
    return Variant("err", message)
