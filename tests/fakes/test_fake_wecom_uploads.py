"""The fake's temporary-media upload against WeCom's SDK (WecomTeam/aibot-node-sdk ``src/client.ts`` ``uploadMedia``:
512 KiB chunks before base64, at most 100, ``chunk_index`` from 0, the init ack's ``body.upload_id``, the finish
ack's ``body.media_id``; ``sendMediaMessage``: ``{chatid, msgtype, <msgtype>: {media_id}}``)."""

from __future__ import annotations

import base64
import hashlib

from fake_wecom_uploads import BAD_REQUEST, CHUNK_BYTES, MAX_CHUNKS, MediaUploads


def upload(fake: MediaUploads, data: bytes, **init: object) -> tuple[int, str, dict[str, object] | None]:
    chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    body = {"type": "file", "filename": "x.bin", "total_size": len(data), "total_chunks": len(chunks),
            "md5": hashlib.md5(data).hexdigest(), **init}
    code, _, ack = fake.answer("aibot_upload_media_init", body)
    assert code == 0 and ack is not None
    upload_id = ack["upload_id"]
    for i, part in enumerate(chunks):
        assert fake.answer("aibot_upload_media_chunk", {"upload_id": upload_id, "chunk_index": i,
                                                        "base64_data": base64.b64encode(part).decode()})[0] == 0
    return fake.answer("aibot_upload_media_finish", {"upload_id": upload_id})


def test_the_sdk_sequence_yields_a_media_id_with_the_bytes() -> None:
    fake = MediaUploads()
    data = bytes(range(256)) * 3000
    code, _, ack = upload(fake, data)
    assert code == 0 and ack is not None and set(ack) == {"type", "media_id", "created_at"}
    assert fake.media[str(ack["media_id"])].data == data
    ok = {"chatid": "u", "msgtype": "file", "file": {"media_id": ack["media_id"]}}
    assert fake.check_media_message(ok)[0] == 0
    assert fake.check_media_message({**ok, "msgtype": "image", "image": ok["file"]})[0] == BAD_REQUEST
    assert fake.check_media_message({**ok, "file": {"media_id": "nope"}})[0] == BAD_REQUEST


def test_refusals() -> None:
    fake = MediaUploads()
    init = {"type": "file", "filename": "x", "total_size": 10, "total_chunks": 1}
    assert fake.answer("aibot_upload_media_init", {**init, "type": "gif"})[0] == BAD_REQUEST
    assert fake.answer("aibot_upload_media_init", {**init, "total_chunks": 2})[0] == BAD_REQUEST
    too_many = {**init, "total_size": CHUNK_BYTES * (MAX_CHUNKS + 1), "total_chunks": MAX_CHUNKS + 1}
    assert fake.answer("aibot_upload_media_init", too_many)[0] == BAD_REQUEST
    assert upload(fake, b"abc", md5="0" * 32)[0] == BAD_REQUEST
    ack = fake.answer("aibot_upload_media_init", init)[2]
    assert ack is not None
    chunk = {"upload_id": ack["upload_id"], "chunk_index": 1, "base64_data": base64.b64encode(b"x" * 10).decode()}
    assert fake.answer("aibot_upload_media_chunk", chunk)[0] == BAD_REQUEST  # index from 0
    assert fake.answer("aibot_upload_media_chunk", {**chunk, "chunk_index": 0, "base64_data": "!!"})[0] == BAD_REQUEST
    assert fake.answer("aibot_upload_media_finish", {"upload_id": ack["upload_id"]})[0] == BAD_REQUEST
    assert fake.answer("aibot_upload_media_chunk", {**chunk, "upload_id": "unknown"})[0] == BAD_REQUEST
