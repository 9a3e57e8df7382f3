"""Airlock: run chat-channel integrations as sandboxed WebAssembly components.

The public surface is what ``__all__`` lists; everything else is internal and may change.
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .agents.delivery import Delivery
from .channels.channel import CallOutcome, InboundMessage
from .errors import (
    AirlockError,
    BackpressureError,
    CapabilitiesError,
    ComponentError,
    ConfigError,
    GuestError,
    GuestReturnedError,
    GuestTrap,
    HostBug,
    PairingError,
    SandboxBusy,
    SecretStoreError,
)
from .host import AirlockHost
from .host_config import HostConfig
from .manifest import CapabilitiesFile, load_capabilities

__all__ = [
    "AirlockError",
    "AirlockHost",
    "BackpressureError",
    "CallOutcome",
    "CapabilitiesError",
    "CapabilitiesFile",
    "ComponentError",
    "ConfigError",
    "Delivery",
    "GuestError",
    "GuestReturnedError",
    "GuestTrap",
    "HostBug",
    "HostConfig",
    "InboundMessage",
    "PairingError",
    "SandboxBusy",
    "SecretStoreError",
    "load_capabilities",
]
