"""A fake WhatsApp Cloud API (Graph API messages endpoint) on 127.0.0.1, plus signed webhook builders.

Graph side (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages):
``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer <access token>`` and a JSON body
``{"messaging_product": "whatsapp", "recipient_type"?: "individual", "to": "<wa id>", "type": "text",
"text": {"body": "...", "preview_url"?: bool}, "context"?: {"message_id": "wamid..."}}``, answered with
``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}``.

Errors use Graph's envelope ``{"error": {"message", "type", "code", "fbtrace_id"}}``: no token -> 400 code
2500; wrong token -> 401 code 190 (OAuthException); unknown phone number id -> 400 code 100; missing or wrong
``messaging_product``/``to``/``type``/``text.body``, or a body over 4096 characters (the documented text limit)
-> 400 code 100. Only ``type: text`` is implemented (anything else answers 400 code 100: a deliberate gap).

Webhook side (what Meta POSTs to the app): :func:`text_notification`, :func:`status_notification` and
:func:`media_notification` follow the "Webhooks payload examples" of the Cloud API docs; :func:`sign` computes
``X-Hub-Signature-256`` with the standard library's hmac (``sha256=`` + hex HMAC-SHA256 of the raw body keyed
with the app secret, Meta's "Verifying payloads" reference algorithm), independent of Airlock's code.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from fake_base import FakeServer, bearer_token

__all__ = [
    "DEFAULT_TOKEN",
    "MAX_TEXT_CHARS",
    "PHONE_NUMBER_ID",
    "FakeWhatsApp",
    "GraphCall",
    "media_notification",
    "sign",
    "status_notification",
    "text_notification",
]

JsonDict = dict[str, Any]

DEFAULT_TOKEN = "EAAGfakeWhatsAppAccessToken123"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE = "15550783881"
WABA_ID = "102290129340398"
MAX_TEXT_CHARS = 4096
"""Text message body limit (Cloud API messages reference, "text object": maximum 4096 characters)."""

_VERSION = re.compile(r"v\d{1,2}\.\d")


@dataclass
class GraphCall:
    """One request to the messages endpoint, accepted or not."""

    version: str
    phone_number_id: str
    body: Any
    authorization: str | None
    status: int = 0


def _graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> web.Response:
    err = {"message": message, "type": kind, "code": code, "fbtrace_id": "AfakeTraceId"}
    return web.json_response({"error": err}, status=status)


class FakeWhatsApp(FakeServer):
    """The fake Graph server. ``async with FakeWhatsApp() as wa:``; point ``graph.facebook.com`` at
    ``wa.base_url``. Records: ``calls`` (every :class:`GraphCall`) and ``sent`` (accepted message bodies, each
    plus ``"id"``, the wamid the fake returned)."""

    def __init__(self, token: str = DEFAULT_TOKEN, phone_number_ids: tuple[str, ...] = (PHONE_NUMBER_ID,)) -> None:
        super().__init__()
        self.token = token
        self.phone_number_ids = set(phone_number_ids)
        self.calls: list[GraphCall] = []
        self.sent: list[JsonDict] = []
        self._ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)

    async def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[JsonDict]:
        """The first ``n`` accepted messages; TimeoutError if fewer arrive within ``timeout`` seconds."""
        return await self.wait_for_records(self.sent, n, timeout, "sent messages")

    async def _messages(self, request: web.Request) -> web.Response:
        version, number = request.match_info["version"], request.match_info["phone_number_id"]
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = GraphCall(version, number, body, request.headers.get("Authorization"))
        resp = self._answer(call)
        call.status = resp.status
        self.calls.append(call)
        self.notify()
        return resp

    def _answer(self, call: GraphCall) -> web.Response:
        token = bearer_token(call.authorization)
        if token is None:
            return _graph_error(400, 2500, "An active access token must be used to query information.")
        if token != self.token:
            return _graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if not _VERSION.fullmatch(call.version) or call.phone_number_id not in self.phone_number_ids:
            return _graph_error(400, 100, f"Unsupported post request. Object with ID '{call.phone_number_id}' "
                                "does not exist, cannot be loaded due to missing permissions, or does not "
                                "support this operation.", "GraphMethodException")
        problem = _invalid_text_message(call.body)
        if problem is not None:
            return _graph_error(400, 100, problem)
        assert isinstance(call.body, dict)
        wamid = f"wamid.FAKE{next(self._ids):010d}"
        self.sent.append({**call.body, "id": wamid, "phone_number_id": call.phone_number_id})
        to = call.body["to"]
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [{"id": wamid}]})


def _invalid_text_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Invalid parameter: the body must be a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    if not isinstance(body.get("to"), str) or not body["to"]:
        return "The parameter to is required."
    if body.get("type", "text") != "text":
        return f"(#100) The fake implements only type text, not {body.get('type')!r}"
    text = body.get("text")
    if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"]:
        return "The parameter text['body'] is required."
    if len(text["body"]) > MAX_TEXT_CHARS:
        return f"Param text['body'] must be at most {MAX_TEXT_CHARS} characters long."
    context = body.get("context")
    if context is not None and (not isinstance(context, dict) or not isinstance(context.get("message_id"), str)):
        return "Param context['message_id'] must be a string."
    return None


# ---- webhook notifications (Meta -> app) -----------------------------------------------------------

_msg_ids = itertools.count(1)


def _notification(value: JsonDict) -> JsonDict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": DISPLAY_PHONE, "phone_number_id": value.pop("_pnid")}, **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}


def new_message_id() -> str:
    return f"wamid.HBgLMTU1NTAxMjM0NTY{next(_msg_ids):06d}"


def text_notification(text: str, *, wa_id: str = "15551234567", name: str | None = "Alice",
                      message_id: str | None = None, reply_to: str | None = None,
                      phone_number_id: str = PHONE_NUMBER_ID) -> JsonDict:
    """A ``messages`` notification with one text message from ``wa_id`` (``reply_to``: a context wamid)."""
    message: JsonDict = {"from": wa_id, "id": message_id or new_message_id(), "timestamp": str(int(time.time())),
                         "text": {"body": text}, "type": "text"}
    if reply_to is not None:
        message["context"] = {"from": DISPLAY_PHONE, "id": reply_to}
    value: JsonDict = {"_pnid": phone_number_id, "messages": [message]}
    if name is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    return _notification(value)


def media_notification(kind: str = "image", *, wa_id: str = "15551234567",
                       phone_number_id: str = PHONE_NUMBER_ID) -> JsonDict:
    """A non-text message (``image``, ``sticker``, ``location``...) with a minimal type-specific object."""
    message: JsonDict = {"from": wa_id, "id": new_message_id(), "timestamp": str(int(time.time())), "type": kind,
                         kind: {"id": "1003383421387256", "mime_type": "image/jpeg", "sha256": "0" * 64}}
    return _notification({"_pnid": phone_number_id, "contacts": [{"profile": {"name": "Alice"}, "wa_id": wa_id}],
                          "messages": [message]})


def status_notification(message_id: str, status: str = "delivered", *, wa_id: str = "15551234567",
                        phone_number_id: str = PHONE_NUMBER_ID) -> JsonDict:
    """A ``statuses`` notification (sent/delivered/read) for a message the business sent."""
    entry: JsonDict = {"id": message_id, "status": status, "timestamp": str(int(time.time())), "recipient_id": wa_id}
    return _notification({"_pnid": phone_number_id, "statuses": [entry]})


def sign(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` for ``body``: ``sha256=`` + hex HMAC-SHA256 keyed with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
