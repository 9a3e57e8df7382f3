"""Files attached to an agent's reply (outbound attachments): limits, the outbox payload, loading for delivery.

A reply's files live in the blob store (``messages.blobs``); its outbox row keeps only references,
``payload["attachments"] = [{"sha256", "filename", "mime_type", "size"}, ...]``, so the log stays small and a retry
sends the same bytes. At delivery the host reads the blobs and hands them to the channel in world 0.1.0's
``agent-response.attachments`` (``list<attachment { filename, mime-type, data }>``, unchanged since 0.1.0): the
channel uploads them with the platform's own file API (Telegram sendDocument/sendPhoto, Slack files upload v2,
Discord multipart ``files[n]``).

Limits (per reply, checked before anything is stored; a refusal loses nothing):
- :data:`MAX_REPLY_ATTACHMENTS` files (Discord takes at most 10 files per message, the tightest platform);
- :data:`MAX_REPLY_ATTACHMENT_BYTES` bytes in all: the channel must pass the upload body to ``http-request``,
  whose ``list<u8>`` the host bounds at ``HostConfig.max_guest_list_bytes`` (2 MiB by default); the rest of that
  room is left for the multipart framing and the other form fields;
- file names 1..:data:`MAX_FILENAME_CHARS` characters without control characters or path separators (they become
  a ``Content-Disposition`` filename on the platform); media types ``type/subtype`` (RFC 6838 characters) up to
  :data:`MAX_MIME_CHARS`.
A blob missing at delivery time (it cannot be, unless someone deleted files under AIRLOCK_HOME) fails the reply for
good: retrying cannot bring it back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AirlockError
from ..host_config import DEFAULT_MAX_GUEST_LIST_BYTES
from ..runtime.values import Attachment
from .blobs import Blobs

MAX_REPLY_ATTACHMENTS = 10
"""Files in one reply (Discord's limit per message; Telegram and Slack take more)."""
MULTIPART_ROOM_BYTES = 512 * 1024
"""Room kept in the guest's ``http-request`` body for multipart framing and form fields, bytes."""
MAX_REPLY_ATTACHMENT_BYTES = DEFAULT_MAX_GUEST_LIST_BYTES - MULTIPART_ROOM_BYTES
"""Bytes of all files of one reply together (1.5 MiB; module docstring: the guest's http body bound)."""
MAX_FILENAME_CHARS = 255
MAX_MIME_CHARS = 127
DEFAULT_MIME = "application/octet-stream"
_MIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}$")
FILENAME_PATTERN = r"^[^\x00-\x1f\x7f/\\]+$"
_FILENAME = re.compile(FILENAME_PATTERN)
MIME_PATTERN = _MIME.pattern


class ReplyFileError(AirlockError):
    """A reply's files break a limit or name a blob that is not there (the message says which and why)."""


@dataclass(frozen=True)
class ReplyFile:
    """One file of a reply, by reference: its blob's SHA-256, the name and media type the platform shows, bytes."""

    sha256: str
    filename: str
    mime_type: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "filename": self.filename, "mime_type": self.mime_type, "size": self.size}


def check_name(filename: str, mime_type: str) -> None:
    """Raise ReplyFileError for a file name or media type outside the limits (module docstring)."""
    if not 1 <= len(filename) <= MAX_FILENAME_CHARS or not _FILENAME.fullmatch(filename):
        raise ReplyFileError(f"attachment filename must be 1-{MAX_FILENAME_CHARS} characters, without control "
                             "characters, '/' or '\\'")
    if len(mime_type) > MAX_MIME_CHARS or not _MIME.fullmatch(mime_type):
        raise ReplyFileError(f"attachment mime_type {mime_type[:40]!r} is not a media type like image/png")


def check_totals(files: Sequence[ReplyFile]) -> None:
    """Raise ReplyFileError when the files of one reply are too many or too large together."""
    if len(files) > MAX_REPLY_ATTACHMENTS:
        raise ReplyFileError(f"a reply carries at most {MAX_REPLY_ATTACHMENTS} attachments, not {len(files)}")
    total = sum(f.size for f in files)
    if total > MAX_REPLY_ATTACHMENT_BYTES:
        raise ReplyFileError(f"a reply's attachments total {total} bytes; at most {MAX_REPLY_ATTACHMENT_BYTES}")


def store_files(blobs: Blobs, files: Sequence[Attachment]) -> list[ReplyFile]:
    """Check then store in-process reply files (``host.respond(..., attachments=...)``); blocking (file writes).
    Raises ReplyFileError before anything is written when a limit is broken."""
    refs = []
    for f in files:
        check_name(f.filename, f.mime_type or DEFAULT_MIME)
        refs.append(ReplyFile("", f.filename, f.mime_type or DEFAULT_MIME, len(f.data)))
    check_totals(refs)
    return [ReplyFile(blobs.put(f.data), r.filename, r.mime_type, r.size) for f, r in zip(files, refs, strict=True)]


def payload_refs(payload: Mapping[str, Any]) -> list[ReplyFile]:
    """The file references of an outbox payload (none for a payload without ``attachments``)."""
    return [ReplyFile(str(a["sha256"]), str(a["filename"]), str(a["mime_type"]), int(a["size"]))
            for a in payload.get("attachments") or ()]


def load_files(blobs: Blobs, payload: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """The bytes of an outbox payload's files, for ``agent-response.attachments``; blocking (file reads).
    Raises ReplyFileError when a blob is missing or no longer matches its recorded size."""
    out = []
    for ref in payload_refs(payload):
        data = blobs.get(ref.sha256)
        if data is None or len(data) != ref.size:
            raise ReplyFileError(f"attachment {ref.filename!r} ({ref.sha256[:12]}...) is no longer stored")
        out.append(Attachment(filename=ref.filename, mime_type=ref.mime_type, data=data))
    return tuple(out)
