"""The ``store-attachment-data`` host function: raw bytes for attachments emitted in the same callback.

Limits: 20 MB (20 * 1024 * 1024 bytes) per attachment, 50 MB per callback, ids of 1-128 bytes without
NUL. Bytes are kept only if the callback succeeds and are handed to the agent with the message whose
attachment ``id`` matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..runtime.linker import GuestFault

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
MAX_CALLBACK_BYTES = 50 * 1024 * 1024
MAX_ID_BYTES = 128


@dataclass
class AttachmentBuffer:
    data: dict[str, bytes] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.data.values())

    def store(self, attachment_id: str, data: bytes) -> None:
        if not attachment_id or len(attachment_id.encode()) > MAX_ID_BYTES or "\x00" in attachment_id:
            raise GuestFault(f"attachment id must be 1-{MAX_ID_BYTES} bytes without NUL")
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise GuestFault(f"attachment larger than {MAX_ATTACHMENT_BYTES} bytes")
        previous = len(self.data.get(attachment_id, b""))
        if self.total - previous + len(data) > MAX_CALLBACK_BYTES:
            raise GuestFault(f"attachments exceed {MAX_CALLBACK_BYTES} bytes in one callback")
        self.data[attachment_id] = bytes(data)
