"""Telegram Bot API channel for Airlock (polling or webhook).

World 0.2.0: replies return the Telegram message id, and streamed replies become ``editMessageText`` edits of it,
and reactions are ``setMessageReaction`` (``app.py`` exports ``Delivery``, ``Edits`` and ``Reactions``; built against
``airlock:channel/interactive-channel``).

The bot token never reaches the guest: URLs carry the ``{TELEGRAM_BOT_TOKEN}`` placeholder, which the
host fills in (``url_path`` credential rule of the capabilities file).
"""

from __future__ import annotations

import traceback
from typing import Any

from telegram_api import (  # API, TelegramApiError, edit_text, send_file, send_text: re-exported (__all__)
    API,
    TelegramApiError,
    api_call,
    api_result,
    edit_text,
    send_file,
    send_text,
    set_reaction,
)
from telegram_logic import (
    Inbound,
    TelegramConfig,
    bot_is_addressed,
    pairing_text,
    parse_inbound,
    static_dm_decision,
    strip_bot_mention,
    to_message,
)

from airlock_sdk import (
    AgentReply,
    Channel,
    ChannelConfig,
    Endpoint,
    HttpError,
    MessageEdit,
    PairingError,
    PermanentError,
    Poll,
    Reaction,
    Request,
    Response,
    Status,
    StatusUpdate,
    WorkspaceError,
    host,
)

__all__ = ["API", "TelegramApiError", "TelegramChannel", "edit_text", "handle_update", "send_file", "send_text"]

CHANNEL = "telegram"
WEBHOOK_PATH = "/webhook/telegram"
CONFIG_PATH = "state/config"
OFFSET_PATH = "state/offset"
LAST_REPLY_PREFIX = "state/last_reply/"
TOKEN_SECRET = "telegram_bot_token"
OK_BODY = b'{"ok": true}'  # json.dumps({"ok": True}), built once: the answer to every accepted webhook
JSON_HEADERS = {"content-type": "application/json"}


# --------------------------------------------------------------------------- replies


def _chat_id(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _deliver(chat_id: Any, reply: AgentReply, reply_to: Any = None, thread_id: Any = None) -> str | None:
    """Send a reply, then record the delivery in ``state/last_reply/<chat_id>``. Returns the Telegram id of the
    last text message sent (world 0.2.0: edits name it), None when no text went out."""
    if not reply.content.strip() and not reply.attachments:
        host.warn(f"reply {reply.message_id} is empty; nothing sent")
        return None
    sent: list[Any] = []
    if reply.content.strip():
        sent += send_text(chat_id, reply.content, reply_to=reply_to, thread_id=thread_id)
    last_text = sent[-1] if sent and isinstance(sent[-1], int) else None
    for att in reply.attachments:
        sent.append(send_file(chat_id, att, thread_id=thread_id))
    record = {"message_id": reply.message_id, "telegram_message_ids": sent, "at": host.now_millis()}
    try:
        host.workspace_write_json(f"{LAST_REPLY_PREFIX}{chat_id}", record)
    except WorkspaceError as exc:  # the reply is out: failing now would only make the host resend it
        host.warn(f"could not record the delivery to chat {chat_id}: {exc.message}")
    return None if last_text is None else str(last_text)


# --------------------------------------------------------------------------- inbound


def load_config() -> TelegramConfig:
    return TelegramConfig.from_state(host.workspace_read_json(CONFIG_PATH))


def _pairing_decision(cfg: TelegramConfig, inbound: Inbound) -> str:
    uid = inbound.user_id
    try:
        if host.pairing_resolve(CHANNEL, uid):
            return "allow"
    except PairingError as exc:
        host.warn(f"pairing_resolve failed: {exc.message}")
    try:
        if uid in host.pairing_allow_from(CHANNEL):
            return "allow"
    except PairingError as exc:
        host.warn(f"pairing_allow_from failed: {exc.message}")
    meta = {"username": inbound.username, "first_name": inbound.first_name, "chat_id": inbound.chat_id}
    try:
        code, created = host.pairing_upsert(CHANNEL, uid, meta)
    except PairingError as exc:
        host.warn(f"pairing_upsert failed for user {uid}: {exc.message}")
        return "pairing"
    if created:
        host.info(f"pairing requested by telegram user {uid} ({inbound.display_name}): code {code}")
        try:
            send_text(inbound.chat_id, pairing_text(code, cfg.instance_name))
        except (HttpError, TelegramApiError) as exc:
            host.warn(f"could not send the pairing code to user {uid}: {exc}")
    return "pairing"


def handle_update(cfg: TelegramConfig, update: Any) -> str:
    """Handle one Update: "emitted", "ignored", "denied" or "pairing"."""
    inbound = parse_inbound(update)
    if inbound is None:
        uid = update.get("update_id") if isinstance(update, dict) else None
        host.debug(f"ignoring update {uid}: no user text message")
        return "ignored"
    if inbound.is_private:
        decision = static_dm_decision(cfg, inbound)
        if decision == "pairing":
            decision = _pairing_decision(cfg, inbound)
        if decision != "allow":
            if decision == "deny":
                host.info(f"dropping DM from telegram user {inbound.user_id}: not allowed ({cfg.dm_policy})")
                return "denied"
            return decision
        content = inbound.text.strip()
    elif inbound.is_group:
        if not cfg.respond_to_all_group_messages and not bot_is_addressed(inbound, cfg.bot_username):
            return "ignored"
        content = strip_bot_mention(inbound.text, cfg.bot_username)
        if not content:
            return "ignored"
    else:
        return "ignored"
    host.emit(to_message(inbound, content))
    return "emitted"


def _read_offset() -> int | None:
    raw = host.workspace_read(OFFSET_PATH)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        host.warn(f"ignoring unreadable {OFFSET_PATH}: {raw[:40]!r}")
        return None


# --------------------------------------------------------------------------- the channel


class TelegramChannel(Channel):
    display_name = "Telegram"

    def on_start(self, config: dict[str, Any]) -> ChannelConfig:
        cfg = TelegramConfig.from_dict(config)
        host.workspace_write_json(CONFIG_PATH, cfg.to_state())
        if not host.secret_exists(TOKEN_SECRET):
            host.warn(f"secret {TOKEN_SECRET} is not set: Bot API calls will fail")
        if not cfg.bot_username:
            host.info("bot_username is not configured: group mentions cannot be recognised")
        endpoints = [Endpoint(WEBHOOK_PATH, ["POST"], require_secret=True)] if cfg.webhook_enabled else []
        poll = Poll(interval_ms=cfg.poll_interval_ms, enabled=True) if cfg.polling_enabled else None
        if not endpoints and poll is None:
            host.warn("neither webhook_enabled nor polling_enabled: the channel will receive nothing")
        return ChannelConfig(display_name="Telegram", endpoints=endpoints, poll=poll)

    def on_poll(self) -> None:
        cfg = load_config()
        offset = _read_offset()
        timeout_s = cfg.long_poll_timeout_s
        url = f"{API}/getUpdates?timeout={timeout_s}"
        if offset is not None:
            url += f"&offset={offset}"
        try:
            resp = host.http("GET", url, timeout_ms=(timeout_s + 5) * 1000)
        except HttpError as exc:
            host.warn(f"getUpdates failed: {exc.message}")
            return
        try:
            updates = api_result("getUpdates", resp.status, resp.body)
        except TelegramApiError as exc:
            hint = ""
            if resp.status == 409:
                hint = " (a webhook is set for this bot: disable webhook mode or call deleteWebhook)"
            elif resp.status in (401, 404):
                hint = " (is telegram_bot_token correct?)"
            host.warn(f"{exc}{hint}")
            return
        if not isinstance(updates, list):
            host.warn("getUpdates returned no update list")
            return
        last: int | None = None
        for update in updates:
            uid = update.get("update_id") if isinstance(update, dict) else None
            if isinstance(uid, int):
                last = uid if last is None else max(last, uid)
            try:
                handle_update(cfg, update)
            except Exception as exc:  # one bad update must not block the others (or the offset)
                host.error(f"update {uid} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        if last is not None:
            host.workspace_write(OFFSET_PATH, str(last + 1))

    def on_http_request(self, req: Request) -> Response:
        if req.path != WEBHOOK_PATH:
            return Response.json({"ok": False, "error": "not found"}, status=404)
        if req.method != "POST":
            return Response.json({"ok": False, "error": "method not allowed"}, status=405)
        if not req.secret_validated:
            host.warn("webhook request without a validated secret token: rejected")
            return Response.json({"ok": False, "error": "unauthorized"}, status=401)
        ok = Response(status=200, headers=dict(JSON_HEADERS), body=OK_BODY)
        try:
            update = req.json()
        except ValueError:
            host.warn(f"malformed webhook update ({len(req.body)} bytes): ignored")
            return ok
        try:
            handle_update(load_config(), update)
        except Exception as exc:  # Telegram retries non-200 answers: never ask it to
            host.error(f"webhook update failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return ok

    def on_respond(self, reply: AgentReply) -> str | None:
        meta = reply.metadata
        chat_id = meta.get("chat_id")
        if chat_id is None:
            raise ValueError("the original message metadata has no chat_id")
        thread_id = meta.get("thread_id")
        if thread_id is None and reply.thread_id and reply.thread_id.isdigit():
            thread_id = int(reply.thread_id)
        return _deliver(_chat_id(chat_id), reply, reply_to=meta.get("message_id"), thread_id=thread_id)

    def on_edit(self, edit: MessageEdit) -> None:
        chat_id = edit.metadata.get("chat_id")
        if chat_id is None:
            raise PermanentError("the original message metadata has no chat_id")
        if not edit.platform_message_id.isdigit():
            raise PermanentError("not a Telegram message id")
        edit_text(_chat_id(chat_id), int(edit.platform_message_id), edit.content)

    def on_react(self, reaction: Reaction) -> None:
        chat_id = reaction.metadata.get("chat_id")
        if chat_id is None:
            raise PermanentError("the original message metadata has no chat_id")
        if not reaction.platform_message_id.isdigit():
            raise PermanentError("not a Telegram message id")
        set_reaction(_chat_id(chat_id), int(reaction.platform_message_id), None if reaction.remove else reaction.emoji)

    def on_status(self, update: StatusUpdate) -> None:
        if update.status != Status.THINKING:
            return
        chat_id = update.metadata.get("chat_id")
        if chat_id is None:
            return
        payload: dict[str, Any] = {"chat_id": _chat_id(chat_id), "action": "typing"}
        if update.metadata.get("thread_id") is not None:
            payload["message_thread_id"] = update.metadata["thread_id"]
        try:
            api_call("sendChatAction", payload)
        except (HttpError, TelegramApiError) as exc:
            host.debug(f"sendChatAction failed: {exc}")

    def on_broadcast(self, user_id: str, reply: AgentReply) -> str | None:
        return _deliver(_chat_id(user_id), reply)

    def on_shutdown(self) -> None:
        host.info("telegram channel shutting down")
