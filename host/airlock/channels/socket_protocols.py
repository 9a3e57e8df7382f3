"""Which websocket protocols the host runs, what each needs before a socket may open, and its driver.

Protocols (``capabilities.websocket.protocol``):

- ``discord``, or no protocol with the ``wss://gateway.discord.gg`` URL and an ``identify`` block
  (``discord_gateway``): needs ``identify_secret_name``, stored;
- ``wecom_aibot`` (``wecom_socket``): needs ``bot_id_secret_name`` and ``bot_secret_name``, both stored;
- no protocol (``generic_socket``): needs ``identify_secret_name`` stored only when the file names one.

Any other name is unsupported: :func:`protocol_problem` says so in one line; the channel manager keeps such a
channel inactive and ``airlock channels check`` / ``install`` refuse the file.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from ..manifest import WebsocketCapability as WebsocketSpec
from .discord_gateway import DiscordGatewayDriver, is_discord_spec
from .generic_socket import GenericDriver
from .socket_base import Driver
from .wecom_socket import PROTOCOL as WECOM_PROTOCOL
from .wecom_socket import WecomDriver

__all__ = ["SUPPORTED_PROTOCOLS", "make_driver", "protocol_of", "protocol_problem", "start_blocker"]

SUPPORTED_PROTOCOLS: tuple[str, ...] = ("discord", WECOM_PROTOCOL)
"""Named protocols this host implements (absent = the generic driver)."""

SecretLookup = Callable[[str], "str | None"]


def protocol_of(spec: WebsocketSpec) -> str:
    """``"discord"``, ``"wecom_aibot"`` or ``"generic"``; raises ``ConfigError`` for a protocol this host does not
    implement."""
    if is_discord_spec(spec):
        return "discord"
    if spec.protocol is None:
        return "generic"
    if spec.protocol == WECOM_PROTOCOL:
        return WECOM_PROTOCOL
    raise ConfigError(f"websocket protocol {spec.protocol!r} is not supported by this host "
                      f"(supported: {', '.join(SUPPORTED_PROTOCOLS)}, or none for a generic socket)")


def protocol_problem(spec: WebsocketSpec | None) -> str | None:
    """Why this host cannot run ``spec`` at all (one line), or ``None`` (no websocket, or a supported one)."""
    if spec is None:
        return None
    try:
        protocol_of(spec)
    except ConfigError as exc:
        return str(exc)
    return None


def _needed_secrets(spec: WebsocketSpec, protocol: str) -> tuple[list[str], str | None]:
    """(secret names the protocol needs stored, a problem with the file's keys or None)."""
    if protocol == WECOM_PROTOCOL:
        names = [n for n in (spec.bot_id_secret_name, spec.bot_secret_name) if n]
        if len(names) != 2:
            return [], "the wecom_aibot protocol needs bot_id_secret_name and bot_secret_name"
        return names, None
    if protocol == "discord" and not spec.identify_secret_name:
        return [], "the discord protocol needs identify_secret_name"
    return [spec.identify_secret_name] if spec.identify_secret_name else [], None


def start_blocker(spec: WebsocketSpec, secret_exists: Callable[[str], bool]) -> str | None:
    """Why this channel's websocket would not be opened (one line), or ``None`` if it can start."""
    if not spec.connect_on_start:
        return "connect_on_start is false"
    try:
        protocol = protocol_of(spec)
    except ConfigError as exc:
        return str(exc)
    names, problem = _needed_secrets(spec, protocol)
    if problem is not None:
        return problem
    missing = [n for n in names if not secret_exists(n)]
    if missing:
        return f"missing secret {', '.join(missing)} (airlock secrets set {missing[0]})"
    return None


def make_driver(channel: str, spec: WebsocketSpec, secrets: SecretLookup) -> Driver:
    """The protocol driver for ``spec`` (see :func:`protocol_of`), given the secrets it needs (read once, here).

    Raises ``ConfigError`` for an unsupported protocol or a missing secret."""
    protocol = protocol_of(spec)
    names, problem = _needed_secrets(spec, protocol)
    if problem is not None:
        raise ConfigError(problem)
    values = [secrets(n) for n in names]
    if any(v is None for v in values):
        raise ConfigError(f"the {protocol} protocol needs its secrets stored")
    if protocol == "discord":
        return DiscordGatewayDriver(channel, spec, str(values[0]))
    if protocol == WECOM_PROTOCOL:
        return WecomDriver(channel, spec, bot_id=str(values[0]), secret=str(values[1]))
    return GenericDriver(channel, spec, values[0] if values else None)
