"""Host-side DM admission: the capabilities file's ``dm_policy`` re-checked after the guest, whatever it did.

``open`` admits everyone; ``allowlist`` and ``pairing`` admit the ``owner_id``, ids in ``allow_from`` (``"*"``
admits everyone; ``"@name"`` entries are platform usernames the host cannot check, so they admit no one here),
and ids paired through ``airlock pairing approve``; ``disabled`` refuses every DM. A message whose metadata
marks a group chat (``chat_type`` group/supergroup/channel, or ``is_group: true``) is left to the guest's
mention rules.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from ..runtime.values import EmittedMessage

log = logging.getLogger("airlock.channels")

GROUP_CHAT_TYPES = frozenset({"group", "supergroup", "channel"})


class PairedLookup(Protocol):
    def resolve_identity(self, channel: str, external_id: str) -> str | None: ...
    def allow_from(self, channel: str) -> list[str]: ...


def admit(channel: str, config: Mapping[str, Any], paired: PairedLookup, msg: EmittedMessage) -> bool:
    """True when ``msg`` may reach the agent under ``config``'s dm_policy (module docstring); a refusal is
    logged (one line, the user id, never the content)."""
    policy = str(config.get("dm_policy") or "open")
    if policy == "open" or is_group(msg):
        return True
    user = msg.user_id
    if policy == "disabled":
        log.warning("[%s] message from %s refused by the host (dm_policy disabled)", channel, user)
        return False
    owner = config.get("owner_id")
    allow = {str(x) for x in (config.get("allow_from") or [])}
    if (owner is not None and str(owner) == user) or user in allow or "*" in allow:
        return True
    if paired.resolve_identity(channel, user) is not None or user in paired.allow_from(channel):
        return True
    log.warning("[%s] message from %s refused by the host (dm_policy %s)", channel, user, policy)
    return False


def is_group(msg: EmittedMessage) -> bool:
    """The metadata marks a group conversation (``chat_type`` in GROUP_CHAT_TYPES or ``is_group: true``)."""
    try:
        meta = json.loads(msg.metadata_json or "{}")
    except (ValueError, RecursionError):  # guest-written JSON: any content, any depth
        return False
    if not isinstance(meta, dict):
        return False
    return meta.get("chat_type") in GROUP_CHAT_TYPES or meta.get("is_group") is True
