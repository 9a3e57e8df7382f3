"""The callbacks' arguments as the SDK's types: the host's JSON texts (config, metadata, headers, query) and WIT
fields made into ``AgentReply``, ``StatusUpdate`` and plain dicts, and ``on_start``'s answer checked for the WIT.

Pure functions with no host call; ``channel``'s dispatch uses them around the author's callbacks. Apart from
``channel`` because they are the data side of the boundary, the same for every callback, while ``channel`` holds
the base class and what each callback does with failures.
"""

from __future__ import annotations

from typing import Any

from . import _json as json
from .types import AgentReply, Attachment, ChannelConfig, Endpoint, Poll, StatusUpdate

#: The largest WIT ``u32`` (the poll interval's type).
U32_MAX = 0xFFFFFFFF


def json_object(raw: str, what: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; empty or blank text is ``{}``. Raises ValueError for bad JSON or another
    JSON type (``what`` names the field in the message)."""
    if not raw or not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def string_map(raw: str, lower_keys: bool = False) -> dict[str, str]:
    """A lenient ``{name: value}`` parse for headers/query JSON: lists are joined, bad JSON is empty.

    ``lower_keys``: lower-case the names (request headers).
    """
    if raw == "{}":  # what the host sends for "no query": skip the parser
        return {}
    out = _str_str_map(raw, lower_keys)
    if out is not None:
        return out
    out = _any_string_map(raw)
    return {k.lower(): v for k, v in out.items()} if lower_keys else out


def _str_str_map(raw: str, lower_keys: bool) -> dict[str, str] | None:
    """The common case, a JSON object of strings, in one pass; None for anything else."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    if type(value) is not dict:
        return None
    for v in value.values():
        if type(v) is not str:
            return None
    if lower_keys:
        return {k.lower(): v for k, v in value.items()}
    return value


def _any_string_map(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw) if raw and raw.strip() else {}
    except ValueError:
        return {}
    out: dict[str, str] = {}
    items: list[Any]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [tuple(p) for p in value if isinstance(p, list | tuple) and len(p) == 2]
    else:
        return {}
    for k, v in items:
        if isinstance(v, list):
            v = ", ".join(map(str, v)) if v else ""
        out[str(k)] = "" if v is None else str(v)
    return out


def validate_config(cfg: Any) -> ChannelConfig:
    """``on_start``'s answer checked and normalised for the WIT record: types, paths starting with ``/``,
    upper-case methods, a poll interval that fits a ``u32``. Raises TypeError or ValueError."""
    if not isinstance(cfg, ChannelConfig):
        raise TypeError(f"on_start must return a ChannelConfig, not {type(cfg).__name__}")
    endpoints: list[Endpoint] = []
    for ep in cfg.endpoints:
        if not isinstance(ep, Endpoint):
            raise TypeError(f"ChannelConfig.endpoints must hold Endpoint, not {type(ep).__name__}")
        if not str(ep.path).startswith("/"):
            raise ValueError(f"endpoint path {ep.path!r} must start with '/'")
        methods = [str(m).upper() for m in ep.methods]
        endpoints.append(Endpoint(path=str(ep.path), methods=methods, require_secret=bool(ep.require_secret)))
    poll: Poll | None = None
    if cfg.poll is not None:
        if not isinstance(cfg.poll, Poll):
            raise TypeError(f"ChannelConfig.poll must be a Poll or None, not {type(cfg.poll).__name__}")
        interval = int(cfg.poll.interval_ms)
        if not 0 <= interval <= U32_MAX:
            raise ValueError(f"poll interval {interval} ms is out of range")
        poll = Poll(interval_ms=interval, enabled=bool(cfg.poll.enabled))
    return ChannelConfig(display_name=str(cfg.display_name), endpoints=endpoints, poll=poll)


def make_reply(
    message_id: str,
    content: str,
    thread_id: str | None,
    metadata_json: str,
    attachments: list[tuple[str, str, bytes]],
) -> AgentReply:
    """Build an ``AgentReply`` from the WIT fields (raises ValueError on bad metadata JSON)."""
    return AgentReply(
        message_id=message_id,
        content=content,
        thread_id=thread_id,
        metadata=json_object(metadata_json, "metadata-json"),
        attachments=[Attachment(filename=f, mime_type=m, data=bytes(d)) for f, m, d in attachments],
    )


def make_status_update(status: str, message: str, metadata_json: str) -> StatusUpdate:
    """Build a ``StatusUpdate`` from the WIT fields (``status`` as ``status_name`` gives it; raises ValueError on
    bad metadata JSON)."""
    return StatusUpdate(status=status, message=message, metadata=json_object(metadata_json, "metadata-json"))


def status_name(wit_enum_name: str) -> str:
    """``TOOL_STARTED`` (generated enum member name) -> ``tool-started``."""
    return wit_enum_name.lower().replace("_", "-")
