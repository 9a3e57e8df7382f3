"""A whole capabilities file (``CapabilitiesFile``), its ``capabilities`` object and the ``secrets`` grant.

The file format is IronClaw's v1 (``shared/spec/capabilities-file.md``); :mod:`airlock.manifest.parser` reads it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from .auth import AuthSpec, SetupSpec
from .base import NAME_RE, Model
from .channel import ChannelCapability
from .egress import HttpCapability
from .websocket import WebsocketCapability

__all__ = ["DM_POLICIES", "Capabilities", "CapabilitiesFile", "SecretsCapability"]

_SECRET_GLOB_RE = re.compile(r"^[a-z0-9_]{1,64}\*?$")


class SecretsCapability(Model):
    """``capabilities.secrets``: names the guest may ask about: exact names or ``prefix*`` globs.

    Each entry matches ``^[a-z0-9_]{1,64}\\*?$`` (a bare ``*`` is rejected: it would grant every secret).
    """

    allowed_names: list[str] = Field(default_factory=list)

    @field_validator("allowed_names")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for n in v:
            if not _SECRET_GLOB_RE.match(n):
                raise ValueError(f"{n!r} is not a secret name or 'prefix*' glob (lowercase a-z, 0-9, _)")
        return v

    def allows(self, name: str) -> bool:
        """True if ``name`` equals an allowed name or starts with the prefix of a ``prefix*`` glob."""
        for pattern in self.allowed_names:
            if pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return True
            elif name == pattern:
                return True
        return False


class Capabilities(Model):
    """``capabilities``: everything the operator grants the channel."""

    http: HttpCapability | None = None
    secrets: SecretsCapability = Field(default_factory=SecretsCapability)
    channel: ChannelCapability = Field(default_factory=ChannelCapability)
    websocket: WebsocketCapability | None = None


DM_POLICIES = frozenset({"open", "allowlist", "pairing", "disabled"})
"""``config.dm_policy`` values: ``open`` admits every DM; ``allowlist`` and ``pairing`` admit the owner, ``allow_from``
and paired ids; ``disabled`` refuses every DM (group messages are left to the guest's mention rules)."""


class CapabilitiesFile(Model):
    """A whole ``<name>.capabilities.json``.

    ``name`` matches ``^[a-z0-9][a-z0-9_-]{0,62}$``; ``config`` is free JSON handed to ``on-start`` (its keys
    ``owner_id``, ``dm_policy`` and ``allow_from`` have host-side meaning, interpreted elsewhere).
    """

    version: str
    wit_version: str
    type: Literal["channel"] = "channel"
    name: str
    description: str = ""
    auth: AuthSpec | None = None
    setup: SetupSpec | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"name {v!r} must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")
        return v

    @field_validator("config")
    @classmethod
    def _admission_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        """The keys the host itself enforces must have exact types: a string ``allow_from`` would otherwise be
        read character by character and admit one-character ids."""
        policy = v.get("dm_policy")
        if policy is not None and policy not in DM_POLICIES:
            raise ValueError(f"dm_policy {policy!r} must be one of {', '.join(sorted(DM_POLICIES))}")
        allow = v.get("allow_from")
        if allow is not None and not (
            isinstance(allow, list) and all(isinstance(x, str | int) and not isinstance(x, bool) for x in allow)
        ):
            raise ValueError("allow_from must be a list of user ids (strings or integers)")
        owner = v.get("owner_id")
        if owner is not None and (isinstance(owner, bool) or not isinstance(owner, str | int)):
            raise ValueError("owner_id must be a user id (string or integer) or null")
        return v
