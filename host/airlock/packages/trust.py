"""The trust store: the publisher public keys this home accepts package signatures from.

One file, ``trusted-keys.json`` in AIRLOCK_HOME (mode 0600, replaced atomically on every change)::

    {"keys": [{"name": "acme", "key_id": "3f9a0c...", "public_key": "<base64, 32 bytes>",
               "added_at": 1765000000}]}

Names and key ids are unique. Only the operator edits it (``airlock trust add|rm``); a package can never add
a key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PackageError
from ..stores.files import PRIVATE_FILE_MODE, private_dir
from .keys import PublicKey, check_key_name

__all__ = ["TRUST_FILE", "TrustStore", "TrustedKey"]

TRUST_FILE = "trusted-keys.json"


@dataclass(frozen=True)
class TrustedKey:
    """A trusted publisher key and when it was added (Unix seconds)."""

    key: PublicKey
    added_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.key.name, "key_id": self.key.key_id,
                "public_key": base64.b64encode(self.key.raw).decode(), "added_at": self.added_at}


class TrustStore:
    """The trusted keys of one home. Reads the file on every call (the CLI is short-lived)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / TRUST_FILE

    def trusted(self) -> list[TrustedKey]:
        """Every trusted key, in the order added. Raises PackageError if the file is corrupt."""
        if not self.path.is_file():
            return []
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return [self._entry(e) for e in doc["keys"]]
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise PackageError(f"{self.path}: the trust store is corrupt (fix or remove it)") from None

    @staticmethod
    def _entry(e: dict[str, Any]) -> TrustedKey:
        key = PublicKey(name=str(e["name"]), raw=base64.b64decode(str(e["public_key"]), validate=True))
        if len(key.raw) != 32 or key.key_id != e["key_id"]:
            raise ValueError("bad key")
        return TrustedKey(key=key, added_at=int(e["added_at"]))

    def find(self, key_id: str) -> TrustedKey | None:
        """The trusted key with ``key_id``, or None."""
        return next((t for t in self.trusted() if t.key.key_id == key_id), None)

    def add(self, key: PublicKey, name: str | None = None) -> TrustedKey:
        """Trust ``key`` under ``name`` (default: the key file's name).

        Raises:
            PackageError: the key or the name is already trusted, or the name is invalid.
        """
        entry = TrustedKey(PublicKey(check_key_name(name or key.name), key.raw), int(time.time()))
        keys = self.trusted()
        for t in keys:
            if t.key.key_id == entry.key.key_id:
                raise PackageError(f"key {entry.key.key_id} is already trusted as {t.key.name!r}")
            if t.key.name == entry.key.name:
                raise PackageError(f"a key named {t.key.name!r} is already trusted ({t.key.key_id}); "
                                   "choose another --name")
        self._write([*keys, entry])
        return entry

    def remove(self, name_or_id: str) -> TrustedKey:
        """Stop trusting the key with this name or key id. Raises PackageError if none matches."""
        keys = self.trusted()
        found = next((t for t in keys if name_or_id in (t.key.name, t.key.key_id)), None)
        if found is None:
            raise PackageError(f"no trusted key named {name_or_id!r} (airlock trust list)")
        self._write([t for t in keys if t is not found])
        return found

    def _write(self, keys: list[TrustedKey]) -> None:
        private_dir(self.home)
        body = json.dumps({"keys": [t.as_dict() for t in keys]}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=f".{TRUST_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), PRIVATE_FILE_MODE)
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
