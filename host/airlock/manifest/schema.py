"""The JSON Schema (draft 2020-12) of the capabilities file, generated from the pydantic models of this package.

The result is checked in as ``capabilities.schema.json`` beside this module (package data: ``airlock channels
check`` validates against it, and editors can point a file's ``"$schema"`` at it); a test fails when the file and
this builder disagree. Regenerate with ``make schema``, i.e.

    PYTHONPATH=host python -m airlock.manifest.schema > host/airlock/manifest/capabilities.schema.json

The schema says what the models' types and limits say, and ``additionalProperties: false`` everywhere (``x-`` keys
allowed in the extension sections). Checks the models make in code (host names, regular expressions, webhook
scheme keys, ``config.dm_policy``) are the loader's: a file can pass the schema and still be refused by
``airlock channels check``, never the other way round (tested on every bundled and IronClaw file).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ..errors import CapabilitiesError
from .base import one_line
from .document import CapabilitiesFile
from .strict import AIRLOCK_SCHEMA_ID, SCHEMA_KEY, drop_unknown_keys, find_unknown_keys, key_path, schema_mode

__all__ = ["SCHEMA_FILE", "build_schema", "check_against_schema", "published_schema"]

#: The checked-in schema's file name (package data of ``airlock.manifest``).
SCHEMA_FILE = "capabilities.schema.json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def build_schema() -> dict[str, Any]:
    """The capabilities file's JSON Schema, built from :class:`~airlock.manifest.CapabilitiesFile` now."""
    body = CapabilitiesFile.model_json_schema(mode="validation")
    body["properties"] = {
        SCHEMA_KEY: {
            "type": "string",
            "description": f"The file's format: {AIRLOCK_SCHEMA_ID} or a path/URL of capabilities.schema.json "
                           "(Airlock's; unknown keys are errors), or an IronClaw format id (unknown keys are "
                           "warnings).",
        },
        **body["properties"],
    }
    return {"$schema": _DRAFT, "$id": AIRLOCK_SCHEMA_ID, **body}


@cache
def published_schema() -> dict[str, Any]:
    """The checked-in schema (package data), parsed once."""
    text = resources.files("airlock.manifest").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def check_against_schema(obj: dict[str, Any], source: str, *, lenient: bool = False) -> None:
    """Validate a parsed capabilities file against the published schema; unknown keys are dropped first when
    the file is read leniently (``lenient``, or its ``"$schema"`` is IronClaw's), as the loader does.

    Raises:
        CapabilitiesError: ``<source>: <json path>: does not match the schema: <reason>`` for the most relevant
            failure (``jsonschema.exceptions.best_match``), one line.
    """
    doc = json.loads(json.dumps(obj))  # a deep copy: the caller's object is left as it was
    if lenient or schema_mode(doc, source) == "ironclaw":
        drop_unknown_keys(doc, find_unknown_keys(doc, CapabilitiesFile))
    validator = jsonschema.Draft202012Validator(published_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return
    path = "$"
    for part in error.absolute_path:
        path = f"{path}[{part}]" if isinstance(part, int) else key_path(path, str(part))
    raise CapabilitiesError(f"{source}: {path}: does not match the schema: {one_line(error.message)[:300]}")


def render() -> str:
    """The schema as the checked-in file holds it: 2-space indent, keys in model order, final newline."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
