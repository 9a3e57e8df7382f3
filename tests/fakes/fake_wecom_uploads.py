"""Temporary-media upload of the fake WeCom AI-bot long connection (used by ``fake_wecom_ws.FakeWecomWs``).

As WeCom documents it ("智能机器人长连接", developer.work.weixin.qq.com/document/path/101463, 上传临时素材 and
主动推送消息) and its SDK implements it (WecomTeam/aibot-node-sdk, ``src/client.ts`` ``uploadMedia``,
``sendMediaMessage``; ``src/types/api.ts`` ``UploadMediaInitBody`` ... ``SendMediaMsgBody``):

- ``aibot_upload_media_init`` ``{type, filename, total_size, total_chunks, md5?}``, ``type`` one of file, image,
  voice, video, at most :data:`MAX_CHUNKS` chunks -> ack body ``{upload_id}``;
- ``aibot_upload_media_chunk`` ``{upload_id, chunk_index, base64_data}``, at most :data:`CHUNK_BYTES` bytes before
  base64; ``chunk_index`` from 0 as the SDK's code sends it -> plain ack;
- ``aibot_upload_media_finish`` ``{upload_id}`` -> ack body ``{type, media_id, created_at}``;
- ``aibot_send_msg`` ``{chatid, msgtype, <msgtype>: {media_id}}`` for a media message.

What WeCom does not publish is the fake's own strictness, answered with errcode :data:`BAD_REQUEST`: an unknown
``upload_id`` or ``media_id``, a chunk index out of range or sent twice, a finish before every chunk arrived, bytes
that do not add up to ``total_size`` or do not match ``md5``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BAD_REQUEST", "CHUNK_BYTES", "MAX_CHUNKS", "MEDIA_TYPES", "Answer", "Media", "MediaUploads"]

JsonDict = dict[str, Any]
Answer = tuple[int, str, JsonDict | None]
"""(errcode, errmsg, ack body or None)."""

CHUNK_BYTES = 512 * 1024
"""The SDK: "单个分片不超过 512KB（Base64 编码前）"."""
MAX_CHUNKS = 100
"""The SDK: at most 100 chunks."""
MEDIA_TYPES = frozenset({"file", "image", "voice", "video"})
"""``WeComMediaType``."""
BAD_REQUEST = 40058
"""The fake's errcode for a request it refuses (WeCom's server API uses 40058 for an invalid parameter)."""
UPLOAD_COMMANDS = frozenset({"aibot_upload_media_init", "aibot_upload_media_chunk", "aibot_upload_media_finish"})


@dataclass
class Media:
    """An uploaded item: what ``aibot_upload_media_init`` announced and the bytes that came."""

    type: str
    filename: str
    total_size: int
    total_chunks: int
    md5: str | None
    chunks: dict[int, bytes] = field(default_factory=dict)
    media_id: str | None = None

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks[i] for i in sorted(self.chunks))


class MediaUploads:
    """State of the uploads on one fake; ``media`` holds finished items by ``media_id``."""

    def __init__(self) -> None:
        self.uploads: dict[str, Media] = {}
        self.media: dict[str, Media] = {}
        self._ids = itertools.count(1)

    def answer(self, cmd: str, body: JsonDict) -> Answer:
        """The ack of an upload command (``cmd`` in ``UPLOAD_COMMANDS``)."""
        if cmd == "aibot_upload_media_init":
            return self._init(body)
        upload = self.uploads.get(body.get("upload_id"))  # type: ignore[arg-type]
        if upload is None:
            return BAD_REQUEST, "invalid upload_id", None
        return self._chunk(upload, body) if cmd == "aibot_upload_media_chunk" else self._finish(body["upload_id"])

    def _init(self, body: JsonDict) -> Answer:
        kind, name, size, chunks = (body.get(k) for k in ("type", "filename", "total_size", "total_chunks"))
        ok = (kind in MEDIA_TYPES and isinstance(name, str) and name and isinstance(size, int) and size > 0
              and isinstance(chunks, int) and 1 <= chunks <= MAX_CHUNKS and -(-size // CHUNK_BYTES) == chunks)
        if not ok:
            return BAD_REQUEST, "invalid upload parameters", None
        upload_id = f"fake-upload-{next(self._ids)}"
        self.uploads[upload_id] = Media(str(kind), str(name), int(size), int(chunks), body.get("md5"))  # type: ignore[arg-type]
        return 0, "ok", {"upload_id": upload_id}

    def _chunk(self, upload: Media, body: JsonDict) -> Answer:
        index = body.get("chunk_index")
        try:
            data = base64.b64decode(str(body.get("base64_data")), validate=True)
        except (binascii.Error, ValueError):
            return BAD_REQUEST, "invalid base64_data", None
        if not isinstance(index, int) or not 0 <= index < upload.total_chunks or index in upload.chunks:
            return BAD_REQUEST, "invalid chunk_index", None
        if not data or len(data) > CHUNK_BYTES:
            return BAD_REQUEST, "invalid chunk size", None
        upload.chunks[index] = data
        return 0, "ok", None

    def _finish(self, upload_id: str) -> Answer:
        upload = self.uploads.pop(upload_id)
        data = upload.data
        if len(upload.chunks) != upload.total_chunks or len(data) != upload.total_size:
            return BAD_REQUEST, "upload incomplete", None
        if upload.md5 is not None and hashlib.md5(data).hexdigest() != upload.md5:
            return BAD_REQUEST, "md5 mismatch", None
        upload.media_id = f"fake-media-{next(self._ids)}"
        self.media[upload.media_id] = upload
        return 0, "ok", {"type": upload.type, "media_id": upload.media_id, "created_at": str(int(time.time()))}

    def check_media_message(self, body: JsonDict) -> Answer:
        """The ack of an ``aibot_send_msg`` whose ``msgtype`` is a media type."""
        kind = body.get("msgtype")
        item = body.get(kind) if isinstance(kind, str) else None
        media = self.media.get(item.get("media_id")) if isinstance(item, dict) else None
        if media is None or media.type != kind or not body.get("chatid"):
            return BAD_REQUEST, "invalid media_id", None
        return 0, "ok", None
