"""Unknown keys in a capabilities file, and the file's ``"$schema"`` (which format it follows).

Every key of a capabilities file must be one the format defines (the pydantic models of this package): a
misspelled ``"capabilites"`` would otherwise drop every grant silently. :func:`find_unknown_keys` walks the raw
JSON beside the models and reports each unknown key with its JSON path and, when one is close enough
(:data:`SUGGEST_CUTOFF`, ``difflib``), the known key it probably meant.

Three sections are extension points (``setup``, ``capabilities.websocket``, ``capabilities.channel.webhook``):
keys there that start with :data:`EXTENSION_PREFIX` (``x-``) are kept for the plugin's own tools (readable through
``model_extra``); any other unknown key is unknown there too.

``"$schema"`` at the top level says which format the file follows (:func:`schema_mode`):

* absent, :data:`AIRLOCK_SCHEMA_ID`, or a path/URL ending in ``capabilities.schema.json`` (the published schema,
  for editors): Airlock's format, unknown keys are errors;
* one of :data:`IRONCLAW_SCHEMA_IDS`: a file from IronClaw, whose format may carry keys Airlock does not model:
  unknown keys are warnings and dropped (never granted);
* anything else: an error naming the accepted values.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from ..errors import CapabilitiesError

__all__ = [
    "AIRLOCK_SCHEMA_ID",
    "EXTENSION_PREFIX",
    "IRONCLAW_SCHEMA_IDS",
    "SCHEMA_KEY",
    "SUGGEST_CUTOFF",
    "SchemaMode",
    "UnknownKey",
    "drop_unknown_keys",
    "find_unknown_keys",
    "key_path",
    "schema_mode",
]

#: The top-level key naming the file's format (JSON Schema's own keyword, so editors find the schema too).
SCHEMA_KEY = "$schema"
#: ``$id`` of the published schema (``schema/capabilities.schema.json``): Airlock's format, version 1.
AIRLOCK_SCHEMA_ID = "urn:airlock:capabilities:1"
#: ``$schema`` values marking a file from IronClaw (its v1 channel capabilities format): unknown keys are warnings.
IRONCLAW_SCHEMA_IDS: tuple[str, ...] = ("urn:ironclaw:channel-capabilities:1",)
#: Keys starting with this are allowed (and kept) in the extension sections.
EXTENSION_PREFIX = "x-"
#: ``difflib.get_close_matches`` cutoff for "did you mean": 0.6 is its default, and catches one or two typos
#: in keys of 6+ characters without proposing unrelated keys.
SUGGEST_CUTOFF = 0.6

SchemaMode = Literal["airlock", "ironclaw"]


def key_path(path: str, key: str) -> str:
    """``path`` extended by ``key``: ``$.a.b``, or ``$.a["x-y"]`` for a key that is not an identifier."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


@dataclass(frozen=True)
class UnknownKey:
    """One unknown key: its JSON path (``$.capabilites``) and the known key it probably meant, if any."""

    path: str
    suggestion: str | None

    def describe(self, source: str, *, ignored: bool = False) -> str:
        """The one-line message: ``<source>: <path>: unknown key[ ignored][ (did you mean 'x'?)]``."""
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{source}: {self.path}: unknown key{' ignored' if ignored else ''}{hint}"


def schema_mode(obj: dict[str, Any], source: str) -> SchemaMode:
    """Which format the parsed file follows, from its top-level ``"$schema"`` (module docstring).

    Raises:
        CapabilitiesError: ``$schema`` is not a string, or names a format Airlock does not know.
    """
    value = obj.get(SCHEMA_KEY)
    if value is None:
        return "airlock"
    if not isinstance(value, str):
        raise CapabilitiesError(f"{source}: $[\"$schema\"]: must be a string")
    if value in IRONCLAW_SCHEMA_IDS:
        return "ironclaw"
    if value == AIRLOCK_SCHEMA_ID or value.rsplit("/", 1)[-1] == "capabilities.schema.json":
        return "airlock"
    accepted = ", ".join((AIRLOCK_SCHEMA_ID, "a path or URL of capabilities.schema.json", *IRONCLAW_SCHEMA_IDS))
    raise CapabilitiesError(f"{source}: $[\"$schema\"]: unknown format {value[:100]!r} (expected {accepted})")


def find_unknown_keys(obj: dict[str, Any], model: type[BaseModel]) -> list[UnknownKey]:
    """Every unknown key in the raw JSON object ``obj`` read as ``model``, in document order.

    Values of the wrong shape (a list where an object belongs, an unknown ``location.type``) are skipped: the
    model's validation reports them.
    """
    return list(_walk_model(obj, model, "$", top=True))


def drop_unknown_keys(obj: dict[str, Any], unknown: list[UnknownKey]) -> None:
    """Remove the keys ``unknown`` names (found by :func:`find_unknown_keys` on ``obj``) from ``obj`` in place."""
    paths = {u.path for u in unknown}
    _drop(obj, "$", paths)


def _drop(value: Any, path: str, paths: set[str]) -> None:
    if isinstance(value, dict):
        for key in list(value):
            sub = key_path(path, key)
            if sub in paths:
                del value[key]
            else:
                _drop(value[key], sub, paths)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _drop(item, f"{path}[{i}]", paths)


def _walk_model(obj: Any, model: type[BaseModel], path: str, *, top: bool = False) -> Iterator[UnknownKey]:
    if not isinstance(obj, dict):
        return
    fields = model.model_fields
    known = sorted(fields) + ([SCHEMA_KEY] if top else [])
    extension = bool(getattr(model, "keeps_extra", False))
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        if key in fields:
            yield from _walk_value(value, fields[key].annotation, key_path(path, key))
        elif key in known or (extension and key.startswith(EXTENSION_PREFIX)):
            continue
        else:
            close = difflib.get_close_matches(key, known, n=1, cutoff=SUGGEST_CUTOFF)
            yield UnknownKey(key_path(path, key), close[0] if close else None)


def _walk_value(value: Any, annotation: Any, path: str) -> Iterator[UnknownKey]:
    """Follow ``value`` through ``annotation``: a model, ``X | None``, ``list[X]``, ``dict[str, X]`` or a union of
    models told apart by their ``type`` literal. Anything else (free JSON, scalars) has no keys to check."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _walk_model(value, annotation, path)
    elif origin in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            yield from _walk_value(value, members[0], path)
        elif (model := _union_member(value, members)) is not None:
            yield from _walk_model(value, model, path)
    elif origin is list and isinstance(value, list):
        (item,) = get_args(annotation) or (Any,)
        for i, element in enumerate(value):
            yield from _walk_value(element, item, f"{path}[{i}]")
    elif origin is dict and isinstance(value, dict):
        item = (get_args(annotation) or (Any, Any))[1]
        for key, element in value.items():
            yield from _walk_value(element, item, key_path(path, str(key)))


def _union_member(value: Any, members: list[Any]) -> type[BaseModel] | None:
    """The member of a union of models whose ``type`` literal is ``value``'s (a discriminated union)."""
    if not isinstance(value, dict):
        return None
    for model in members:
        tag = model.model_fields.get("type") if isinstance(model, type) and issubclass(model, BaseModel) else None
        if tag is not None and get_origin(tag.annotation) is Literal and value.get("type") in get_args(tag.annotation):
            return model  # type: ignore[no-any-return]
    return None
