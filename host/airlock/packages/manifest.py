"""The two small JSON documents inside a package: the manifest and its signature.

``manifest.json`` (the exact bytes are what the signature covers)::

    {"format": 1, "name": "telegram", "version": "0.2.0",
     "world": "airlock:channel/sandboxed-channel@0.1.0",
     "members": {"telegram.wasm": {"sha256": "<64 hex>", "size": 19420344},
                 "telegram.capabilities.json": {"sha256": "<64 hex>", "size": 2502}}}

``signature.json``::

    {"algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64 of 64 bytes>"}

Both are validated strictly (unknown keys are errors). ``key_id`` only says which trusted key to try; it is
not trusted itself (a wrong one simply fails verification).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import PackageError
from .archive import CAPS_SUFFIX

__all__ = ["FORMAT", "Manifest", "MemberDigest", "SignatureDoc", "manifest_bytes", "parse_json_model", "sha256"]

FORMAT: Literal[1] = 1
"""The package format version this host reads and writes."""
_NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_VERSION_RE = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
_HEX64_RE = r"^[0-9a-f]{64}$"
_KEY_ID_RE = r"^[0-9a-f]{16}$"
_B64_RE = r"^[A-Za-z0-9+/]{86}==$"  # 64 bytes in standard base64
M = TypeVar("M", bound=BaseModel)


def sha256(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class MemberDigest(BaseModel):
    """What the manifest says about one member: its SHA-256 and size in bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=_HEX64_RE)
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """The manifest: channel name and version, the component's world, and every payload member's digest."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal[1]
    name: str = Field(pattern=_NAME_RE)
    version: str = Field(pattern=_VERSION_RE)
    world: str = Field(min_length=1, max_length=128)
    members: dict[str, MemberDigest]

    @property
    def component_member(self) -> str:
        return f"{self.name}.wasm"

    @property
    def caps_member(self) -> str:
        return f"{self.name}{CAPS_SUFFIX}"

    @field_validator("members")
    @classmethod
    def _two_members(cls, v: dict[str, MemberDigest]) -> dict[str, MemberDigest]:
        if len(v) != 2:
            raise ValueError("must list exactly the component and the capabilities file")
        return v


class SignatureDoc(BaseModel):
    """An Ed25519 signature of the manifest's bytes, by the key whose id is ``key_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    algorithm: Literal["ed25519"]
    key_id: str = Field(pattern=_KEY_ID_RE)
    signature: str = Field(pattern=_B64_RE)


def parse_json_model(model: type[M], raw: bytes, what: str) -> M:
    """Parse ``raw`` as ``model``; PackageError ``<what>: <json path>: <problem>`` (one line) otherwise."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PackageError(f"{what}: not valid UTF-8 JSON") from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise PackageError(f"{what}: {where}: {err['msg']}") from None


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest as written into a package: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n").encode()
