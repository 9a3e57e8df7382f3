"""Builds the agent API's OpenAPI 3.1 document. The result is checked in as ``openapi.json`` (package data, served
at ``GET /v1/openapi.json``); a test fails when the file and this builder disagree. Regenerate with

    PYTHONPATH=host python -m airlock.agentapi.openapi > host/airlock/agentapi/openapi.json

Request body schemas come from the pydantic models the server validates with (``models``).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from ..messages.reply_files import MAX_REPLY_ATTACHMENT_BYTES, MAX_REPLY_ATTACHMENTS
from .models import (
    MAX_ACK_BATCH,
    MAX_TEXT_CHARS,
    SHA256_PATTERN,
    ULID_PATTERN,
    AckBatchBody,
    AckBody,
    AckItem,
    BroadcastBody,
    EditBody,
    ReactBody,
    ReplyAttachment,
    ReplyBody,
    StatusBody,
)
from .routes import DEFAULT_LIMIT, MAX_LIMIT
from .service import MAX_WAIT_S

_NULLABLE_STR = {"type": ["string", "null"]}
_ERRORS = {400: "Malformed request (not JSON, a bad query parameter or Idempotency-Key).",
           401: "Missing or unknown bearer token.",
           403: "Not allowed for this agent (a push agent cannot poll).",
           404: "No such message, outbox entry, channel or attachment (also one named in a reply) for this agent.",
           409: "The message is leased under another lease token, or its channel is not running.",
           413: "The body is too large.",
           422: "A well-formed request with invalid fields.",
           503: "The message storage (PostgreSQL or the Redis bus) is unreachable; nothing was changed. Retry "
                "after the Retry-After header's seconds."}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    # nested models (ReplyAttachment) become components of their own, referenced from the document's root
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("title", None)
    schema.pop("$defs", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: int, schema: dict[str, Any], description: str, errors: tuple[int, ...]) -> dict[str, Any]:
    out = {str(ok): _json(schema, description)}
    for code in (401, *errors, 503):
        out[str(code)] = _json(_ref("Error"), _ERRORS[code])
    return out


_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Repeating a key (per agent, 24 h) returns the first answer; reusing it for another "
                               "request is refused with 422.",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}}


def _id_param(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "description": f"The {what} id (a ULID).",
            "schema": {"type": "string", "pattern": ULID_PATTERN}}


def _post(summary: str, body: str, ok: int, result: str, errors: tuple[int, ...],
          path_id: str | None = None) -> dict[str, Any]:
    params = ([_id_param(path_id)] if path_id else []) + [_IDEMPOTENCY]
    return {"post": {"summary": summary, "parameters": params,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
                     "responses": _responses(ok, _ref(result), "Done.", (400, *errors, 413, 422))}}


def _message_schema() -> dict[str, Any]:
    attachment = {"type": "object", "required": ["id", "mime_type", "sha256", "url"], "properties": {
        "id": {"type": "string"}, "mime_type": {"type": "string"}, "filename": _NULLABLE_STR,
        "size": {"type": ["integer", "null"]}, "sha256": {"type": ["string", "null"], "pattern": SHA256_PATTERN},
        "source_url": _NULLABLE_STR, "extracted_text": _NULLABLE_STR,
        "url": {"type": ["string", "null"], "description": "Download path, relative to the API base URL."}}}
    props: dict[str, Any] = {
        "id": {"type": "string", "pattern": ULID_PATTERN}, "lease_token": {"type": "string"},
        "channel": {"type": "string", "description": "The channel instance."}, "user_id": {"type": "string"},
        "user_name": _NULLABLE_STR, "thread_id": _NULLABLE_STR, "content": {"type": "string"},
        "metadata": {"type": "object"}, "attachments": {"type": "array", "items": attachment},
        "session_key": {"type": "string"}, "conversation": {"type": "string"},
        "received_at": {"type": "number", "description": "Unix seconds."},
        "attempts": {"type": "integer", "minimum": 1, "description": "Times this message was handed out."}}
    return {"type": "object", "required": list(props), "properties": props}


def _schemas() -> dict[str, Any]:
    outbox_props: dict[str, Any] = {
        "id": {"type": "string"}, "kind": {"enum": ["respond", "broadcast", "status", "edit", "react"]},
        "in_reply_to": _NULLABLE_STR, "state": {"enum": ["pending", "sent", "failed"]},
        "attempts": {"type": "integer"}, "last_error": _NULLABLE_STR, "next_attempt_at": {"type": "number"},
        "created_at": {"type": "number"}, "updated_at": {"type": "number"},
        "platform_message_id": {"type": ["string", "null"],
                                "description": "The platform's id of the message a sent reply became (channels of "
                                               "world 0.2.0); edits use it."}}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Message": _message_schema(),
        "MessageList": {"type": "object", "required": ["messages"],
                        "properties": {"messages": {"type": "array", "items": _ref("Message")}}},
        "Uploaded": {"type": "object", "required": ["sha256", "size", "url"], "properties": {
            "sha256": {"type": "string", "pattern": SHA256_PATTERN}, "size": {"type": "integer", "minimum": 1},
            "url": {"type": "string"}}},
        "Acked": {"type": "object", "required": ["id", "state"],
                  "properties": {"id": {"type": "string"}, "state": {"const": "acked"}}},
        "AckItemError": {"type": "object", "required": ["id", "error"], "properties": {
            "id": {"type": "string"}, "error": {"type": "object", "required": ["status", "message"], "properties": {
                "status": {"enum": [404, 409], "description": "As POST /v1/messages/{id}/ack would answer: 404 "
                                                              "no such message for this agent, 409 leased under "
                                                              "another lease token."},
                "message": {"type": "string"}}}}},
        "AckResults": {"type": "object", "required": ["results"], "properties": {"results": {
            "type": "array", "maxItems": MAX_ACK_BATCH, "description": "One per message of the request, in order.",
            "items": {"oneOf": [_ref("Acked"), _ref("AckItemError")]}}}},
        "Accepted": {"type": "object", "required": ["outbox_id", "state"],
                     "properties": {"outbox_id": {"type": "string"}, "state": outbox_props["state"]}},
        "OutboxEntry": {"type": "object", "required": list(outbox_props), "properties": outbox_props},
        "AckBody": _schema(AckBody), "AckItem": _schema(AckItem), "AckBatchBody": _schema(AckBatchBody),
        "ReplyBody": _schema(ReplyBody),
        "ReplyAttachment": _schema(ReplyAttachment), "StatusBody": _schema(StatusBody),
        "BroadcastBody": _schema(BroadcastBody), "EditBody": _schema(EditBody),
        "ReactBody": _schema(ReactBody),
    }


def _paths() -> dict[str, Any]:
    poll_params = [
        {"name": "wait", "in": "query", "required": False,
         "description": f"Seconds to wait for a first message (long poll); more than {MAX_WAIT_S:g} is cut to it.",
         "schema": {"type": "number", "minimum": 0, "default": 0}},
        {"name": "limit", "in": "query", "required": False, "description": "Most messages returned.",
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}}]
    return {
        "/v1/openapi.json": {"get": {"summary": "This document.", "security": [],
                                     "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")}}},
        "/v1/messages": {"get": {
            "summary": "Lease the agent's next messages, oldest first.",
            "parameters": poll_params,
            "responses": _responses(200, _ref("MessageList"), "Leased messages (maybe none).", (400, 403))}},
        "/v1/messages/ack": _post(
            f"Acknowledge up to {MAX_ACK_BATCH} leased messages in one request (a whole lease), each id once. The "
            "answer is 200 with one result per message, in order: acked (also when it was acked already), or the "
            "error the single acknowledgement would answer (404, 409); one failing message does not fail the others.",
            "AckBatchBody", 200, "AckResults", ()),
        "/v1/messages/{id}/ack": _post("Acknowledge a message without replying.", "AckBody", 200, "Acked",
                                       (404, 409), "message"),
        "/v1/messages/{id}/reply": _post(
            f"Acknowledge the message and queue a reply (text up to {MAX_TEXT_CHARS} characters) in one step; "
            "delivery goes on in the background (GET /v1/outbox/{outbox_id}). Files go by reference: upload each "
            "with POST /v1/attachments (or name one this agent was handed), then list them in attachments.",
            "ReplyBody", 202, "Accepted",
            (404, 409), "message"),
        "/v1/messages/{id}/status": _post("Queue a status update (typing/thinking) for the message's chat.",
                                          "StatusBody", 202, "Accepted", (404, 409), "message"),
        "/v1/broadcast": _post("Queue a proactive message to a user on a channel instance.", "BroadcastBody", 202,
                               "Accepted", (404, 409)),
        "/v1/outbox/{id}/edit": _post(
            "Replace the text of a reply (its outbox id): the next text of a streamed reply (reply with "
            "\"stream\": true; \"final\" ends it and is sent last), or a one-off edit of a sent reply. Edits of "
            "a conversation are coalesced and go out at most once per second; a channel without on-edit gets a "
            "stream's final text as one message.", "EditBody", 202, "Accepted", (404, 409), "reply (outbox entry)"),
        "/v1/outbox/{id}/react": _post(
            "Add (or with \"remove\", take back) a reaction on a sent reply (its outbox id), in order with its "
            "conversation, through the channel's on-react with the reply's platform message id. 409 when the "
            "channel cannot react.", "ReactBody", 202, "Accepted", (404, 409), "reply (outbox entry)"),
        "/v1/outbox/{id}": {"get": {"summary": "Delivery state of an outbox entry this agent created.",
                                    "parameters": [_id_param("outbox entry")],
                                    "responses": _responses(200, _ref("OutboxEntry"), "The entry.", (404,))}},
        "/v1/attachments": {"post": {
            "summary": f"Upload a file (1..{MAX_REPLY_ATTACHMENT_BYTES} bytes) to attach to a reply by its sha256 "
                       f"(at most {MAX_REPLY_ATTACHMENTS} files, {MAX_REPLY_ATTACHMENT_BYTES} bytes together, per "
                       "reply). Idempotent by content.",
            "parameters": [_IDEMPOTENCY],
            "requestBody": {"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "contentMediaType": "application/octet-stream", "minLength": 1}}}},
            "responses": _responses(201, _ref("Uploaded"), "Stored.", (400, 413, 422))}},
        "/v1/attachments/{sha256}": {"get": {
            "summary": "Download an attachment of a message handed to this agent, or one it uploaded.",
            "parameters": [{"name": "sha256", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": SHA256_PATTERN}}],
            "responses": {"200": {"description": "The bytes.", "content": {"application/octet-stream": {
                "schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                **{k: v for k, v in _responses(200, {}, "", (404,)).items() if k != "200"}}}},
    }


def build() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the agent API."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Airlock agent API", "version": "1",
                 "description": "Agents lease, acknowledge and answer the messages routed to them. WebSocket "
                                "/v1/stream and push mode are described in the Airlock docs (agentapi.stream, "
                                "agentapi.push)."},
        "servers": [{"url": "http://127.0.0.1:8789"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": _schemas()},
        "paths": _paths(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
