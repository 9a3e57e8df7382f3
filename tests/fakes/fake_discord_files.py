"""File uploads of the fake Discord REST API (Discord docs, "Reference" > "Uploading Files"): a message with files is
sent as ``multipart/form-data`` with the JSON body in a ``payload_json`` field and each file in a ``files[n]`` field
(with a filename); ``payload_json.attachments`` may describe them as ``{"id": n, "filename": ...}``.

:func:`read_multipart` turns such a request into the JSON body plus the files; rules the fake enforces (Discord
answers 400 code 50035 "Invalid Form Body" for them): a file field named other than ``files[n]``, a file without a
filename, more than :data:`MAX_FILES` files, an ``attachments`` entry whose ``id`` names no uploaded file, a
``payload_json`` that is not a JSON object. A message with files may have empty content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import BodyPartReader, web

MAX_FILES = 10
"""Discord: at most 10 files per message."""
MAX_BODY_BYTES = 26 * 1024 * 1024
"""The fake's request-size limit: Discord's default upload limit (25 MiB) plus room for the form."""
FILES_KEY = "__files__"
"""Where :func:`read_multipart` puts the uploaded files in the returned body (``filename``, ``content_type``,
``data``, ``index``)."""
_FIELD = re.compile(r"^files\[(\d{1,2})\]$")


class FormError(ValueError):
    """The form breaks one of the module docstring's rules; the message names the field."""


async def read_multipart(request: web.Request) -> dict[str, Any]:
    """The ``payload_json`` object with the files under :data:`FILES_KEY`. Raises FormError."""
    body: dict[str, Any] = {}
    files: list[dict[str, Any]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):  # a nested multipart: not something Discord takes
            raise FormError("_")
        name = part.name or ""
        if name == "payload_json":
            try:
                doc = json.loads(await part.read())
            except ValueError:
                raise FormError("payload_json") from None
            if not isinstance(doc, dict):
                raise FormError("payload_json")
            body.update(doc)
            continue
        match = _FIELD.fullmatch(name)
        if match is None or not part.filename:
            raise FormError(name or "_")
        files.append({"index": int(match.group(1)), "filename": part.filename,
                      "content_type": part.headers.get("Content-Type", "application/octet-stream"),
                      "data": bytes(await part.read())})
    if len(files) > MAX_FILES:
        raise FormError("files")
    indexes = {f["index"] for f in files}
    for att in body.get("attachments") or []:
        if not isinstance(att, dict) or att.get("id") not in indexes:
            raise FormError("attachments")
    body[FILES_KEY] = files
    return body


def attachment_objects(files: list[dict[str, Any]], new_id: Any) -> list[dict[str, Any]]:
    """The message's ``attachments`` (Discord's attachment objects, as the fake fills them)."""
    return [{"id": new_id(), "filename": f["filename"], "size": len(f["data"]), "content_type": f["content_type"],
             "url": f"https://cdn.discordapp.com/attachments/fake/{f['filename']}"} for f in files]
