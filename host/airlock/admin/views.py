"""What the admin API returns and what its actions do; the console renders the same documents.

Documents are plain JSON-able dicts. Actions validate their input and raise ``AdminError`` (an HTTP status
and one line safe to show) for anything wrong, changing nothing then. Secret values are accepted, stored and
never returned; recent calls are redacted with every stored secret value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..channels.catalog import provenance_file, secret_name_for
from ..channels.manager import ChannelManager
from ..channels.operations import LifecycleError, Operations
from ..channels.slot import ChannelSlot
from ..errors import PairingError, SecretStoreError
from ..manifest import CapabilitiesFile
from ..observability.docs import safe
from ..observability.observer import CallObserver
from ..observability.recent import call_doc
from ..packages import provenance_doc
from ..stores import PairingStore, SecretStore
from ..stores.secrets import MAX_SECRET_BYTES, is_valid_stored_name
from .auth import LoginLimiter, Sessions, TokenFile

__all__ = ["DISABLE_WAIT_S", "MAX_CALLS_SHOWN", "AdminError", "AdminState"]

log = logging.getLogger("airlock.admin")

DISABLE_WAIT_S = 2.0
"""How long a disable request waits for the channel to stop before answering 202 ("disabling")."""
MAX_CALLS_SHOWN = 50
"""Most recent calls one request returns (``observability.recent.RECENT_CALLS`` are kept)."""
MAX_CODE_CHARS = 64
MAX_ID_CHARS = 256
_CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class AdminError(Exception):
    """A request the admin API refuses: ``status`` (HTTP) and a one-line message safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AdminState:
    """What the admin listener works on (the running host's parts) and its own auth state."""

    manager: ChannelManager
    secrets: SecretStore
    pairing: PairingStore
    observer: CallObserver | None
    tokens: TokenFile
    sessions: Sessions
    limiter: LoginLimiter
    home: Path
    operations: Operations | None = None
    """The gateway's channel operations (``channels.operations``, shared with the control socket): enable and
    disable are recorded in the home; upgrade, rollback and remove need it."""
    background: set[asyncio.Future[Any]] = field(default_factory=set)
    """Disables still finishing after their request was answered (held so they are not collected)."""

    # ---- channels ----------------------------------------------------------------------------------------

    def slot(self, name: str) -> ChannelSlot:
        slot = self.manager.slots.get(name) if _CHANNEL_RE.match(name) else None
        if slot is None:
            raise AdminError(404, f"no channel named {safe(name, 64)!r}")
        return slot

    def channel_doc(self, name: str, slot: ChannelSlot) -> dict[str, Any]:
        """One channel: identity, status, health, counters, last errors (time, trap class, message) and
        provenance (``packages.provenance_doc``: who signed what was installed, its digests and source)."""
        caps = slot.channel.caps
        errors = self.observer.recent.errors(name) if self.observer is not None else []
        counts = self.observer.counts(name) if self.observer is not None else {}
        kept = self.operations.doc(name) if self.operations is not None else {}
        return {
            "name": name, "version": slot.channel.version, "platform": slot.channel.platform,
            "versions": kept.get("versions", []), "previous": kept.get("previous"),
            "world": slot.channel.loaded.world.name,
            "active": slot.active, "disabled": slot.disabled, "status": slot.reason,
            "missing_secrets": self.manager.missing_secrets(caps, name),
            "health": {"endpoints": sorted(slot.endpoints), "polling": slot.poll_interval_s is not None,
                       "websocket": slot.socket.status.as_dict() if slot.socket is not None else None,
                       "inline": slot.inline.as_dict()},
            "counters": {"callbacks": counts, "polls": slot.polls, "failures": slot.failures},
            "last_errors": [{"at": e.at, "callback": e.callback, "trap": e.trap, "message": e.message,
                             "trace_id": e.trace_id} for e in errors],
            "provenance": provenance_doc(provenance_file(slot.channel.loaded.path, name)),
        }

    def channels_doc(self) -> dict[str, Any]:
        return {"channels": [self.channel_doc(n, s) for n, s in sorted(self.manager.slots.items())]}

    async def disable(self, name: str) -> tuple[int, dict[str, Any]]:
        """Disable ``name``: (200, doc) once stopped, or (202, doc) if it is still finishing after
        ``DISABLE_WAIT_S`` (a long poll in progress); the disable goes on in the background either way."""
        slot = self.slot(name)
        ops = self.operations
        task = asyncio.ensure_future(ops.disable(name) if ops is not None else self.manager.disable(name))
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        done, _ = await asyncio.wait({task}, timeout=DISABLE_WAIT_S)
        return (200 if done else 202), self.channel_doc(name, slot)

    async def enable(self, name: str) -> dict[str, Any]:
        self.slot(name)
        if self.operations is not None:
            await self.operations.enable(name)
        else:
            await self.manager.enable(name)
        return self.channel_doc(name, self.slot(name))

    async def lifecycle(self, name: str, action: str, version: object = None) -> dict[str, Any]:
        """upgrade (``version`` required), rollback (``version`` optional) or remove ``name``
        (``channels.operations``); AdminError with the operation's status and line when refused or failed."""
        self.slot(name)
        ops = self.operations
        if ops is None:
            raise AdminError(404, "this gateway has no installed-channel store")
        if version is not None and not isinstance(version, str):
            raise AdminError(400, "version must be a string")
        try:
            if action == "upgrade":
                if version is None:
                    raise AdminError(400, "upgrade needs a version (GET /api/channels/NAME: versions)")
                await ops.upgrade(name, version)
            elif action == "rollback":
                await ops.rollback(name, version)
            else:
                return await ops.remove(name)
        except LifecycleError as exc:
            raise AdminError(exc.status, str(exc)) from None
        return self.channel_doc(name, self.slot(name))

    async def secrets_changed(self) -> None:
        """Start / stop the channels a stored or removed secret concerns (``Operations.secrets_changed``)."""
        if self.operations is not None:
            await self.operations.secrets_changed()
        else:
            await self.manager.secrets_changed()

    def calls_doc(self, name: str, limit: int = MAX_CALLS_SHOWN) -> dict[str, Any]:
        """The channel's recent callbacks, newest first, as ``airlock invoke --json`` documents, redacted.
        Asking starts (or extends) recording its successes (``observability.recent``: failures always are);
        ``successes_since`` says since when (Unix seconds)."""
        self.slot(name)
        if self.observer is None:
            return {"channel": name, "recording": False, "successes_since": None, "calls": []}
        since = self.observer.recent.watch(name)
        records = self.observer.recent.calls(name)[:max(0, min(limit, MAX_CALLS_SHOWN))]
        values = self._secret_values()
        return {"channel": name, "recording": True, "successes_since": since,
                "calls": [call_doc(name, r, values) for r in records]}

    def _secret_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for secret in self.secrets.names():
            value = self.secrets.get(secret)
            if value is not None:
                values[secret] = value
        return values

    # ---- secrets -----------------------------------------------------------------------------------------

    def secrets_doc(self) -> dict[str, Any]:
        """Every stored secret and every secret an installed channel names: whether it is set, who uses it."""
        stored = set(self.secrets.names())
        used: dict[str, list[str]] = {}
        for name, slot in sorted(self.manager.slots.items()):
            for secret in _secret_names(slot.channel.caps):
                used.setdefault(secret_name_for(name, slot.channel.platform, secret), []).append(name)
        names = sorted(stored | set(used))
        return {"secrets": [{"name": n, "set": n in stored, "used_by": used.get(n, [])} for n in names]}

    def set_secret(self, name: str, value: object) -> dict[str, Any]:
        """Store ``value`` as secret ``name`` (checked against every installed channel's ``validation``)."""
        if not is_valid_stored_name(name):
            raise AdminError(400, "secret names must match [INSTANCE/]NAME, NAME ^[a-z0-9_]{1,64}$")
        if not isinstance(value, str) or not value:
            raise AdminError(400, f"an empty value for {name}; nothing stored")
        if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
            raise AdminError(400, f"the value for {name} is over {MAX_SECRET_BYTES} bytes; nothing stored")
        for channel, slot in sorted(self.manager.slots.items()):
            setup = slot.channel.caps.setup
            for spec in setup.required_secrets if setup is not None else []:
                stored = secret_name_for(channel, slot.channel.platform, spec.name)
                if stored == name and spec.validation and not re.search(spec.validation, value):
                    raise AdminError(400, f"the value for {name} does not match the pattern channel {channel!r} "
                                          f"requires ({spec.validation}); nothing stored")
        try:
            self.secrets.set(name, value)
        except SecretStoreError as exc:
            raise AdminError(400, str(exc)) from None
        log.info("admin: secret %s stored", name)
        return {"name": name, "set": True}

    def remove_secret(self, name: str) -> dict[str, Any]:
        if not is_valid_stored_name(name) or not self.secrets.remove(name):
            raise AdminError(404, f"no secret named {safe(name, 64)!r}")
        log.info("admin: secret %s removed", name)
        return {"name": name, "set": False}

    # ---- pairing -----------------------------------------------------------------------------------------

    def pairing_doc(self) -> dict[str, Any]:
        """Per channel: pending requests (code, sender, meta, expiry) and approved senders."""
        now = time.time()
        channels = {}
        for name in sorted(self.manager.slots):
            channels[name] = {
                "pending": [{"code": r.code, "external_id": r.external_id, "meta": _json_or_text(r.meta_json),
                             "created_at": r.created_at, "expires_at": r.expires_at,
                             "expires_in_s": max(0, int(r.expires_at - now))} for r in self.pairing.pending(name)],
                "paired": [{"external_id": p.external_id, "owner_id": p.owner_id, "paired_at": p.paired_at}
                           for p in self.pairing.paired(name)],
            }
        return {"channels": channels}

    def approve(self, channel: str, code: object, owner: object = None) -> dict[str, Any]:
        self.slot(channel)
        code_text = _text(code, "code", MAX_CODE_CHARS)
        owner_text = None if owner in (None, "") else _text(owner, "owner", MAX_ID_CHARS)
        try:
            req = self.pairing.approve(channel, code_text, owner_text)
        except PairingError as exc:
            raise AdminError(404, str(exc)) from None
        log.info("[%s] admin: pairing of %s approved", channel, safe(req.external_id, 64))
        return {"channel": channel, "external_id": req.external_id, "owner_id": owner_text or req.external_id,
                "approved": True}

    def deny(self, channel: str, code: object) -> dict[str, Any]:
        self.slot(channel)
        try:
            req = self.pairing.deny(channel, _text(code, "code", MAX_CODE_CHARS))
        except PairingError as exc:
            raise AdminError(404, str(exc)) from None
        log.info("[%s] admin: pairing of %s denied", channel, safe(req.external_id, 64))
        return {"channel": channel, "external_id": req.external_id, "denied": True}

    def revoke(self, channel: str, external_id: object) -> dict[str, Any]:
        self.slot(channel)
        sender = _text(external_id, "external_id", MAX_ID_CHARS)
        if not self.pairing.revoke(channel, sender):
            raise AdminError(404, f"{safe(sender, 64)!r} is not paired on {channel}")
        log.info("[%s] admin: pairing of %s revoked", channel, safe(sender, 64))
        return {"channel": channel, "external_id": sender, "revoked": True}


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AdminError(400, f"{what} is required")
    if len(value) > limit:
        raise AdminError(400, f"{what} is longer than {limit} characters")
    return value.strip()


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _secret_names(caps: CapabilitiesFile) -> set[str]:
    """Secret names a capabilities file refers to (setup, auth, credentials, webhook check, websocket)."""
    names: set[str] = set()
    if caps.setup is not None:
        names |= {s.name for s in caps.setup.required_secrets}
    if caps.auth is not None:
        names.add(caps.auth.secret_name)
    if caps.capabilities.http is not None:
        names |= {c.secret_name for c in caps.capabilities.http.credentials.values()}
    hook = caps.capabilities.channel.webhook
    if hook is not None:
        for key in ("secret_name", "signature_key_secret_name", "hmac_secret_name", "app_secret_name",
                    "verification_token_secret_name", "encrypt_key_secret_name"):
            value = getattr(hook, key)
            if value:
                names.add(value)
    socket = caps.capabilities.websocket
    if socket is not None and socket.identify_secret_name:
        names.add(socket.identify_secret_name)
    return names
