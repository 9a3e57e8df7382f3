"""The platform message id of an emitted message: the key that deduplicates redeliveries.

Platforms redeliver (Telegram re-offers updates until the offset moves, Slack retries an event not answered
within 3 s, Meta retries for days); a guest may emit the same message twice. The host deduplicates by the
platform's own id, read from the emitted metadata with JSON pointers (RFC 6901) named in the capabilities file
(``capabilities.channel.dedupe.id_pointers``), or from the defaults below for the bundled channels and
IronClaw's files. The key is the values of the pointers that resolve, joined with ``/``; a message where none
resolves is not deduplicated. ``id_pointers: []`` turns deduplication off for a channel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

#: Default pointers per channel name (the bundled channels' metadata; IronClaw's channels use the same names).
DEFAULT_POINTERS: dict[str, tuple[str, ...]] = {
    "telegram": ("/chat_id", "/message_id"),
    "slack": ("/channel", "/ts"),
    "discord": ("/channel_id", "/message_id", "/interaction_id"),
    "whatsapp": ("/message_id",),
    "feishu": ("/message_id",),
    "wecom": ("/msgid",),
    "wechat": ("/message_id",),
    "template-rust": ("/message_id",),
}
MAX_KEY_BYTES = 512
"""A key longer than this (bytes) is not used: platform ids are short, and a guest must not grow the index."""


def pointers_for(channel: str, configured: Sequence[str] | None) -> tuple[str, ...]:
    """The pointers in force: the capabilities file's, else the default for ``channel`` (none if unknown)."""
    if configured is not None:
        return tuple(configured)
    return DEFAULT_POINTERS.get(channel, ())


def resolve(doc: Any, pointer: str) -> Any:
    """RFC 6901: the value at ``pointer`` in ``doc``, or None when it does not resolve."""
    if pointer == "":
        return doc
    if not pointer.startswith("/"):
        return None
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            doc = doc.get(token)
        elif isinstance(doc, list) and token.isdigit() and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return None
        if doc is None:
            return None
    return doc


def dedupe_key(metadata_json: str, pointers: Sequence[str]) -> str | None:
    """The dedupe key of a message (module docstring), or None."""
    if not pointers:
        return None
    try:
        doc = json.loads(metadata_json or "{}")
    except (ValueError, RecursionError):  # guest-written JSON: any content, any depth
        return None
    parts = []
    for pointer in pointers:
        value = resolve(doc, pointer)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value) != "":
            parts.append(f"{pointer}={value}")
    key = "/".join(parts)
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        return None
    return key
