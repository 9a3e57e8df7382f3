"""``FakeTelegram``: the aiohttp server (Bot API routes, the HTTP control API, lifecycle)."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Self

from aiohttp import web

from .bot_api import BotApi
from .control import Control
from .files import MAX_BODY_BYTES
from .wire import JsonDict, _ApiError, _bad_request, _Described, _error_response, _read_params


class FakeTelegram(Control, BotApi):
    """A fake Telegram Bot API server on 127.0.0.1 with a control API for tests.

    Construct, then ``await start()`` (or ``async with FakeTelegram() as tg``); point the
    client at ``f"{tg.base_url}/bot{tg.token}/<method>"`` (python-telegram-bot:
    ``telegram.Bot(tg.token, base_url=f"{tg.base_url}/bot")`` -- PTB appends the token).

    Bot API (``GET``/``POST`` ``/bot<token>/<method>``): getMe, getUpdates, sendMessage,
    sendChatAction, setWebhook, deleteWebhook, getWebhookInfo. See each ``_api_*`` method.

    Records, appended as requests are served (tests read them directly):

    * ``requests: list[tuple[str, str]]`` -- ``(method name as sent, raw URL path without the
      query string)`` for every request to a ``/bot...`` path, including rejected ones, so a
      test can assert that the token arrived in the path.
    * ``sent_messages: list[dict]`` -- one per successful sendMessage: the normalized call
      parameters (``chat_id`` resolved to an int, JSON-string parameters decoded) plus
      ``"message"``: the Message object returned to the caller.
    * ``chat_actions: list[dict]`` -- one per successful sendChatAction: ``chat_id`` (int),
      ``action``, ``message_thread_id`` (int or None), ``time`` (Unix seconds, float).
    * ``webhook_deliveries: list[dict]`` -- one per webhook POST attempt: ``update_id``,
      ``url``, ``attempt`` (1-based), ``status`` (HTTP status or None when the connection
      failed), ``error`` (None on a 2xx answer, else the text reported by getWebhookInfo).

    Control API (Python, call from the server's event loop): :meth:`push_message`,
    :meth:`push_update`, :meth:`wait_for_sent`, :meth:`wait_for_chat_action`,
    :meth:`wait_for_webhook_deliveries`, :meth:`pending_updates`. The same over HTTP
    (responses use the Bot API envelope ``{"ok": true, "result": ...}``; bad input answers
    400 in the same error shape):

    * ``POST /_control/message`` -- JSON object with ``push_message``'s parameters
      (``text`` required) -> the Update.
    * ``POST /_control/update`` -- JSON object: a raw Update -> the stored Update.
    * ``GET /_control/sent`` -> ``sent_messages``; ``GET /_control/chat_actions`` ->
      ``chat_actions``; ``GET /_control/updates`` -> ``pending_updates()``;
      ``GET /_control/requests`` -> ``requests`` as ``[method, path]`` pairs.

    Webhook delivery tuning (instance attributes, change before ``setWebhook``):
    ``webhook_max_attempts`` (default 3 attempts per update), ``webhook_retry_delay``
    (default 0.05 s, multiplied by the attempt number), ``webhook_timeout`` (default 5.0 s
    per attempt).
    """

    # ----------------------------------------------------------------------------------
    # Lifecycle
    # ----------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; return the base URL ``"http://<host>:<port>"`` (no trailing slash).

        ``port=0`` picks a free port. The server has no authentication beyond the bot token;
        keep it on a loopback address.
        """
        if self._runner is not None:
            raise RuntimeError("FakeTelegram is already started")
        self._closing = False
        app = web.Application(client_max_size=MAX_BODY_BYTES)  # file uploads (``files``)
        app.router.add_route("GET", "/bot{token}/{method}", self._handle_bot_api)
        app.router.add_route("POST", "/bot{token}/{method}", self._handle_bot_api)
        app.router.add_post("/_control/message", self._handle_control_message)
        app.router.add_post("/_control/update", self._handle_control_update)
        app.router.add_get("/_control/sent", self._handle_control_sent)
        app.router.add_get("/_control/chat_actions", self._handle_control_chat_actions)
        app.router.add_get("/_control/updates", self._handle_control_updates)
        app.router.add_get("/_control/requests", self._handle_control_requests)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        self._base_url = f"http://{url_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving: end pending long polls (they answer an empty list), cancel webhook
        delivery, close the server. Records and queued updates are kept. Idempotent."""
        self._closing = True
        self._notify_updates()
        await self._stop_webhook_task()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._base_url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:<port>"`` of the running server (RuntimeError if not started)."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """``"<base_url>/bot<token>"``: append ``/<method>`` to call the Bot API."""
        return f"{self.base_url}/bot{self.token}"

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL set with setWebhook, or None while getUpdates is in use."""
        return self._webhook_url

    # ----------------------------------------------------------------------------------
    # HTTP plumbing
    # ----------------------------------------------------------------------------------

    async def _handle_bot_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        self.requests.append((method, request.rel_url.raw_path))
        if token != self.token:
            return _error_response(401, "Unauthorized")
        handler = self._methods.get(method.lower())
        if handler is None:
            return _error_response(404, "Not Found")
        try:
            params = await _read_params(request)
            result = await handler(params)
        except _ApiError as exc:
            return _error_response(exc.code, exc.description)
        if isinstance(result, _Described):
            return web.json_response({"ok": True, "result": result.result, "description": result.description})
        return web.json_response({"ok": True, "result": result})

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return _error_response(404, "Not Found")

    async def _read_control_body(self, request: web.Request) -> JsonDict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _bad_request("control endpoints take a JSON object body") from None
        if not isinstance(body, dict):
            raise _bad_request("control endpoints take a JSON object body")
        return body

    async def _handle_control_message(self, request: web.Request) -> web.Response:
        allowed = {
            "text",
            "chat_id",
            "user_id",
            "username",
            "first_name",
            "chat_type",
            "chat_title",
            "entities",
            "reply_to",
            "message_thread_id",
        }
        try:
            body = await self._read_control_body(request)
            unknown = sorted(set(body) - allowed)
            if unknown:
                raise _bad_request(f"unknown parameters {unknown}")
            if not isinstance(body.get("text"), str):
                raise _bad_request("text must be a string")
            kwargs = {k: v for k, v in body.items() if k != "text"}
            try:
                update = self.push_message(body["text"], **kwargs)
            except (TypeError, ValueError) as exc:
                raise _bad_request(str(exc)) from None
        except _ApiError as exc:
            return _error_response(exc.code, exc.description)
        return web.json_response({"ok": True, "result": update})

    async def _handle_control_update(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_control_body(request)
            try:
                update = self.push_update(body)
            except (TypeError, ValueError) as exc:
                raise _bad_request(str(exc)) from None
        except _ApiError as exc:
            return _error_response(exc.code, exc.description)
        return web.json_response({"ok": True, "result": update})

    async def _handle_control_sent(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": self.sent_messages})

    async def _handle_control_chat_actions(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": self.chat_actions})

    async def _handle_control_updates(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": self._updates})

    async def _handle_control_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": [list(r) for r in self.requests]})
