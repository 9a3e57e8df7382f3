"""Probes of the compat test channel: a webhook body ``{"probe": {"kind": ..., ...}}`` makes the guest call host
functions the way an IronClaw channel would, through the raw WIT backend (no SDK convenience in between: the
SDK truncates logs and serializes pairing meta itself, which would hide what the host does), and emit one message
from user ``probe`` whose content is the JSON of what each call answered: ``{"ok": value}`` or ``{"err": text}``.

Kinds (fields):
- ``log`` (``entries``: [[level, text], ...], or ``repeat``: N and ``text``): log them; answers how many were sent.
- ``now``: ``now-millis``.
- ``secrets`` (``names``): ``secret-exists`` for each.
- ``attach`` (``ops``: [[id, size], ...], ``emit``: [[id, mime], ...]): ``store-attachment-data`` of ``size``
  bytes (``id`` repeated) for each op, then the result message carries attachments with the ``emit`` ids.
- ``emit`` (``text``): emits ``text`` from user ``long`` first (``emit-message``), then the answers.
- ``pairing`` (``ops``: [["upsert", channel, id, meta_json] | ["resolve", channel, id] | ["allow", channel]]).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airlock_sdk import InboundAttachment, Message, host
from airlock_sdk.errors import HostCallError


def _answer(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"ok": fn()}
    except HostCallError as exc:
        return {"err": exc.message}


def _log(spec: dict[str, Any]) -> list[Any]:
    backend = host.get_backend()
    entries = spec.get("entries") or [["info", spec.get("text", "")]] * int(spec.get("repeat", 0))
    for level, text in entries:
        backend.log(level, text)
    return [len(entries)]


def _attach(spec: dict[str, Any]) -> list[Any]:
    backend = host.get_backend()
    return [_answer(lambda i=i, n=n: backend.store_attachment_data(i, bytes(n)) or "stored") for i, n in spec["ops"]]


def _pairing(spec: dict[str, Any]) -> list[Any]:
    backend = host.get_backend()
    calls: dict[str, Callable[..., Any]] = {
        "upsert": lambda ch, i, meta: list(backend.pairing_upsert_request(ch, i, meta)),
        "resolve": backend.pairing_resolve_identity,
        "allow": backend.pairing_read_allow_from,
    }
    return [_answer(lambda op=op: calls[op[0]](*op[1:])) for op in spec["ops"]]


def _emit(spec: dict[str, Any]) -> list[Any]:
    host.emit(Message(user_id="long", content=spec["text"]))
    return [len(spec["text"].encode())]


PROBES: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "emit": _emit,
    "log": _log,
    "now": lambda spec: [host.get_backend().now_millis()],
    "secrets": lambda spec: [host.get_backend().secret_exists(n) for n in spec["names"]],
    "attach": _attach,
    "pairing": _pairing,
}


def run_probe(spec: dict[str, Any]) -> None:
    """Run the probe ``spec`` and emit its answers (module docstring)."""
    answers = PROBES[spec["kind"]](spec)
    attachments = [InboundAttachment(id=i, mime_type=mime, filename=f"{i}.bin") for i, mime in spec.get("emit", [])]
    host.emit(Message(user_id="probe", content=json.dumps(answers), metadata={"probe": spec["kind"]},
                      attachments=attachments))
