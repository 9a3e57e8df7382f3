"""The ``websocket-send-text`` host function.

A channel's websocket is owned by the host (a later runtime opens it from the capabilities file's
``websocket`` block). Until a socket is open for the channel, every send is refused with a WIT error.
Frames are at most 1 MiB.
"""

from __future__ import annotations

from collections.abc import Callable

from ..runtime.linker import GuestFault

MAX_FRAME_BYTES = 1024 * 1024

Sender = Callable[[str], None]


class WebsocketCapability:
    """Holds the sender of the channel's open websocket, if any."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sender: Sender | None = None

    def send_text(self, payload: str) -> None:
        if self.sender is None:
            raise GuestFault("no websocket is open for this channel")
        if len(payload.encode("utf-8")) > MAX_FRAME_BYTES:
            raise GuestFault(f"websocket frame larger than {MAX_FRAME_BYTES} bytes")
        self.sender(payload)
