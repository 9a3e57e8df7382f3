"""What a SIGHUP (``AirlockHost.reload_host_config``) changes in a running gateway: the host settings that can
change live are applied, the others are reported as needing a restart."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .host_config import HostConfig
from .messages.inbound import BindingRouter

if TYPE_CHECKING:
    from .channels.manager import ChannelManager
    from .messages.inbox import Inbox

__all__ = ["LIVE_SETTINGS", "apply_reload"]

log = logging.getLogger("airlock")

LIVE_SETTINGS = frozenset({"routing", "default_agent", "bus_capacity", "agent_visibility_timeout_s", "retention_s",
                           "dedupe_window_s", "inline_callbacks", "public_base_url"})
"""Host settings a SIGHUP (``AirlockHost.reload_host_config``) applies to the running gateway: routing at once for
the next message, the bus and retention at once, ``inline_callbacks`` and ``public_base_url`` at each channel's
next start (enable, upgrade, reload). Every other setting (listeners, home and channels directory, pool, memory,
fuel, guest limits, egress overrides, metrics) needs a restart."""


def apply_reload(running: HostConfig, new: HostConfig, manager: ChannelManager,
                 bus: Inbox) -> tuple[HostConfig, dict[str, list[str]]]:
    """Apply the :data:`LIVE_SETTINGS` of ``new`` that differ from ``running`` to ``manager`` and ``bus``; log the
    other differences as needing a restart. Returns the config now in effect and ``{"applied": [...],
    "restart_needed": [...]}`` (field names)."""
    changed = [f for f in type(new).model_fields if getattr(new, f) != getattr(running, f)]
    applied = [f for f in changed if f in LIVE_SETTINGS]
    later = [f for f in changed if f not in LIVE_SETTINGS]
    config = running
    if applied:
        config = running.model_copy(update={f: getattr(new, f) for f in applied})
        pipeline = manager.services.inbound
        if pipeline is not None and isinstance(pipeline.router, BindingRouter):
            pipeline.router.config = config.routing
        bus.capacity = config.bus_capacity
        bus.visibility_s = config.agent_visibility_timeout_s
        manager.inline = config.inline_callbacks
        manager.public_base_url = config.public_base_url
    for field_name in later:
        log.warning("host config: %s changed; it takes effect at the next restart", field_name)
    log.info("host config reloaded: %s applied", ", ".join(applied) or "nothing")
    return config, {"applied": applied, "restart_needed": later}
