"""Airlock's exception tree, in one place.

Every failure says which side is at fault: the guest (untrusted component), the operator (configuration),
or the host (a bug in Airlock). Messages never carry secret values, stack traces or host paths that a guest
or a platform could see; details go to the host log only.

    AirlockError
    ├── ConfigError                  operator input is wrong (capabilities file, host config, CLI args)
    │   └── CapabilitiesError        a capabilities file failed validation: "<file>: <json path>: <problem>"
    ├── SecretStoreError             the encrypted secret store cannot be opened or decrypted
    ├── PairingError                 an unknown or expired pairing code (operator-facing)
    ├── ComponentError               a .wasm file cannot be loaded (not a component, unsupported world)
    ├── PackageError                 a channel package is malformed, tampered with, unsigned or untrusted, or
    │                                cannot be fetched (``airlock.packages``); nothing was installed
    ├── GuestError                   the guest misbehaved during a callback (its fault, never the host's)
    │   ├── GuestTrap                a trap; .kind classifies it:
    │   │     "timeout" (epoch deadline), "fuel" (fuel exhausted), "memory" (memory limit),
    │   │     "panic" (unreachable / guest abort), "trap" (any other wasm trap)
    │   └── GuestReturnedError       the callback returned a WIT error (e.g. on-start -> err(msg));
    │                                 .send_class: the class of a typed delivery error (world 0.2.0), or None
    ├── HostBug                      Airlock itself failed during a callback (a defect to report)
    ├── BackpressureError            the message bus is full; the caller should retry later
    ├── ChannelDisabled              the operator disabled the channel; the callback did not run
    ├── EmitRateLimited              a callback's messages would pass the channel's emit rate; nothing applied
    ├── NothingToChange              an edit or reaction cannot be delivered: no platform id, or the channel does
    │                                 not export on-edit / on-react (never retried)
    ├── SandboxBusy                  no instance slot free (pooling allocator full); retry later, no one's fault
    ├── StateUnavailable             the state database cannot be reached (PostgreSQL down); nothing was changed
    └── LeaseLost                    a lease (poller, websocket) is no longer held under its fencing token
"""

from __future__ import annotations

from typing import Literal

TrapKind = Literal["timeout", "fuel", "memory", "panic", "trap"]


class AirlockError(Exception):
    """Base of every error Airlock raises on purpose."""


class ConfigError(AirlockError):
    """Operator configuration is invalid."""


class CapabilitiesError(ConfigError):
    """A capabilities file is invalid. The message is one line: ``<file>: <json path>: <problem>``."""


class SecretStoreError(AirlockError):
    """The secret store cannot be read (wrong master key, corrupt file)."""


class PairingError(AirlockError):
    """A pairing code is unknown or expired."""


class ComponentError(AirlockError):
    """A .wasm file is not a loadable component of a supported world."""


class PackageError(AirlockError):
    """A channel package (``<name>-<version>.airlock``) was refused; the message is one line naming the package
    and, for a bad member, the member."""


class GuestError(AirlockError):
    """The guest component misbehaved during a callback."""


class GuestTrap(GuestError):
    """The guest trapped. ``kind`` classifies the trap (see the module docstring)."""

    def __init__(self, kind: TrapKind, message: str) -> None:
        super().__init__(f"guest trap ({kind}): {message}")
        self.kind: TrapKind = kind


SendClass = Literal["rate_limited", "temporary", "permanent"]
"""The class of a typed ``send-error`` (``airlock:channel/delivery@0.2.0``); an ``unclassified`` one has none."""


class GuestReturnedError(GuestError):
    """A callback returned ``err(message)``. A typed delivery error (world 0.2.0's ``send-error``) also carries its
    class in ``send_class`` and, for ``rate_limited``, the guest's wait in ``retry_after_s``; these take precedence
    over the host's classification of the platform's answers (``messages.retry``)."""

    def __init__(self, message: str, send_class: SendClass | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.send_class: SendClass | None = send_class
        self.retry_after_s = retry_after_s


class HostBug(AirlockError):
    """Airlock failed while serving a callback; the guest is not at fault."""


class ChannelDisabled(AirlockError):
    """The operator disabled the channel (admin API); the callback was not run."""


class BackpressureError(AirlockError):
    """The agent is lagging and the inbound queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"message bus full; retry after {retry_after}s")
        self.retry_after = retry_after


class EmitRateLimited(AirlockError):
    """A callback succeeded but its emitted messages would pass the channel's ``emit_rate_limit``: nothing it
    did was applied (no workspace commit, no message), so the same input can be offered again after
    ``retry_after`` seconds (a webhook answers 429 + Retry-After; a poll or websocket frame waits and retries)."""

    def __init__(self, count: int, retry_after: int) -> None:
        super().__init__(f"{count} emitted message(s) over the emit rate limit; retry after {retry_after}s")
        self.retry_after = retry_after


class NothingToChange(AirlockError):
    """An edit or reaction cannot be delivered: the message it names has no platform id (its channel returned none,
    or it was never sent), or the channel does not export on-edit / on-react. Permanent: trying again cannot help."""


class SandboxBusy(AirlockError):
    """Every instance slot of the pooling allocator is in use (more callbacks in flight than the pool's
    ``slots``): the callback did not start, nothing was applied; retry after ``retry_after`` seconds. Neither
    the guest's fault nor a host defect (webhooks answer 503 with Retry-After)."""

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(f"no sandbox slot free ({reason}); retry after {retry_after}s")
        self.retry_after = retry_after


class StateUnavailable(AirlockError):
    """The state database (``state = "postgresql://..."``) cannot be reached or dropped the connection: the
    operation was not applied (its transaction rolled back, or never began). Transient: a webhook answers 503 with
    Retry-After ``retry_after`` seconds, a poll waits for its next turn, the operation can be repeated. The message
    names the failure class only (no server address, no credentials)."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        super().__init__(f"state database unavailable ({reason}); retry after {retry_after}s")
        self.retry_after = retry_after


class LeaseLost(AirlockError):
    """A lease (``state.leases``) is no longer held under the fencing token the caller has: it expired and another
    holder took it, or it was released. The write it guarded was not applied; the caller stops the work the lease
    covered (a poller stops before its next poll) and may try to acquire the lease again."""

    def __init__(self, name: str, token: int) -> None:
        super().__init__(f"lease {name!r} is no longer held under token {token}")
        self.name = name
        self.token = token


class HttpRefused(AirlockError):
    """``http-request`` refused or failed; ``str(err)`` is safe to return to the guest as ``err(message)``.

    The message never contains a secret value (callers redact every secret used by the request), a host
    filesystem path or a stack trace.
    """
