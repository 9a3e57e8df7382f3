"""Exceptions raised by the host functions in ``airlock_sdk.host``, and the typed delivery errors a channel raises
(world 0.2.0's ``send-error``)."""

from __future__ import annotations

__all__ = [
    "AttachmentError",
    "HostCallError",
    "HostError",
    "HttpError",
    "PairingError",
    "PermanentError",
    "RateLimited",
    "SendError",
    "TemporaryError",
    "WebsocketError",
    "WorkspaceError",
]


class HostCallError(Exception):
    """Raised by a backend when a host function returned a WIT ``err(string)``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HostError(Exception):
    """Base of every error a host function reports; ``message`` is the host's error string."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HttpError(HostError):
    """The request was refused (allow-list, rate limit, size) or failed in transport."""


class WorkspaceError(HostError):
    """A workspace write was refused (bad path, quota)."""


class PairingError(HostError):
    """A pairing call failed."""


class WebsocketError(HostError):
    """No websocket is open, or sending failed."""


class AttachmentError(HostError):
    """Attachment bytes were refused (size limits)."""


class SendError(Exception):
    """Base of the typed delivery errors: raised from ``on_respond``, ``on_broadcast``, ``on_edit`` or ``on_react``
    of a channel exported with ``export_delivery`` (world 0.2.0), the class tells the host whether and when to try
    again, ahead of the host's own reading of the platform's HTTP answers. Any other exception is unclassified (the
    host decides). ``message`` is shown to the operator: no secrets."""

    send_class = "unclassified"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RateLimited(SendError):
    """The platform asked to slow down: the host tries again after ``seconds`` (at least 1, at most 3600)."""

    send_class = "rate-limited"

    def __init__(self, seconds: int, message: str = "") -> None:
        super().__init__(message or f"rate limited for {seconds} s")
        self.seconds = max(0, min(int(seconds), 0xFFFFFFFF))


class TemporaryError(SendError):
    """Worth another try: the host backs off (0.5 s x 2^n, capped at 30 s, 6 tries in all)."""

    send_class = "temporary"


class PermanentError(SendError):
    """Trying again fails the same way: no retry (a dead letter; a stream's final text goes as a new message)."""

    send_class = "permanent"
