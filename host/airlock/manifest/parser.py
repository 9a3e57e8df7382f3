"""Reading a capabilities file (``<name>.capabilities.json``) into :class:`~airlock.manifest.CapabilitiesFile`.

* unknown keys never fail: each one is logged as a warning on the ``airlock.manifest`` logger, naming the
  file and its JSON path, and is dropped. A few sections are extension points whose extra keys are kept
  (in ``model_extra``) without a warning: ``setup``, ``capabilities.websocket`` and
  ``capabilities.channel.webhook``;
* wrong types, missing required keys and values outside their limits raise
  :class:`~airlock.errors.CapabilitiesError` whose message is one line:
  ``<file>: <json path>: <problem>``, e.g. ``x.json: $.capabilities.http.allowlist[0].host: ...``.
  Types are checked strictly: ``"30"`` is not an integer and ``true`` is not a number.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import CapabilitiesError
from .base import MAX_CAPABILITIES_FILE_BYTES, one_line
from .document import CapabilitiesFile

__all__ = ["load_capabilities", "parse_capabilities"]

log = logging.getLogger("airlock.manifest")


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _json_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn a pydantic error location into a JSON path, dropping discriminator tags.

    ``data`` is the raw JSON so that union tags pydantic inserts (``('location', 'header', 'name')``)
    can be told apart from real keys.
    """
    path = "$"
    cur: Any = data
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            cur = cur[part] if isinstance(cur, list) and -len(cur) <= part < len(cur) else None
            continue
        if isinstance(cur, dict) and part not in cur and cur.get("type") == part and i + 1 < len(loc):
            continue  # a discriminated-union tag, not a key
        path = _key_path(path, part)
        cur = cur.get(part) if isinstance(cur, dict) else None
    return path


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _problem(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid value"))
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    if kind.endswith("_type") or kind in {"model_attributes_type", "dict_type", "list_type"}:
        msg = f"{msg} (got {_json_type(err.get('input'))})"
    return one_line(msg)


def _walk_extras(model: BaseModel, path: str) -> Iterator[tuple[str, BaseModel]]:
    """Yield ``(json path, model)`` for ``model`` and every model nested in its declared fields."""
    yield path, model
    for field in type(model).model_fields:
        yield from _walk_value(getattr(model, field), _key_path(path, field))


def _walk_value(value: Any, path: str) -> Iterator[tuple[str, BaseModel]]:
    if isinstance(value, BaseModel):
        yield from _walk_extras(value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_value(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _walk_value(item, _key_path(path, str(k)))


def _drop_unknown_keys(doc: CapabilitiesFile, source: str) -> None:
    for path, model in _walk_extras(doc, "$"):
        extra = model.__pydantic_extra__
        if not extra or getattr(model, "keeps_extra", False):
            continue
        for key in sorted(extra):
            log.warning("%s: %s: unknown key ignored", source, _key_path(path, key))
        extra.clear()


def parse_capabilities(data: bytes | str, source: str) -> CapabilitiesFile:
    """Parse and validate a capabilities file's text.

    ``data`` is UTF-8 JSON (a leading BOM is tolerated), at most :data:`MAX_CAPABILITIES_FILE_BYTES`.
    ``source`` names the file in messages (usually its path).

    Unknown keys are warned about on the ``airlock.manifest`` logger and dropped (see the module docstring).

    Raises:
        CapabilitiesError: invalid UTF-8, invalid JSON (message names line and column), a top level that
            is not an object, or a validation failure. The message is one line,
            ``<source>: <json path>: <problem>``; when several problems exist the first is reported and
            the count of the others is appended.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_CAPABILITIES_FILE_BYTES:
        raise CapabilitiesError(
            f"{source}: $: file is {len(raw)} bytes, larger than the {MAX_CAPABILITIES_FILE_BYTES} limit"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CapabilitiesError(f"{source}: $: not valid UTF-8 at byte {e.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise CapabilitiesError(
            f"{source}: line {e.lineno} column {e.colno}: invalid JSON: {one_line(e.msg)}"
        ) from None
    if not isinstance(obj, dict):
        raise CapabilitiesError(f"{source}: $: expected a JSON object (got {_json_type(obj)})")
    try:
        doc = CapabilitiesFile.model_validate(obj)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = errors[0]
        msg = f"{source}: {_json_path(tuple(first['loc']), obj)}: {_problem(first)}"
        if len(errors) > 1:
            more = len(errors) - 1
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise CapabilitiesError(msg) from None
    _drop_unknown_keys(doc, source)
    return doc


def load_capabilities(path: Path) -> CapabilitiesFile:
    """Read and validate a capabilities file from disk (see :func:`parse_capabilities`).

    Logs a warning if the file name is not ``<name>.capabilities.json`` for the ``name`` inside.

    Raises:
        CapabilitiesError: the file cannot be read, or is too large, or is invalid (one-line message).
    """
    source = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CAPABILITIES_FILE_BYTES + 1)
    except OSError as e:
        raise CapabilitiesError(f"{source}: $: cannot read file: {e.strerror or e}") from None
    doc = parse_capabilities(raw, source)
    expected = f"{doc.name}.capabilities.json"
    if path.name != expected:
        log.warning("%s: $.name: file name does not match channel name (expected %s)", source, expected)
    return doc
