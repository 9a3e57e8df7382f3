"""The channel capabilities file (``<name>.capabilities.json``, IronClaw v1 format, see
``shared/spec/capabilities-file.md``): what the operator grants a channel.

The models are split by section (``auth``: auth and setup; ``egress``: ``capabilities.http``; ``channel``:
``capabilities.channel``; ``websocket``; ``document``: the whole file) and read by ``parser``. This package
re-exports the public names so callers write ``from airlock.manifest import CapabilitiesFile``. The host's own
settings are :class:`airlock.host_config.HostConfig`, not part of this file.
"""

from .auth import AuthSpec, AutoGenerate, RequiredSecret, SecretConfigMapping, SetupSpec
from .base import MAX_CAPABILITIES_FILE_BYTES
from .channel import (
    MIN_POLL_INTERVAL_MS,
    WEBHOOK_SCHEMES,
    ChannelCapability,
    DedupeSpec,
    EmitRateLimit,
    SendRateSpec,
    WebhookSpec,
)
from .document import DM_POLICIES, Capabilities, CapabilitiesFile, SecretsCapability
from .egress import (
    AllowlistEntry,
    BasicLocation,
    BearerLocation,
    CredentialLocation,
    CredentialSpec,
    HeaderLocation,
    HttpCapability,
    QueryParamLocation,
    RateLimit,
    UrlPathLocation,
)
from .parser import load_capabilities, parse_capabilities
from .websocket import WebsocketCapability

__all__ = [
    "DM_POLICIES",
    "MAX_CAPABILITIES_FILE_BYTES",
    "MIN_POLL_INTERVAL_MS",
    "WEBHOOK_SCHEMES",
    "AllowlistEntry",
    "AuthSpec",
    "AutoGenerate",
    "BasicLocation",
    "BearerLocation",
    "Capabilities",
    "CapabilitiesFile",
    "ChannelCapability",
    "CredentialLocation",
    "CredentialSpec",
    "DedupeSpec",
    "EmitRateLimit",
    "HeaderLocation",
    "HttpCapability",
    "QueryParamLocation",
    "RateLimit",
    "RequiredSecret",
    "SecretConfigMapping",
    "SecretsCapability",
    "SendRateSpec",
    "SetupSpec",
    "UrlPathLocation",
    "WebhookSpec",
    "WebsocketCapability",
    "load_capabilities",
    "parse_capabilities",
]
