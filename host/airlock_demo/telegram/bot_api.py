"""The Bot API methods of the fake Telegram server, and webhook delivery (Bot API docs: getUpdates,
sendMessage, sendChatAction, setWebhook, deleteWebhook, getWebhookInfo; editMessageText in ``edits``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout

from .edits import EditApi
from .files import FileApi
from .wire import (
    _PARSE_MODES,
    _POLL_CONFLICT,
    _SECRET_TOKEN_RE,
    _WEBHOOK_CONFLICT,
    _WEBHOOK_MAX_CONNECTIONS_DEFAULT,
    CHAT_ACTIONS,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    GET_UPDATES_MAX_LIMIT,
    LONG_POLL_MAX_TIMEOUT,
    MAX_MESSAGE_LENGTH,
    SECRET_TOKEN_HEADER,
    JsonDict,
    _ApiError,
    _bad_request,
    _Described,
    _Handler,
    _is_loopback_host,
    _param_bool,
    _param_int,
    _param_json,
    _param_number,
    _param_str,
)


class BotApi(EditApi, FileApi):
    """The ``_api_*`` handlers (one per Bot API method) and the webhook delivery loop."""

    def __init__(self, token: str = DEFAULT_TOKEN, bot_username: str = DEFAULT_BOT_USERNAME) -> None:
        super().__init__(token, bot_username)
        self._methods: dict[str, _Handler] = {
            "getme": self._api_get_me,
            "getupdates": self._api_get_updates,
            "sendmessage": self._api_send_message,
            "sendchataction": self._api_send_chat_action,
            "editmessagetext": self._api_edit_message_text,
            "setmessagereaction": self._api_set_message_reaction,
            "senddocument": self._api_send_document,
            "sendphoto": self._api_send_photo,
            "setwebhook": self._api_set_webhook,
            "deletewebhook": self._api_delete_webhook,
            "getwebhookinfo": self._api_get_webhook_info,
        }

    # ----------------------------------------------------------------------------------
    # Bot API methods
    # ----------------------------------------------------------------------------------

    async def _api_get_me(self, params: JsonDict) -> Any:
        """getMe: the bot's User (``is_bot`` true, ``id`` = the token's numeric prefix)."""
        return self.bot_user

    async def _api_get_updates(self, params: JsonDict) -> Any:
        """getUpdates(offset, limit, timeout, allowed_updates) -> list of Update.

        Rules (Bot API docs, getUpdates):

        * ``offset``: updates with ``update_id < offset`` are confirmed and never returned
          again. A negative offset keeps only the last ``-offset`` queued updates and forgets
          the rest. 0/absent returns from the earliest unconfirmed update.
        * ``limit``: 1-100, default 100 (out-of-range values are clamped).
        * ``timeout``: seconds to long-poll; 0 (default) is short polling. The call returns
          as soon as at least one update is available, else an empty list when the timeout
          elapses (capped at :data:`LONG_POLL_MAX_TIMEOUT`).
        * ``allowed_updates``: JSON list of update types, remembered for later calls and
          webhooks; [] means all but chat_member, message_reaction, message_reaction_count.
          As documented, it only affects updates created after the call.
        * 409 "Conflict: can't use getUpdates method while webhook is active; ..." while a
          webhook is set; 409 "Conflict: terminated by other getUpdates request; ..." for a
          long poll overtaken by a newer getUpdates call.
        """
        if self._webhook_url is not None:
            raise _ApiError(409, _WEBHOOK_CONFLICT)
        offset = _param_int(params, "offset")
        limit = _param_int(params, "limit")
        limit = GET_UPDATES_MAX_LIMIT if limit is None else min(max(limit, 1), GET_UPDATES_MAX_LIMIT)
        timeout = _param_number(params, "timeout") or 0.0
        timeout = min(max(timeout, 0.0), LONG_POLL_MAX_TIMEOUT)
        self._set_allowed_updates(params)
        self.get_updates_offsets.append(offset)
        if self._get_updates_running:
            self.get_updates_overlaps += 1
        self._get_updates_running += 1
        try:
            return await self._get_updates(offset, limit, timeout)
        finally:
            self._get_updates_running -= 1

    async def _get_updates(self, offset: int | None, limit: int, timeout: float) -> Any:
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify_updates()  # wake (and so terminate) an older long poll
        self._confirm(offset)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if generation != self._poll_generation:
                raise _ApiError(409, _POLL_CONFLICT)
            if self._webhook_url is not None:
                raise _ApiError(409, _WEBHOOK_CONFLICT)
            if self._updates:
                return copy.deepcopy(self._updates[:limit])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = self._update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _api_send_message(self, params: JsonDict) -> Any:
        """sendMessage(chat_id, text, parse_mode, entities, reply_parameters,
        reply_to_message_id, message_thread_id, reply_markup, ...) -> Message.

        Rules (Bot API docs, sendMessage / Message / ReplyParameters):

        * ``chat_id``: int, numeric string, or "@username" of a chat seen before. Missing ->
          400 "Bad Request: chat_id is empty"; unknown "@username" -> 400 "Bad Request: chat
          not found". Unknown numeric ids are accepted (fake leniency): a private chat for
          positive ids, a group (or supergroup for ``-100...``) for negative ones.
        * ``text``: empty or whitespace-only -> 400 "Bad Request: message text is empty";
          more than 4096 characters -> 400 "Bad Request: message is too long". Markup is not
          parsed: the returned ``text`` is the raw text and ``entities`` are echoed only when
          passed explicitly.
        * ``parse_mode``: HTML, Markdown or MarkdownV2 (any case), else 400 "Bad Request:
          unsupported parse_mode".
        * ``reply_parameters`` (``message_id``, optional ``chat_id``,
          ``allow_sending_without_reply``) or legacy ``reply_to_message_id``: the replied
          message must be known, else 400 "Bad Request: message to be replied not found"
          unless sending without reply is allowed.
        * The Message has ``message_id`` (per-chat counter), ``from`` (the bot), ``chat``,
          ``date`` (Unix seconds), ``text``, plus ``message_thread_id``, ``entities``,
          ``reply_to_message`` and an inline-keyboard ``reply_markup`` when given.
        """
        chat = self._resolve_chat(params)
        chat_id: int = chat["id"]
        text = _param_str(params, "text")
        if text is None or not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        parse_mode = _param_str(params, "parse_mode")
        if parse_mode and parse_mode.lower() not in _PARSE_MODES:
            raise _bad_request("unsupported parse_mode")
        message_thread_id = _param_int(params, "message_thread_id")
        entities = _param_json(params, "entities")
        if entities is not None and not isinstance(entities, list):
            raise _bad_request("can't parse entities JSON object")
        reply_markup = _param_json(params, "reply_markup")
        if reply_markup is not None and not isinstance(reply_markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        reply_parameters = _param_json(params, "reply_parameters")
        if reply_parameters is not None and not isinstance(reply_parameters, dict):
            raise _bad_request("can't parse reply parameters JSON object")

        reply = self._resolve_reply(params, reply_parameters, chat_id)

        message: JsonDict = {
            "message_id": self._alloc_message_id(chat_id),
            "from": self._bot_sender(),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
        message["text"] = text
        if entities:
            message["entities"] = entities
        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        if reply is not None:
            message["reply_to_message"] = reply
        if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup:
            message["reply_markup"] = reply_markup

        record: JsonDict = dict(params)
        record.update(chat_id=chat_id, text=text)
        for name, value in (
            ("parse_mode", parse_mode),
            ("message_thread_id", message_thread_id),
            ("entities", entities),
            ("reply_markup", reply_markup),
            ("reply_parameters", reply_parameters),
            ("reply_to_message_id", _param_int(params, "reply_to_message_id")),
            ("link_preview_options", _param_json(params, "link_preview_options")),
        ):
            if name in params:
                record[name] = value
        for name in ("disable_notification", "protect_content", "allow_sending_without_reply"):
            if name in params:
                record[name] = _param_bool(params, name)
        record["message"] = copy.deepcopy(message)
        self.sent_messages.append(record)
        self.timeline.append(("sendMessage", time.monotonic(), message["message_id"], text))
        self._notify_records()
        return message

    async def _api_send_chat_action(self, params: JsonDict) -> Any:
        """sendChatAction(chat_id, action, message_thread_id) -> true.

        ``action`` must be one of :data:`CHAT_ACTIONS` (Bot API docs, sendChatAction), else
        400 "Bad Request: wrong parameter action in request". ``chat_id`` as in sendMessage.
        """
        chat = self._resolve_chat(params)
        action = _param_str(params, "action")
        if action not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self.chat_actions.append(
            {
                "chat_id": chat["id"],
                "action": action,
                "message_thread_id": _param_int(params, "message_thread_id"),
                "time": time.time(),
            }
        )
        self._notify_records()
        return True

    async def _api_set_webhook(self, params: JsonDict) -> Any:
        """setWebhook(url, secret_token, allowed_updates, drop_pending_updates,
        max_connections, ...) -> true.

        Rules (Bot API docs, setWebhook):

        * ``url`` empty or absent removes the webhook (like deleteWebhook).
        * Fake restriction: the URL must be ``http`` or ``https`` and its host a loopback
          address or "localhost" (the real service demands public HTTPS on ports 443, 80,
          88 or 8443), else 400 "Bad Request: bad webhook: ...".
        * ``secret_token``: 1-256 characters of A-Z, a-z, 0-9, _ and -, else 400 "Bad
          Request: secret token contains unallowed characters". Sent back in the
          ``X-Telegram-Bot-Api-Secret-Token`` header of every delivery.
        * ``max_connections``: 1-100 (clamped), default 40; reported by getWebhookInfo only
          -- the fake delivers one update at a time, in order.
        * Queued updates are delivered too, unless ``drop_pending_updates`` is true.

        Delivery: each update is POSTed as JSON to the URL. A 2xx answer confirms it. Any
        other answer or a connection failure is retried up to ``webhook_max_attempts``
        attempts in total, ``webhook_retry_delay * attempt`` seconds apart; then the update
        is dropped (the real service keeps retrying for longer) and the failure is reported
        as ``last_error_date``/``last_error_message`` by getWebhookInfo. Method calls in the
        webhook's response body are not executed.
        """
        url = _param_str(params, "url") or ""
        drop_pending = _param_bool(params, "drop_pending_updates")
        if url == "":
            return await self._remove_webhook(drop_pending)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad_request("bad webhook: HTTPS url must be provided for webhook")
        if not _is_loopback_host(parts.hostname):
            raise _bad_request("bad webhook: the fake Telegram server only delivers to loopback hosts")
        secret = _param_str(params, "secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = _param_int(params, "max_connections")
        self._set_allowed_updates(params)

        unchanged = self._webhook_url == url
        self._webhook_url = url
        self._webhook_secret = secret or None
        self._webhook_max_connections = (
            _WEBHOOK_MAX_CONNECTIONS_DEFAULT if max_connections is None else min(max(max_connections, 1), 100)
        )
        if drop_pending:
            self._updates.clear()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._webhook_loop(), name="fake-telegram-webhook")
        self._notify_updates()  # long polls in progress now answer 409
        return _Described(True, "Webhook is already set" if unchanged else "Webhook was set")

    async def _api_delete_webhook(self, params: JsonDict) -> Any:
        """deleteWebhook(drop_pending_updates) -> true. Switches back to getUpdates; queued
        updates are kept unless ``drop_pending_updates`` is true (Bot API docs)."""
        return await self._remove_webhook(_param_bool(params, "drop_pending_updates"))

    async def _api_get_webhook_info(self, params: JsonDict) -> Any:
        """getWebhookInfo -> WebhookInfo: ``url`` ("" when none), ``has_custom_certificate``
        (false), ``pending_update_count``; with a webhook also ``max_connections``,
        ``ip_address`` and ``allowed_updates`` (if set); ``last_error_date`` (Unix seconds)
        and ``last_error_message`` after a failed delivery (Bot API docs, WebhookInfo)."""
        info: JsonDict = {
            "url": self._webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url is not None:
            info["ip_address"] = urlsplit(self._webhook_url).hostname
            info["max_connections"] = self._webhook_max_connections
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        if self._webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    async def _remove_webhook(self, drop_pending: bool) -> _Described:
        was_set = self._webhook_url is not None
        self._webhook_url = None
        self._webhook_secret = None
        await self._stop_webhook_task()
        if drop_pending:
            self._updates.clear()
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _webhook_loop(self) -> None:
        while self._webhook_url is not None and not self._closing:
            if not self._updates:
                event = self._update_event
                await event.wait()
                continue
            update = self._updates[0]
            await self._deliver(update)
            # Delivered, or given up on: either way it leaves the queue.
            self._updates = [u for u in self._updates if u is not update]

    async def _deliver(self, update: JsonDict) -> bool:
        if self._client is None:
            self._client = ClientSession()
        body = json.dumps(update)
        for attempt in range(1, max(self.webhook_max_attempts, 1) + 1):
            url = self._webhook_url
            if url is None:
                return False
            headers = {"Content-Type": "application/json"}
            if self._webhook_secret is not None:
                headers[SECRET_TOKEN_HEADER] = self._webhook_secret
            status: int | None = None
            error: str | None
            try:
                async with self._client.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=ClientTimeout(total=self.webhook_timeout),
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    await response.read()
                    ok = 200 <= status < 300
                    error = None if ok else f"Wrong response from the webhook: {status} {response.reason}"
            except ClientConnectorError:
                error = "Connection refused"
            except TimeoutError:
                error = "Read timeout expired"
            except ClientError as exc:
                error = f"Connection failed: {type(exc).__name__}"
            self.webhook_deliveries.append(
                {
                    "update_id": update.get("update_id"),
                    "url": url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                }
            )
            self._notify_records()
            if error is None:
                return True
            self._webhook_last_error = (int(time.time()), error)
            if attempt < self.webhook_max_attempts:
                await asyncio.sleep(self.webhook_retry_delay * attempt)
        return False
