"""What the host decides about a channel before its ``on-start``: the config it is given, whether it can run at
all, and the warnings about its capabilities file that operators should see.

Start config (:func:`start_config`), following IronClaw's channel setup (nearai/ironclaw,
``src/channels/wasm/setup.rs`` ``register_channel`` and ``src/pairing/approval.rs``
``build_runtime_config_updates``), applied over the file's ``config``:

- ``tunnel_url``: ``HostConfig.public_base_url``, when set (any world; it is public). IronClaw's Telegram channel
  enters webhook mode when it has one and registers ``<tunnel_url>/webhook/telegram``.
- ``instance_name``: Airlock's world only: the channel instance's name (``telegram``, or the ``--as`` name of a
  second account), so a guest can name it in what it tells users (Telegram's pairing message names the instance
  the operator approves on). Not given to ``near:agent`` components: IronClaw does not have it.
- ``near:agent`` components only (IronClaw's contract; Airlock's own world never sees a secret value):
  ``webhook_secret`` = the stored secret named by ``channel.webhook.secret_name`` (IronClaw's default name is
  ``<name>_webhook_secret``), so a Telegram channel can register it as ``secret_token``; ``owner_id`` from the file,
  as a number when it is one (``"12345"`` -> ``12345``), as IronClaw passes it; and each
  ``setup.secret_config_mappings`` entry: the stored secret under its ``config_key`` (Feishu needs its app id and
  secret in a request body). A mapping is ignored, with a warning, when its key is one of the host's
  (:data:`RESERVED_CONFIG_KEYS`) or its secret is not declared in ``setup.required_secrets`` (IronClaw's rules,
  ``schema.rs``); a mapped secret that is not stored leaves the file's value. For Airlock's world the mappings are
  ignored with a warning: its guests put ``{SECRET}`` placeholders in request bodies instead.

``wit_version`` (:func:`wit_version_note`): a file written for an older version of the same WIT family (``0.3.0``
for a ``0.3.1`` component; for ``0.x`` the family is the minor version, else the major) is accepted silently, as
IronClaw accepts a 0.3.x component for a 0.3.0 file; anything else is worth a warning. Airlock's own package only adds
between versions, so a ``0.1.0`` file fits a ``0.2.0`` component.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from ..manifest import CapabilitiesFile, SecretConfigMapping
from ..runtime.engine import World
from .event_queue import uses_event_queue
from .socket_protocols import protocol_problem

__all__ = [
    "RESERVED_CONFIG_KEYS",
    "blocker",
    "file_warnings",
    "public_path",
    "secret_config_mappings",
    "start_config",
    "webhook_secret_name",
    "wit_version_note",
]

log = logging.getLogger("airlock.channels")

RESERVED_CONFIG_KEYS = frozenset({"tunnel_url", "webhook_secret", "owner_id", "bot_username", "instance_name"})
"""Start-config keys the host owns (IronClaw's ``RESERVED_RUNTIME_CONFIG_KEYS``); no mapping may target them."""

_SEMVER_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def blocker(caps: CapabilitiesFile) -> str | None:
    """Why this host cannot run the channel at all (one line), or ``None``."""
    return protocol_problem(caps.capabilities.websocket)


def file_warnings(caps: CapabilitiesFile) -> list[str]:
    """Problems with the file that do not stop the channel but weaken it (one line each, for status/doctor)."""
    warnings: list[str] = []
    hook = caps.capabilities.channel.webhook
    if hook is not None and hook.managed_by_host and hook.effective_scheme == "meta" and not hook.app_secret_name:
        warnings.append("webhook.app_secret_name is not set: Meta POST signatures (X-Hub-Signature-256) are not "
                        "verified, POSTs reach the channel with secret-validated=false")
    return warnings


def webhook_secret_name(caps: CapabilitiesFile) -> str:
    """``channel.webhook.secret_name``, else IronClaw's default ``<name>_webhook_secret``."""
    hook = caps.capabilities.channel.webhook
    return hook.secret_name if hook is not None and hook.secret_name else f"{caps.name}_webhook_secret"


def secret_config_mappings(caps: CapabilitiesFile) -> list[SecretConfigMapping]:
    """The ``setup.secret_config_mappings`` entries the host honours (module docstring), warning about the rest."""
    if caps.setup is None:
        return []
    declared = {s.name.strip().lower() for s in caps.setup.required_secrets}
    kept: list[SecretConfigMapping] = []
    for m in caps.setup.secret_config_mappings:
        key, name = m.config_key.strip(), m.secret_name.strip()
        if not key or key.lower() in RESERVED_CONFIG_KEYS:
            log.warning("channel %s: secret_config_mappings entry for config key %r ignored (empty or owned by the "
                        "host)", caps.name, key)
        elif name.lower() not in declared:
            log.warning("channel %s: secret_config_mappings entry for %s ignored: not in setup.required_secrets",
                        caps.name, name or "?")
        else:
            kept.append(SecretConfigMapping(config_key=key, secret_name=name))
    return kept


def _owner_value(value: Any) -> Any:
    """IronClaw's owner id shape: a number when the id is an integer, else the trimmed string; ``None`` if unset."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text:
        return None
    return int(text) if re.fullmatch(r"-?\d{1,18}", text) else text


def start_config(caps: CapabilitiesFile, world: World, *, public_base_url: str | None,
                 secret_lookup: Callable[[str], str | None], instance: str | None = None) -> str:
    """The JSON handed to ``on-start`` (module docstring); ``instance``: the channel instance's name (default: the
    file's ``name``). Never logs a value."""
    config: dict[str, Any] = dict(caps.config)
    if public_base_url:
        config["tunnel_url"] = public_base_url
    if not uses_event_queue(world):
        config["instance_name"] = instance or caps.name
        if caps.setup is not None and caps.setup.secret_config_mappings:
            log.warning("channel %s: setup.secret_config_mappings is ignored for %s components (they use {SECRET} "
                        "placeholders in request bodies instead)", caps.name, world.name)
        return json.dumps(config)
    secret = secret_lookup(webhook_secret_name(caps))
    if secret:
        config["webhook_secret"] = secret
    owner = _owner_value(config.get("owner_id"))
    if owner is not None:
        config["owner_id"] = owner
    copied = []
    for m in secret_config_mappings(caps):
        value = secret_lookup(m.secret_name)
        if value is not None:
            config[m.config_key] = value
            copied.append(m.secret_name)
    if copied:
        log.info("channel %s: secrets %s copied into its start config (setup.secret_config_mappings)", caps.name,
                 ", ".join(copied))
    return json.dumps(config)


def wit_version_note(declared: str, built: str, *, additive: bool = False) -> str | None:
    """``None`` when a file declaring ``declared`` fits a component built for ``built`` (module docstring), else a
    one-line note. ``additive``: the package only adds between versions, even 0.x minors (Airlock's own
    ``airlock:channel``, ``wit/channel.wit``), so any older version of the same major fits."""
    a, b = _SEMVER_RE.match(declared.strip()), _SEMVER_RE.match(built.strip())
    if a is not None and b is not None:
        d = tuple(int(x) for x in a.groups())
        c = tuple(int(x) for x in b.groups())
        family_d, family_c = (d[:2], c[:2]) if d[0] == 0 and not additive else (d[:1], c[:1])
        if family_d == family_c and d <= c:
            return None
    return f"wit_version {declared} does not match the component's WIT version {built}"


def public_path(guest_path: str, instance: str, platform: str) -> str:
    """The webhook path the gateway serves for a path a guest registered. The default instance (named like its
    component) serves the guest's own paths; another instance (``install --as support-bot``) serves them under
    ``/webhook/<instance>``: ``/webhook/telegram`` -> ``/webhook/support-bot``, ``/webhook/telegram/x`` ->
    ``/webhook/support-bot/x``, any other path P -> ``/webhook/support-bot`` + P. The guest always sees its own."""
    if instance == platform:
        return guest_path
    own = f"/webhook/{platform}"
    if guest_path == own or guest_path.startswith(own + "/"):
        return f"/webhook/{instance}{guest_path[len(own):]}"
    return f"/webhook/{instance}{guest_path}"
