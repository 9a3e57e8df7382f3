"""Reading a capabilities file (``<name>.capabilities.json``) into :class:`~airlock.manifest.CapabilitiesFile`.

* an unknown key is an error naming the file, its JSON path and the key it probably meant
  (``x.json: $.capabilites: unknown key (did you mean 'capabilities'?)``). Read leniently (``--lenient``, or a
  file from IronClaw marked by its ``"$schema"``) each is a warning on the ``airlock.manifest`` logger instead and
  is dropped. ``x-`` keys in the extension sections are kept (``manifest.strict``);
* wrong types, missing required keys and values outside their limits raise
  :class:`~airlock.errors.CapabilitiesError` whose message is one line:
  ``<file>: <json path>: <problem>``, e.g. ``x.json: $.capabilities.http.allowlist[0].host: ...``.
  Types are checked strictly: ``"30"`` is not an integer and ``true`` is not a number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import CapabilitiesError
from .base import MAX_CAPABILITIES_FILE_BYTES, one_line
from .document import CapabilitiesFile
from .strict import SCHEMA_KEY, drop_unknown_keys, find_unknown_keys, key_path, schema_mode

__all__ = ["load_capabilities", "parse_capabilities"]

log = logging.getLogger("airlock.manifest")


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
        path = key_path(path, part)
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


def parse_capabilities(data: bytes | str, source: str, *, lenient: bool = False) -> CapabilitiesFile:
    """Parse and validate a capabilities file's text.

    ``data`` is UTF-8 JSON (a leading BOM is tolerated), at most :data:`MAX_CAPABILITIES_FILE_BYTES`.
    ``source`` names the file in messages (usually its path).

    Unknown keys are errors; with ``lenient`` (or in a file whose ``"$schema"`` marks it as IronClaw's) each is
    a warning on the ``airlock.manifest`` logger instead and is dropped (see the module docstring).

    Raises:
        CapabilitiesError: invalid UTF-8, invalid JSON (message names line and column), a top level that
            is not an object, an unknown key (unless lenient), an unknown ``"$schema"``, or a validation failure.
            The message is one line,
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
    _unknown_keys(obj, source, lenient=lenient or schema_mode(obj, source) == "ironclaw")
    obj.pop(SCHEMA_KEY, None)
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
    return doc


def _unknown_keys(obj: dict[str, Any], source: str, *, lenient: bool) -> None:
    """Raise on the first unknown key (its count of others appended), or warn about each and drop them."""
    unknown = find_unknown_keys(obj, CapabilitiesFile)
    if not unknown:
        return
    if not lenient:
        more = len(unknown) - 1
        tail = f" (and {more} more unknown key{'s' if more > 1 else ''})" if more else ""
        raise CapabilitiesError(unknown[0].describe(source) + tail)
    for key in unknown:
        log.warning("%s", key.describe(source, ignored=True))
    drop_unknown_keys(obj, unknown)


def load_capabilities(path: Path, *, lenient: bool = False) -> CapabilitiesFile:
    """Read and validate a capabilities file from disk (see :func:`parse_capabilities`; ``lenient`` likewise).

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
    doc = parse_capabilities(raw, source, lenient=lenient)
    expected = f"{doc.name}.capabilities.json"
    if path.name != expected:
        log.warning("%s: $.name: file name does not match channel name (expected %s)", source, expected)
    return doc
