"""The ``pairing-*`` host functions: DM pairing backed by the SQLite ``PairingStore``.

A guest may only act for its own channel: the ``channel`` argument must be the channel's name, compared after ASCII
lowercasing (IronClaw lowercases it the same way, ``src/pairing/mod.rs`` ``normalize_channel_name``, so a guest
passing ``"Telegram"`` acts for ``telegram`` there too; Airlock's channel names are lowercase). The name is the one
the guest knows itself by (its capabilities file's), which for a second account of a platform (``install --as``)
differs from the instance's: the store is always called with the instance's name; ids are
1-256 bytes; ``meta-json`` must be a JSON object of at most 4 KB. Codes: 8 characters from
``ABCDEFGHJKLMNPQRSTUVWXYZ23456789`` (CSPRNG), valid 15 minutes; upsert is idempotent (``created=false``
while a live request exists). Upserts apply immediately, even if the callback later fails, because the
guest usually tells the user the code in the same callback.
"""

from __future__ import annotations

import json
import string
from typing import Protocol

from ..runtime.linker import GuestFault

MAX_ID_BYTES = 256
MAX_META_BYTES = 4096
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class PairingBackend(Protocol):
    def upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]: ...
    def resolve_identity(self, channel: str, external_id: str) -> str | None: ...
    def allow_from(self, channel: str) -> list[str]: ...


class PairingCapability:
    """One channel's view of the pairing store."""

    def __init__(self, channel: str, store: PairingBackend, *, guest_name: str | None = None) -> None:
        self.channel = channel
        self.store = store
        self.guest_name = guest_name or channel
        """The name the guest passes for its own channel (its capabilities file's ``name``)."""

    def _check(self, channel: str, external_id: str | None = None) -> None:
        """Refuse another channel's name (after ASCII lowercasing) and an id outside 1-256 bytes; the store is
        then always called with this channel's (instance's) own name."""
        if channel.translate(_ASCII_LOWER) not in (self.channel, self.guest_name):
            raise GuestFault(f"pairing is only available for this channel ({self.guest_name!r})")
        if external_id is not None and not (0 < len(external_id.encode()) <= MAX_ID_BYTES):
            raise GuestFault(f"pairing id must be 1-{MAX_ID_BYTES} bytes")

    def upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]:
        self._check(channel, external_id)
        if len(meta_json.encode()) > MAX_META_BYTES:
            raise GuestFault(f"pairing meta-json larger than {MAX_META_BYTES} bytes")
        try:
            meta = json.loads(meta_json or "{}")
        except (ValueError, RecursionError):  # 4 KB of "[" nests deeper than the parser's recursion limit
            raise GuestFault("pairing meta-json is not valid JSON") from None
        if not isinstance(meta, dict):
            raise GuestFault("pairing meta-json must be a JSON object")
        return self.store.upsert_request(self.channel, external_id, meta_json or "{}")

    def resolve_identity(self, channel: str, external_id: str) -> str | None:
        self._check(channel, external_id)
        return self.store.resolve_identity(self.channel, external_id)

    def read_allow_from(self, channel: str) -> list[str]:
        self._check(channel)
        return self.store.allow_from(self.channel)
