"""The ``capabilities.http`` section of a capabilities file: the HTTPS allow-list and credential injection."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from .base import Model, PositiveInt, check_host, upper_methods

__all__ = [
    "AllowlistEntry",
    "BasicLocation",
    "BearerLocation",
    "CredentialLocation",
    "CredentialSpec",
    "HeaderLocation",
    "HttpCapability",
    "QueryParamLocation",
    "RateLimit",
    "UrlPathLocation",
]

_PLACEHOLDER_RE = re.compile(r"^\{[A-Z0-9_]{1,64}\}$")


class AllowlistEntry(Model):
    """One HTTPS destination: ``host`` (lowercase, optional leading ``*.``), a path prefix (starts with
    ``/``) and optionally the allowed methods (uppercased; ``None`` means any method)."""

    host: str
    path_prefix: str = "/"
    methods: list[str] | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return check_host(v)

    @field_validator("path_prefix")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"path_prefix {v!r} must start with '/'")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str] | None) -> list[str] | None:
        return upper_methods(v)


class BearerLocation(Model):
    """Inject the secret as ``Authorization: Bearer <secret>``."""

    type: Literal["bearer"]


class BasicLocation(Model):
    """Inject ``Authorization: Basic base64(username:secret)``."""

    type: Literal["basic"]
    username: str


class HeaderLocation(Model):
    """Inject header ``name: <prefix><secret>``."""

    type: Literal["header"]
    name: str = Field(min_length=1)
    prefix: str = ""


class QueryParamLocation(Model):
    """Inject the secret as query parameter ``name``."""

    type: Literal["query_param"]
    name: str = Field(min_length=1)


class UrlPathLocation(Model):
    """Replace ``placeholder`` (``{UPPER_SNAKE}``) in the URL path with the secret."""

    type: Literal["url_path"]
    placeholder: str

    @field_validator("placeholder")
    @classmethod
    def _placeholder(cls, v: str) -> str:
        if not _PLACEHOLDER_RE.match(v):
            raise ValueError(f"placeholder {v!r} must look like '{{UPPER_SNAKE_NAME}}'")
        return v


CredentialLocation = Annotated[
    BearerLocation | BasicLocation | HeaderLocation | QueryParamLocation | UrlPathLocation,
    Field(discriminator="type"),
]


class CredentialSpec(Model):
    """``credentials.<id>``: which secret is injected where, for which hosts (and optional path prefixes).

    ``host_patterns`` use the same syntax as allow-list hosts. When several specs match a request, the
    most specific one wins (decided by the HTTP layer, not here). ``optional`` means a missing secret is
    not an error.
    """

    secret_name: str = Field(min_length=1)
    location: CredentialLocation
    host_patterns: list[str] = Field(min_length=1)
    path_patterns: list[str] = Field(default_factory=list)
    optional: bool = False

    @field_validator("host_patterns")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [check_host(h) for h in v]


class RateLimit(Model):
    """Outbound HTTP rate limit, in requests per minute and per hour."""

    requests_per_minute: PositiveInt = 60
    requests_per_hour: PositiveInt = 1000


class HttpCapability(Model):
    """``capabilities.http``: the HTTPS allow-list, credential injection and limits.

    Sizes are bytes (request 1 MiB, response 10 MiB by default); ``timeout_secs`` is seconds.
    """

    allowlist: list[AllowlistEntry] = Field(default_factory=list)
    credentials: dict[str, CredentialSpec] = Field(default_factory=dict)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    max_request_bytes: PositiveInt = 1_048_576
    max_response_bytes: PositiveInt = 10_485_760
    timeout_secs: PositiveInt = 30
