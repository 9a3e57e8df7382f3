"""Files upload v2 of the fake Slack Web API (mixed into ``FakeSlack``), as Slack documents it ("Uploading files",
https://api.slack.com/messaging/files#upload; methods ``files.getUploadURLExternal`` and
``files.completeUploadExternal``):

* ``files.getUploadURLExternal`` (``filename``, ``length`` in bytes; form or query arguments only: a JSON body is
  ``invalid_arguments``, as Slack answers) -> ``{ok, upload_url, file_id}``. The URL is
  ``https://files.slack.com/upload/v1/<file_id>`` (Slack's host: a test maps ``files.slack.com`` to this fake with
  the host's upstream override).
* ``POST /upload/v1/<file_id>``: the file's bytes, as the raw body or as a multipart ``file`` field; answers
  ``200 OK - <length>``; an unknown id answers 404.
* ``files.completeUploadExternal`` (``files``: a JSON array of ``{id, title}``, optional ``channel_id``,
  ``thread_ts``, ``initial_comment``) -> ``{ok, files: [...]}``. Errors: ``invalid_arguments`` (no files),
  ``file_not_found`` (an id never handed out), ``file_uploads_incomplete`` (no bytes received, or not the
  ``length`` announced: the fake's own strictness).
Every completed file is in ``shared`` with its exact bytes.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

JsonDict = dict[str, Any]

UPLOAD_PREFIX = "https://files.slack.com/upload/v1/"
MAX_FILE_BYTES = 50 * 1024 * 1024
"""The fake's largest upload (its ``client_max_size`` is set from it); Slack's own limit is 1 GB."""


class SlackFiles:
    """State and handlers of the upload flow; ``FakeSlack`` calls :meth:`_init_files` and routes to them."""

    def _init_files(self) -> None:
        self.uploads: dict[str, JsonDict] = {}
        self.shared: list[JsonDict] = []
        """Completed files: ``id``, ``filename``, ``title``, ``length``, ``data`` (the bytes), ``content_type``,
        ``channel_id``, ``thread_ts``."""
        self._file_ids = itertools.count(1)

    if TYPE_CHECKING:
        def notify(self) -> None:
            """FakeServer's (the class this is mixed into with it)."""

    def file_handlers(self) -> dict[str, Any]:
        return {"files.getUploadURLExternal": self._get_upload_url,
                "files.completeUploadExternal": self._complete_upload}

    def _get_upload_url(self, params: JsonDict, json_body: bool = False) -> JsonDict:
        filename, length = params.get("filename"), str(params.get("length", ""))
        if json_body or not isinstance(filename, str) or not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._file_ids):08d}"
        self.uploads[file_id] = {"filename": filename, "length": int(length), "data": None, "content_type": None}
        return {"ok": True, "upload_url": UPLOAD_PREFIX + file_id, "file_id": file_id}

    async def handle_upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found")
        if request.content_type == "multipart/form-data":
            field = (await request.post()).get("file")
            if not isinstance(field, web.FileField):
                return web.Response(status=400, text="no file")
            upload["data"], upload["content_type"] = field.file.read(), field.content_type
        else:
            upload["data"], upload["content_type"] = await request.read(), request.content_type
        return web.Response(text=f"OK - {len(upload['data'])}")

    def _complete_upload(self, params: JsonDict) -> JsonDict:
        files = params.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            return {"ok": False, "error": "invalid_arguments"}
        for f in files:
            upload = self.uploads.get(str(f.get("id")))
            if upload is None:
                return {"ok": False, "error": "file_not_found"}
            if upload["data"] is None or len(upload["data"]) != upload["length"]:
                return {"ok": False, "error": "file_uploads_incomplete"}
        out = []
        for f in files:
            upload = self.uploads.pop(str(f["id"]))
            record = {"id": f["id"], "title": f.get("title") or upload["filename"], **upload,
                      "channel_id": params.get("channel_id"), "thread_ts": params.get("thread_ts")}
            self.shared.append(record)
            out.append({"id": f["id"], "name": upload["filename"], "title": record["title"],
                        "size": upload["length"]})
        self.notify()
        return {"ok": True, "files": out}
