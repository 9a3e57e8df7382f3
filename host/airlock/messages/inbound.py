"""From what a callback emitted to log entries: admission, attachments to blobs, the dedupe key, the route.

``InboundPipeline.prepare`` runs on the callback's worker thread after the guest succeeded and before the commit:
its entries are appended in the same transaction as the callback's durable workspace writes
(``capabilities.workspace.Workspace.commit`` -> ``MessageLog.commit``), so an acknowledged webhook's message is on
disk before the platform hears 200, and a poll cursor never moves past a message that is not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..channels.admission import PairedLookup, admit
from ..runtime.values import EmittedMessage
from .blobs import Blobs
from .dedupe import dedupe_key, pointers_for
from .model import AttachmentRef, NewEntry, Route
from .routing import route, route_input_from
from .routing_models import RoutingConfig

log = logging.getLogger("airlock.messages")


class Router(Protocol):
    """Chooses the agent, session key and conversation of a message (``messages.routing`` bindings)."""

    def route(self, platform: str, instance: str, msg: EmittedMessage) -> Route: ...


class BindingRouter:
    """Routing by the host config's bindings (``messages.routing``): the agent and session key of the winning
    binding; one conversation per ``<instance>:<peer kind>:<peer id>`` (a thread is its own conversation), which
    orders delivery."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config

    def route(self, platform: str, instance: str, msg: EmittedMessage) -> Route:
        try:
            inp = route_input_from(platform, instance, msg.user_id or "?", msg.thread_id,
                                   _metadata(msg.metadata_json))
        except ValueError:  # guest-chosen values routing cannot place: a DM from the sender, never a shared chat
            inp = route_input_from("", instance, msg.user_id or "?", None, {})
        result = route(self.config, inp)
        return Route(agent=result.agent, session_key=result.session_key,
                     conversation=f"{instance}:{inp.peer_kind}:{inp.peer_id}",
                     matched_on=result.matched_on if result.binding_index is None
                     else f"{result.matched_on} (binding #{result.binding_index})")


def _metadata(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):  # guest-written JSON: any content, any depth
        return {}
    return value if isinstance(value, dict) else {}


class InboundPipeline:
    """Turns a callback's emitted messages into log entries (module docstring). Thread-safe (stateless apart
    from the blob store, whose writes are idempotent)."""

    def __init__(self, router: Router, blobs: Blobs) -> None:
        self.router = router
        self.blobs = blobs

    def prepare(self, instance: str, platform: str, config: Mapping[str, Any], paired: PairedLookup,
                dedupe_pointers: Sequence[str] | None, messages: Sequence[EmittedMessage],
                attachment_data: Callable[[str], bytes | None]) -> list[NewEntry]:
        """One entry per admitted message, in order. ``attachment_data(id)`` gives the bytes a guest stored for an
        attachment in this callback (None when it stored none)."""
        pointers = pointers_for(platform, dedupe_pointers)
        entries = []
        for msg in messages:
            if not admit(instance, config, paired, msg):
                continue
            entries.append(NewEntry(
                instance=instance, user_id=msg.user_id, user_name=msg.user_name, thread_id=msg.thread_id,
                content=msg.content, metadata_json=msg.metadata_json,
                route=self.router.route(platform, instance, msg), dedupe_key=dedupe_key(msg.metadata_json, pointers),
                attachments=tuple(self._attachment(a, attachment_data) for a in msg.attachments),
            ))
        return entries

    def _attachment(self, a: Any, data: Callable[[str], bytes | None]) -> AttachmentRef:
        raw = data(a.id)
        digest = self.blobs.put(raw) if raw is not None else None
        return AttachmentRef(id=a.id, mime_type=a.mime_type, filename=a.filename,
                             size=len(raw) if raw is not None else a.size_bytes, sha256=digest,
                             source_url=a.source_url, extracted_text=a.extracted_text)
