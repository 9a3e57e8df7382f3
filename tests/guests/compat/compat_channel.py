"""A ``near:agent@0.3.1`` test channel that behaves like IronClaw's public channels on the points where the host
must follow IronClaw's contract (tests/compat). It is ours, written from the behaviour, not from their code.

- on-start: stores the config it was given at ``state/start_config`` (so a test can see what the host
  injected). With a ``tunnel_url`` it enters webhook mode the way IronClaw's Telegram channel does: it calls
  ``setWebhook`` with ``<tunnel_url>/webhook/<name>`` and ``secret_token`` = the injected ``webhook_secret``.
  It registers ``/webhook/<name>`` (``name`` from ``config.compat_name``, default ``compat``).
- on-poll: like IronClaw's Discord and WeCom channels, reads the batch the host moved to
  ``state/gateway_event_queue_processing`` (a JSON array of frame texts), clears it to ``[]``, and emits one
  message per frame: a Discord MESSAGE_CREATE from its author (other Discord frames, READY included, are skipped),
  a WeCom ``aibot_msg_callback`` from its sender (metadata keeps the frame's ``req_id``), anything else (its text)
  from user ``frame``. Each message's metadata says how many frames the batch held.
- on-http-request: a JSON body ``{"message": {...}}`` (a Telegram update) is emitted from the sender; a Feishu
  event (``{"header": ..., "event": ...}``) is emitted after the guest checked the verification token itself
  against ``config.verification_token`` (as IronClaw's Feishu channel does: its file sets
  ``managed_by_host: false``).
- on-http-request with ``{"probe": {...}}``: calls host functions as ``compat_probes`` describes and emits what
  they answered (log, now-millis, secret-exists, store-attachment-data, the pairing functions).
- on-status: on the original message's ``chat_id`` (Telegram), ``sendChatAction typing`` for "thinking", and for
  every update a ``sendMessage`` whose text is the JSON ``{"status", "message", "metadata"}`` the host passed.
- on-broadcast: ``sendMessage`` to the user id with the JSON ``{"content", "message_id", "metadata",
  "thread_id"}``; the content ``fail`` is refused with an error (as a platform refusal would be).
- on-shutdown: logs ``compat on-shutdown ran`` and sends ``shutdown`` to chat 1 (so a test sees it ran).
- on-respond: a WeCom reply (metadata ``ws_req_id``) goes out as ``aibot_respond_msg`` on the host's websocket;
  a Feishu reply fetches a tenant token with the app id and secret from its config and sends the reply with
  its OWN ``Authorization: Bearer`` header (the file declares a bearer credential whose secret is never stored).
"""

from __future__ import annotations

import json
from typing import Any

from compat_probes import run_probe

from airlock_sdk import AgentReply, Channel, ChannelConfig, Endpoint, Message, Request, Response, StatusUpdate, host

START_CONFIG = "state/start_config"
QUEUE_BATCH = "state/gateway_event_queue_processing"
FEISHU_API = "https://open.feishu.cn/open-apis"
TELEGRAM_API = "https://api.telegram.org/bot{TELEGRAM_BOT_TOKEN}"


def _config() -> dict[str, Any]:
    cfg = host.workspace_read_json(START_CONFIG, {})
    return cfg if isinstance(cfg, dict) else {}


class Compat(Channel):
    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        host.workspace_write_json(START_CONFIG, config)
        path = f"/webhook/{config.get('compat_name') or 'compat'}"
        tunnel = config.get("tunnel_url")
        secret = config.get("webhook_secret")
        if isinstance(tunnel, str) and tunnel:
            body: dict[str, Any] = {"url": tunnel.rstrip("/") + path}
            if isinstance(secret, str) and secret:
                body["secret_token"] = secret
            resp = host.http("POST", f"{TELEGRAM_API}/setWebhook", headers={"Content-Type": "application/json"},
                             body=json.dumps(body).encode())
            host.info(f"setWebhook answered {resp.status}")
        return ChannelConfig(display_name="compat", endpoints=[Endpoint(path, ["POST"], require_secret=bool(secret))])

    def on_poll(self) -> None:
        raw = host.workspace_read(QUEUE_BATCH)
        frames = json.loads(raw) if raw else []
        if not frames:
            return
        host.workspace_write(QUEUE_BATCH, "[]")
        for text in frames:
            msg = _frame_message(text, len(frames))
            if msg is not None:
                host.emit(msg)

    def on_http_request(self, req: Request) -> Response:
        data = req.json()
        if isinstance(data.get("probe"), dict):
            run_probe(data["probe"])
            return Response.json({"ok": True})
        if isinstance(data.get("message"), dict):
            msg = data["message"]
            host.emit(Message(user_id=str(msg["from"]["id"]), content=str(msg.get("text", "")),
                              metadata={"chat_id": msg["chat"]["id"], "validated": req.secret_validated}))
            return Response.json({"ok": True})
        header = data.get("header") if isinstance(data.get("header"), dict) else {}
        if header.get("token") != _config().get("verification_token"):
            return Response.json({"error": "bad verification token"}, status=401)
        event = data["event"]
        host.emit(Message(user_id=event["sender"]["sender_id"]["open_id"],
                          content=json.loads(event["message"]["content"])["text"],
                          metadata={"message_id": event["message"]["message_id"]}))
        return Response.json({"ok": True})

    def on_respond(self, reply: AgentReply) -> None:
        meta = reply.metadata
        if meta.get("ws_req_id"):
            host.websocket_send(json.dumps({
                "cmd": "aibot_respond_msg", "headers": {"req_id": meta["ws_req_id"]},
                "body": {"msgtype": "stream", "stream": {"id": "s1", "finish": True, "content": reply.content}}}))
            return
        if meta.get("message_id"):
            _feishu_reply(str(meta["message_id"]), reply.content)


    def on_status(self, update: StatusUpdate) -> None:
        chat = update.metadata.get("chat_id")
        if chat is None:
            return
        if update.status == "thinking":
            _telegram("sendChatAction", {"chat_id": chat, "action": "typing"})
        seen = {"status": update.status, "message": update.message, "metadata": update.metadata}
        _telegram("sendMessage", {"chat_id": chat, "text": json.dumps(seen)})

    def on_broadcast(self, user_id: str, reply: AgentReply) -> None:
        if reply.content == "fail":
            raise RuntimeError("the platform refused the broadcast")
        seen = {"content": reply.content, "message_id": reply.message_id, "metadata": reply.metadata,
                "thread_id": reply.thread_id}
        _telegram("sendMessage", {"chat_id": int(user_id), "text": json.dumps(seen)})

    def on_shutdown(self) -> None:
        host.info("compat on-shutdown ran")
        _telegram("sendMessage", {"chat_id": 1, "text": "shutdown"})


def _telegram(method: str, body: dict[str, Any]) -> None:
    resp = host.http("POST", f"{TELEGRAM_API}/{method}", json_body=body)
    if resp.status != 200:
        raise RuntimeError(f"{method} failed: HTTP {resp.status}")


def _frame_message(text: str, batch: int) -> Message | None:
    try:
        frame = json.loads(text)
    except ValueError:
        frame = None
    frame = frame if isinstance(frame, dict) else {}
    meta: dict[str, Any] = {"batch": batch}
    if "op" in frame:
        if frame.get("op") != 0 or frame.get("t") != "MESSAGE_CREATE":
            return None
        d = frame["d"]
        return Message(user_id=str(d["author"]["id"]), content=str(d["content"]), metadata=meta)
    if frame.get("cmd") == "aibot_msg_callback":
        body = frame["body"]
        meta["ws_req_id"] = frame["headers"]["req_id"]
        return Message(user_id=str(body["from"]["userid"]), content=str(body["text"]["content"]), metadata=meta)
    return Message(user_id="frame", content=text, metadata=meta)


def _feishu_reply(message_id: str, text: str) -> None:
    cfg = _config()
    token_resp = host.http("POST", f"{FEISHU_API}/auth/v3/tenant_access_token/internal",
                           headers={"Content-Type": "application/json"},
                           body=json.dumps({"app_id": cfg.get("app_id"), "app_secret": cfg.get("app_secret")}).encode())
    token = token_resp.json().get("tenant_access_token")
    if not token:
        raise RuntimeError(f"no tenant token (HTTP {token_resp.status})")
    resp = host.http("POST", f"{FEISHU_API}/im/v1/messages/{message_id}/reply",
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                     body=json.dumps({"msg_type": "text", "content": json.dumps({"text": text})}).encode())
    if resp.status != 200:
        raise RuntimeError(f"reply failed: HTTP {resp.status}")
