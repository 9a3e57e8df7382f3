"""``airlock invoke --input``: parse the JSON given for one callback into the value the guest receives.

:func:`build_call` returns what will be sent (shown in the report) and a function that makes the call on a
:class:`~airlock.channels.channel.Channel`. Every problem is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..manifest import CapabilitiesFile
from ..runtime.engine import CALLBACKS
from ..runtime.values import STATUS_TYPES, AgentResponse, IncomingHttpRequest, StatusUpdate
from . import report

if TYPE_CHECKING:
    from ..channels.channel import CallOutcome, Channel

__all__ = ["INPUT_KEYS", "Call", "build_call"]

#: The keys ``--input`` accepts for each callback that takes an object.
INPUT_KEYS: dict[str, tuple[str, ...]] = {
    "on-http-request": ("method", "path", "headers", "query", "body", "secret_validated"),
    "on-respond": ("content", "metadata", "user_id", "thread_id", "message_id"),
    "on-broadcast": ("content", "metadata", "user_id", "thread_id", "message_id"),
    "on-status": ("status", "message", "metadata"),
}

Call = Callable[["Channel"], "CallOutcome"]


def _field_str(obj: dict[str, Any], key: str, default: str, callback: str) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"--input: {callback}: {key} must be a string")
    return value


def _field_map(obj: dict[str, Any], key: str, callback: str) -> dict[str, str]:
    value = obj.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"--input: {callback}: {key} must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _json_text(obj: dict[str, Any], key: str, callback: str) -> str:
    """``metadata`` as JSON text: an object is serialized, a string is taken as JSON text."""
    value = obj.get(key, {})
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"--input: {callback}: {key} must be a JSON object")
    return json.dumps(value)


def _http_call(caps: CapabilitiesFile, obj: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    cb = "on-http-request"
    paths = caps.capabilities.channel.allowed_paths
    body: Any = obj.get("body", "")
    if not isinstance(body, str):
        body = json.dumps(body)
    validated = obj.get("secret_validated", False)
    if not isinstance(validated, bool):
        raise ConfigError(f"--input: {cb}: secret_validated must be true or false")
    req = IncomingHttpRequest(
        method=_field_str(obj, "method", "POST", cb).upper(),
        path=_field_str(obj, "path", paths[0] if paths else f"/webhook/{caps.name}", cb),
        headers_json=json.dumps({k.lower(): v for k, v in _field_map(obj, "headers", cb).items()}),
        query_json=json.dumps(_field_map(obj, "query", cb)), body=body.encode("utf-8"),
        secret_validated=validated,
    )
    shown = {"method": req.method, "path": req.path, "headers": json.loads(req.headers_json),
             "query": json.loads(req.query_json), "body": body, "secret_validated": validated}
    return shown, lambda ch: ch.http_request(req)


def _response_call(callback: str, obj: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    thread = obj.get("thread_id")
    if thread is not None and not isinstance(thread, str):
        raise ConfigError(f"--input: {callback}: thread_id must be a string")
    resp = AgentResponse(
        message_id=_field_str(obj, "message_id", "invoke-1", callback),
        content=_field_str(obj, "content", "hello from airlock invoke", callback), thread_id=thread,
        metadata_json=_json_text(obj, "metadata", callback),
    )
    shown: dict[str, Any] = {"message_id": resp.message_id, "content": resp.content, "thread_id": thread,
                             "metadata": report.json_or_text(resp.metadata_json)}
    if callback == "on-respond":
        return shown, lambda ch: ch.respond(resp)
    user = _field_str(obj, "user_id", "user", callback)
    shown["user_id"] = user
    return shown, lambda ch: ch.broadcast(user, resp)


def _status_call(obj: dict[str, Any]) -> tuple[dict[str, Any], Call]:
    cb = "on-status"
    update = StatusUpdate(
        status=_field_str(obj, "status", "thinking", cb), message=_field_str(obj, "message", "", cb),
        metadata_json=_json_text(obj, "metadata", cb),
    )
    if update.status not in STATUS_TYPES:
        choices = ", ".join(STATUS_TYPES)
        raise ConfigError(f"--input: on-status: status {update.status!r} is not one of {choices}")
    shown = {"status": update.status, "message": update.message,
             "metadata": report.json_or_text(update.metadata_json)}
    return shown, lambda ch: ch.status(update)


def build_call(callback: str, input_json: str | None, caps: CapabilitiesFile) -> tuple[dict[str, Any], Call]:
    """Parse ``--input`` for ``callback``; return what will be sent (for the report) and the call."""
    if callback not in CALLBACKS:
        raise ConfigError(f"unknown callback {callback!r} (one of {', '.join(CALLBACKS)})")
    data: Any = None
    if input_json is not None:
        try:
            data = json.loads(input_json)
        except ValueError as exc:
            raise ConfigError(f"--input: invalid JSON: {exc}") from None
    if callback == "on-start":
        config = caps.config if data is None else data
        if not isinstance(config, dict):
            raise ConfigError("--input: on-start takes the config object (a JSON object)")
        return {"config": config}, lambda ch: ch.start(json.dumps(config))
    if callback in ("on-poll", "on-shutdown"):
        if data not in (None, {}):
            raise ConfigError(f"--input: {callback} takes no input")
        return {}, (lambda ch: ch.poll()) if callback == "on-poll" else (lambda ch: ch.shutdown())
    obj = {} if data is None else data
    if not isinstance(obj, dict):
        raise ConfigError(f"--input: {callback} takes a JSON object")
    unknown = sorted(set(obj) - set(INPUT_KEYS[callback]))
    if unknown:
        raise ConfigError(f"--input: {callback}: unknown key {unknown[0]!r} "
                          f"(expected {', '.join(INPUT_KEYS[callback])})")
    if callback == "on-http-request":
        return _http_call(caps, obj)
    if callback == "on-status":
        return _status_call(obj)
    return _response_call(callback, obj)
