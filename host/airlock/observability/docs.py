"""Writing a callback down for people: JSON-able values, control characters escaped, secret values redacted,
the failure's class. Shared by the recent-call documents and the admin console; the same rules as
``airlock invoke``'s report (kept here, in the runtime package, so the host does not import the CLI).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import AirlockError, GuestError, GuestReturnedError, GuestTrap, HostBug

__all__ = ["MAX_SHOWN", "MIN_REDACTED_CHARS", "json_or_text", "jsonable", "redact", "safe", "trap_class"]

MAX_SHOWN = 2000
"""Longest workspace value or message content shown, in characters (the rest is cut with "…")."""
MIN_REDACTED_CHARS = 4
"""Secret values shorter than this are not redacted: they would erase ordinary words."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str, limit: int | None = None) -> str:
    """``text`` cut to ``limit`` characters (with "…"), control characters but newline and tab as ``\\xNN``."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def jsonable(value: Any) -> Any:
    """Dataclasses, mappings, tuples and bytes as JSON values (bytes: UTF-8 text, else ``{"base64": ...}``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def json_or_text(text: str) -> Any:
    """``text`` parsed as JSON if it is JSON, else ``text``."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def redact(doc: Any, secrets: Mapping[str, str]) -> Any:
    """A copy of ``doc`` (JSON values) with every value of ``secrets`` (name -> value, at least
    ``MIN_REDACTED_CHARS`` long) in any string, key or value, replaced by ``[REDACTED:name]``."""
    pairs = sorted(((v, k) for k, v in secrets.items() if len(v) >= MIN_REDACTED_CHARS), key=lambda p: -len(p[0]))
    if not pairs:
        return doc

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            for secret, name in pairs:
                if secret in value:
                    value = value.replace(secret, f"[REDACTED:{name}]")
            return value
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(doc)


def trap_class(error: AirlockError | None) -> str | None:
    """How a callback failed: a ``GuestTrap.kind``, ``host-bug``, ``returned-error``, ``guest-error``, or the
    error's class name (``SandboxBusy``, ``EmitRateLimited``); None if it did not."""
    if error is None:
        return None
    if isinstance(error, GuestTrap):
        return error.kind
    if isinstance(error, HostBug):
        return "host-bug"
    if isinstance(error, GuestReturnedError):
        return "returned-error"
    if isinstance(error, GuestError):
        return "guest-error"
    return type(error).__name__
