"""sendDocument and sendPhoto of the fake Telegram server (Bot API docs, "sendDocument", "sendPhoto", "Sending
files"): files uploaded as ``multipart/form-data``. Every accepted file is in ``sent_files`` with its exact bytes."""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any

from .state import TelegramState
from .wire import JsonDict, _bad_request, _param_int, _param_str

MAX_CAPTION_LENGTH = 1024
"""Bot API: a caption is 0-1024 characters after entities parsing."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""Bot API sendPhoto: "The photo must be at most 10 MB in size"."""
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Bot API "Sending files": other files uploaded as multipart/form-data, at most 50 MB."""
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
"""The fake's request-size limit (aiohttp ``client_max_size``): the largest upload plus room for the form."""


class FileApi(TelegramState):
    """The ``sendDocument`` / ``sendPhoto`` handlers (mixed into ``BotApi``)."""

    async def _api_send_document(self, params: JsonDict) -> Any:
        """sendDocument(chat_id, document, caption, message_thread_id, ...) -> Message with ``document``
        (``file_id``, ``file_unique_id``, ``file_name``, ``mime_type``, ``file_size``).

        Rules: ``document`` must be an uploaded file (the fake takes no file_id or URL: 400 "Bad Request: there is no
        document in the request"); an empty file -> 400 "Bad Request: file must be non-empty"; over 50 MB -> 400
        "Bad Request: file is too big"; ``caption`` over 1024 characters -> 400 "Bad Request: message caption is
        too long". ``chat_id`` as in sendMessage."""
        upload = self._upload(params, "document", MAX_UPLOAD_BYTES)
        doc = {**self._file_ids(upload["data"]), "file_name": upload["filename"], "mime_type": upload["content_type"],
               "file_size": len(upload["data"])}
        return self._file_message(params, "sendDocument", "document", upload, doc)

    async def _api_send_photo(self, params: JsonDict) -> Any:
        """sendPhoto(chat_id, photo, caption, ...) -> Message with ``photo`` (a list of PhotoSize; the fake gives one,
        of the uploaded size, with width and height 0 since it decodes no image). Rules as sendDocument, with
        "there is no photo in the request" and a 10 MB limit ("Bad Request: PHOTO_INVALID_DIMENSIONS" is not
        simulated)."""
        upload = self._upload(params, "photo", MAX_PHOTO_BYTES)
        photo = [{**self._file_ids(upload["data"]), "width": 0, "height": 0, "file_size": len(upload["data"])}]
        return self._file_message(params, "sendPhoto", "photo", upload, photo)

    def _upload(self, params: JsonDict, field: str, limit: int) -> JsonDict:
        upload = params.get(field)
        if not isinstance(upload, dict) or not isinstance(upload.get("data"), bytes):
            raise _bad_request(f"there is no {field} in the request")
        if not upload["data"]:
            raise _bad_request("file must be non-empty")
        if len(upload["data"]) > limit:
            raise _bad_request("file is too big")
        return upload

    @staticmethod
    def _file_ids(data: bytes) -> JsonDict:
        digest = hashlib.sha256(data).hexdigest()
        return {"file_id": f"fake-{digest[:32]}", "file_unique_id": digest[:16]}

    def _file_message(self, params: JsonDict, method: str, field: str, upload: JsonDict, value: Any) -> JsonDict:
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        caption = _param_str(params, "caption")
        if caption is not None and len(caption) > MAX_CAPTION_LENGTH:
            raise _bad_request("message caption is too long")
        message: JsonDict = {"message_id": self._alloc_message_id(chat_id), "from": self._bot_sender(),
                             "chat": dict(chat), "date": int(time.time()), field: value}
        thread_id = _param_int(params, "message_thread_id")
        if thread_id is not None:
            message["message_thread_id"] = thread_id
        if caption:
            message["caption"] = caption
        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        self.sent_files.append({"method": method, "chat_id": chat_id, "filename": upload["filename"],
                                "content_type": upload["content_type"], "data": upload["data"], "caption": caption,
                                "message_thread_id": thread_id, "message": copy.deepcopy(message)})
        self.timeline.append((method, time.monotonic(), message["message_id"], upload["filename"]))
        self._notify_records()
        return message
