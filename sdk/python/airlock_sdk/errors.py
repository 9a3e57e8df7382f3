"""Exceptions raised by the host functions in ``airlock_sdk.host``."""

from __future__ import annotations

__all__ = [
    "AttachmentError",
    "HostCallError",
    "HostError",
    "HttpError",
    "PairingError",
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
