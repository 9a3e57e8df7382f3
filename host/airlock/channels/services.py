"""What a ``Channel`` is built from: the host-wide services (``HostServices``), a channel instance's view of the
secret store (``namespaced_lookup``) and its HTTP policy from the capabilities file (``http_policy_from_spec``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..capabilities.emit import Window
from ..capabilities.logging import DEFAULT_LOG_BYTES_PER_MINUTE
from ..capabilities.pairing import PairingBackend
from ..capabilities.workspace import DurableBackend
from ..manifest import HttpCapability as HttpSpec
from ..runtime.instance import Sandbox

if TYPE_CHECKING:
    from ..capabilities.egress import Egress
    from ..inbound.verifiers.base import ReplayFactory
    from ..messages.inbound import InboundPipeline
    from ..observability.observer import CallObserver

__all__ = ["HostServices", "http_policy_from_spec", "namespaced_lookup"]


@dataclass(frozen=True)
class HostServices:
    """Host-wide services a channel's capabilities are built from."""

    sandbox: Sandbox
    secret_lookup: Callable[[str], str | None]
    pairing: PairingBackend
    durable: DurableBackend | None
    egress: Egress | None
    memory_limit_bytes: int
    fuel_per_callback: int
    inbound: InboundPipeline | None = None
    """Turns emitted messages into log entries committed with the callback (``messages.inbound``); None: the
    messages are returned as they are (``airlock invoke``, benchmarks of the sandbox alone)."""
    observer: CallObserver | None = None
    """Metrics and recent-call records (``observability.observer``); None: not observed."""
    log_bytes_per_minute: int = DEFAULT_LOG_BYTES_PER_MINUTE
    """Each channel's guest-log budget (``capabilities.logging.LogBudget``), bytes per minute."""
    replay: ReplayFactory | None = None
    """Each channel's webhook replay guard (``inbound.verifiers``); None: in memory, this process only."""
    emit_windows: Callable[[str, int, int], Window] | None = None
    """(instance, per minute, per hour) -> the channel's emit window shared by every worker
    (``capabilities.emit_shared``); None: this process's own."""


def namespaced_lookup(lookup: Callable[[str], str | None], instance: str,
                      platform: str) -> Callable[[str], str | None]:
    """``lookup`` for one instance: the default instance (named like its component) reads plain names; any other
    instance reads ``<instance>/<name>`` (``stores.secrets.namespaced``), so two accounts of one platform never
    share a secret."""
    if instance == platform:
        return lookup
    prefix = f"{instance}/"
    return lambda name: lookup(prefix + name)


def http_policy_from_spec(spec: HttpSpec) -> Any:
    """Adapt the capabilities file's ``capabilities.http`` to ``capabilities.http_policy.HttpPolicy``."""
    from ..capabilities.http_policy import AllowRule, CredentialRule, HttpPolicy

    creds = []
    for cid, c in spec.credentials.items():
        loc = c.location
        creds.append(CredentialRule(
            secret_name=c.secret_name, location=loc.type, host_patterns=tuple(c.host_patterns),
            path_patterns=tuple(c.path_patterns), optional=c.optional, id=cid,
            username=getattr(loc, "username", ""), name=getattr(loc, "name", ""),
            prefix=getattr(loc, "prefix", ""), placeholder=getattr(loc, "placeholder", ""),
        ))
    return HttpPolicy(
        allowlist=tuple(
            AllowRule(host=a.host, path_prefix=a.path_prefix, methods=tuple(a.methods) if a.methods else None)
            for a in spec.allowlist
        ),
        credentials=tuple(creds),
        requests_per_minute=spec.rate_limit.requests_per_minute,
        requests_per_hour=spec.rate_limit.requests_per_hour,
        max_request_bytes=spec.max_request_bytes,
        max_response_bytes=spec.max_response_bytes,
        timeout_secs=float(spec.timeout_secs),
    )
