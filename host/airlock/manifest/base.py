"""Shared pieces of the capabilities-file models: the strict base classes, limits and value checks.

The helpers here are public because the host config (``airlock.host_config``) validates allow-list hosts and
formats pydantic errors the same way.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_CAPABILITIES_FILE_BYTES",
    "NAME_RE",
    "ExtensibleModel",
    "Model",
    "PositiveFloat",
    "PositiveInt",
    "check_host",
    "one_line",
    "upper_methods",
]

#: Largest capabilities file the loader reads, in bytes (real ones are a few KiB).
MAX_CAPABILITIES_FILE_BYTES = 1024 * 1024

#: A channel name (``CapabilitiesFile.name``): it becomes a file name and a URL path segment.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
_METHOD_RE = re.compile(r"^[A-Z]{1,16}$")

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def check_host(host: str) -> str:
    """Validate an allow-list host: non-empty, lowercase, DNS labels, optional leading ``*.`` only.

    Raises:
        ValueError: the host is empty, has uppercase letters, or is not a bare host name.
    """
    if not host:
        raise ValueError("host must not be empty")
    if host != host.lower():
        raise ValueError(f"host {host!r} must be lowercase")
    if not _HOST_RE.match(host):
        raise ValueError(
            f"host {host!r} is not a bare host name (no scheme, port or path; '*.' allowed only as a prefix)"
        )
    return host


def upper_methods(methods: list[str] | None) -> list[str] | None:
    """Uppercase HTTP method names and check they are plain tokens (``GET``, ``POST``...).

    Raises:
        ValueError: a name is not 1..16 ASCII letters.
    """
    if methods is None:
        return None
    out: list[str] = []
    for m in methods:
        up = m.strip().upper()
        if not _METHOD_RE.match(up):
            raise ValueError(f"{m!r} is not an HTTP method name")
        out.append(up)
    return out


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(text.split())


class Model(BaseModel):
    """Base of the capabilities models: strict types, immutable, no key the model does not define.

    The parser reports unknown keys itself first (``manifest.strict``: JSON path, "did you mean"), and drops them
    when it runs leniently; ``extra="forbid"`` is the backstop, and makes the published JSON Schema say
    ``additionalProperties: false``.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    keeps_extra: ClassVar[bool] = False


class ExtensibleModel(Model):
    """An extension section: keys starting with ``x-`` are kept (readable via ``model_extra``); no other extra key
    is allowed (``manifest.strict``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"additionalProperties": False, "patternProperties": {"^x-": {}}},
    )
    keeps_extra: ClassVar[bool] = True
