"""The ``capabilities.websocket`` section of a capabilities file: a host-managed outbound WebSocket."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from .base import ExtensibleModel, PositiveInt

__all__ = ["WebsocketCapability"]


class WebsocketCapability(ExtensibleModel):
    """``capabilities.websocket``: a host-managed outbound WebSocket (``wss://`` only), run by
    ``airlock.channels.socket_runtime``.

    ``protocol``: ``"discord"`` (also inferred for ``wss://gateway.discord.gg`` with an ``identify`` block),
    ``"wecom_aibot"``, or absent for the generic driver; any other name is kept, but the channel stays
    inactive and ``airlock channels check`` refuses the file. A protocol's other keys are kept in ``model_extra``.
    ``bot_id_secret_name`` / ``bot_secret_name`` (``wecom_aibot``): the secrets holding the bot id and secret
    the host subscribes with.
    ``connect_on_start``: open the socket once the channel is active (false: never opened).
    ``identify_secret_name``: the secret the host needs before opening the socket; Discord sends it as the
    IDENTIFY token, the generic driver substitutes it for ``{UPPER_SNAKE_NAME}`` in ``identify``'s strings.
    ``identify``: the identify frame (keys starting with ``_`` are comments and never sent).
    ``heartbeat_interval_ms`` (ms): websocket-level ping interval of the generic driver (default 30000);
    Discord uses the interval its HELLO gives. ``max_missed_heartbeat_acks``: Discord heartbeats in a row
    without ACK before the connection counts as dead (default 1).
    """

    url: str
    connect_on_start: bool = False
    identify_secret_name: str | None = None
    identify: dict[str, Any] | None = None
    heartbeat_interval_ms: PositiveInt | None = None
    max_missed_heartbeat_acks: PositiveInt | None = None
    protocol: str | None = None
    bot_id_secret_name: str | None = None
    bot_secret_name: str | None = None

    @field_validator("url")
    @classmethod
    def _wss(cls, v: str) -> str:
        if not v.startswith("wss://"):
            raise ValueError(f"url {v!r} must start with 'wss://'")
        return v
