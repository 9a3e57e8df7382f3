"""A fake Discord (gateway v10 and a REST v10 subset) on 127.0.0.1, for tests.

    async with FakeDiscord(bot_token="Bot.Token.Value") as discord:
        overrides = {"gateway.discord.gg": discord.base_url, "discord.com": discord.base_url}
        ...
        await discord.wait_for(lambda: discord.ready_count == 1, "READY")
        await discord.dispatch("MESSAGE_CREATE", discord.message_create("hello", author_id="42", channel_id="7"))

Gateway (any GET path outside /api, e.g. ``/?v=10&encoding=json``), following Discord's "Gateway" docs:

- sends HELLO (op 10) with ``heartbeat_interval`` (ms); answers heartbeats (op 1) with ACK (op 11) unless
  ``ack_heartbeats`` is false, and records whether ``d`` was the last sequence it sent (``heartbeat_seq_errors``);
- IDENTIFY (op 2): closes 4004 for a wrong token, 4002 for missing ``properties`` (os/browser/device), 4013 for
  intents that are not an integer below 2**26 or differ from ``expected_intents``, 4014 for privileged intents
  (GUILD_MEMBERS 1<<1, GUILD_PRESENCES 1<<8, MESSAGE_CONTENT 1<<15) outside ``privileged_intents``, 4005 for a
  second identify; otherwise starts a session and dispatches READY (``session_id``, ``resume_gateway_url``,
  the bot ``user``) with s=1;
- RESUME (op 6): 4004 for a wrong token; op 9 ``d: false`` for an unknown session; otherwise replays the
  dispatches after ``seq`` and dispatches RESUMED;
- anything but a heartbeat before identify closes 4003; an unknown op 4001; invalid JSON 4002; client commands
  (ops 3, 4, 8, 31) are recorded;
- scripting: :meth:`dispatch` (to the session; stored for replay when its connection is gone),
  :meth:`close_current` (a chosen code), :meth:`send_op` (e.g. op 7, op 9, op 1), ``close_after_session`` (a
  queue of codes: close right after READY/RESUMED on the next connections), ``fail_identify_with`` (a code
  every IDENTIFY gets), ``refuse_upgrade`` (an HTTP status instead of the upgrade);
- counts: ``connections`` (every upgrade, with what the client sent on it), ``identify_count``,
  ``resume_count``, ``ready_count``.

REST (``/api/v10``), every request recorded in ``requests``:

- ``POST /channels/{id}/messages`` (``Authorization: Bot <token>`` required, else 401 ``{"code": 0}``; content
  at most 2000 characters and something to send, else 400 code 50035) -> the message object;
  a message with files is multipart (``payload_json`` + ``files[n]``, ``fake_discord_files``), its files kept with
  their bytes in ``files``;
- ``PATCH /channels/{id}/messages/{message_id}`` (bot auth; a message this fake created in that channel, else 404
  code 10008 "Unknown Message"; content rules as above) -> the edited message; recorded in ``edits``;
- ``POST /interactions/{id}/{token}/callback`` (no bot auth; the interaction must have been issued by
  :meth:`new_interaction`, else 404 code 10062; answered once, else 400 code 40060; ``type`` one of Discord's
  callback types) -> 204;
- ``POST /webhooks/{app_id}/{token}`` (followup; only after the interaction was acknowledged) -> the message;
  ``PATCH /webhooks/{app_id}/{token}/messages/@original`` or ``/{message_id}`` -> the edited message;
- ``GET /gateway/bot`` and ``GET /users/@me`` (bot auth);
- ``POST /users/@me/channels`` with ``recipient_id`` (bot auth) -> the DM channel (one stable id per recipient,
  in ``dm_channels``); ``POST /channels/{id}/typing`` (bot auth) -> 204, recorded in ``typing``.

Delivering interactions: :meth:`deliver_interaction` POSTs a signed interaction to the app's endpoint as Discord
does; a 200 answer with a callback ``type`` acknowledges the interaction (the HTTP answer is the initial
response on Discord), so follow-ups and edits are accepted afterwards.

Signing: :class:`InteractionSigner` signs interaction requests with PyNaCl (Ed25519 over timestamp + body,
headers ``X-Signature-Ed25519`` / ``X-Signature-Timestamp``), as Discord does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from fake_discord_files import FILES_KEY, MAX_BODY_BYTES, FormError, attachment_objects, read_multipart
from nacl.signing import SigningKey

DEFAULT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GfakeX.discord-test-token_value"
DEFAULT_APP_ID = "1100000000000000001"
DEFAULT_BOT_ID = "1100000000000000002"
DEFAULT_INTENTS = 4609  # GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
MAX_CONTENT = 2000
CALLBACK_TYPES = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 12})
CLIENT_COMMANDS = frozenset({3, 4, 8, 31})
DISCORD_EPOCH_MS = 1420070400000
FORM_ERROR = "__form_error__"
"""Set by ``_record`` in a body whose multipart form broke a rule (its value: the field), answered with 400 50035."""


@dataclass
class Session:
    id: str
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    connection: GatewayConnection | None = None


@dataclass
class GatewayConnection:
    """One websocket upgrade and what the client did on it."""

    index: int
    path: str
    ws: web.WebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)
    identify: dict[str, Any] | None = None
    resume: dict[str, Any] | None = None
    heartbeats: list[Any] = field(default_factory=list)
    heartbeat_times: list[float] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    session: Session | None = None
    last_seq_sent: int | None = None
    server_close_code: int | None = None
    client_close_code: int | None = None
    closed: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Interaction:
    id: str
    token: str
    payload: dict[str, Any]
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)


class InteractionSigner:
    """Signs interaction webhooks like Discord: Ed25519 over ``timestamp + body`` (PyNaCl)."""

    def __init__(self, key: SigningKey | None = None) -> None:
        self.key = key or SigningKey.generate()

    @property
    def public_key_hex(self) -> str:
        """The application public key, as the Developer Portal shows it (64 hex characters)."""
        return self.key.verify_key.encode().hex()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        ts = timestamp if timestamp is not None else str(int(time.time()))
        signature = self.key.sign(ts.encode() + body).signature.hex()
        return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": ts, "Content-Type": "application/json"}


class FakeDiscord:
    """See the module docstring. Start with ``await start()`` or ``async with``."""

    def __init__(self, *, bot_token: str = DEFAULT_TOKEN, application_id: str = DEFAULT_APP_ID,
                 bot_id: str = DEFAULT_BOT_ID, heartbeat_interval_ms: int = 41250,
                 expected_intents: int | None = None, privileged_intents: int = 0,
                 resume_gateway_url: str = "wss://gateway.discord.gg", ack_heartbeats: bool = True) -> None:
        self.bot_token = bot_token
        self.application_id = application_id
        self.bot_user = {"id": bot_id, "username": "airlock-test", "discriminator": "0", "global_name": None,
                         "bot": True, "avatar": None}
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.expected_intents = expected_intents
        self.privileged_intents = privileged_intents
        self.resume_gateway_url = resume_gateway_url
        self.ack_heartbeats = ack_heartbeats
        self.close_after_session: deque[int] = deque()
        self.fail_identify_with: int | None = None
        self.refuse_upgrade: int | None = None
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, Session] = {}
        self.heartbeat_seq_errors: list[tuple[Any, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.messages: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        """Every file of a created message (multipart ``files[n]``): ``filename``, ``content_type``, ``data`` (the
        bytes), ``index``, ``message_id``, ``channel_id``."""
        self.timeline: list[tuple[str, float, str, str]] = []
        """``(kind, time.monotonic(), message id, content)`` of every message created ("send") and edited ("edit")
        in a channel, in order."""
        self.interactions: dict[str, Interaction] = {}
        self.dm_channels: dict[str, str] = {}
        self.typing: list[str] = []
        self.identify_count = self.resume_count = self.ready_count = self.refused_upgrades = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        api = "/api/v10"
        app.router.add_post(api + "/channels/{channel_id}/messages", self._create_message)
        app.router.add_patch(api + "/channels/{channel_id}/messages/{message_id}", self._edit_message)
        app.router.add_post(api + "/interactions/{id}/{token}/callback", self._interaction_callback)
        app.router.add_post(api + "/webhooks/{app_id}/{token}", self._followup)
        app.router.add_patch(api + "/webhooks/{app_id}/{token}/messages/{message_id}", self._edit_followup)
        app.router.add_get(api + "/gateway/bot", self._gateway_bot)
        app.router.add_get(api + "/users/@me", self._me)
        app.router.add_post(api + "/users/@me/channels", self._open_dm)
        app.router.add_post(api + "/channels/{channel_id}/typing", self._typing)
        app.router.add_route("*", "/api/{tail:.*}", self._unknown_api)
        app.router.add_get("/{tail:.*}", self._gateway)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def wait_for(self, predicate: Callable[[], bool], what: str = "condition", timeout: float = 10.0) -> None:
        """Poll ``predicate`` every 10 ms; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"fake discord: timed out waiting for {what}")
            await asyncio.sleep(0.01)

    # ---- ids and payloads --------------------------------------------------------------------------

    def snowflake(self) -> str:
        """A Discord-shaped id (timestamp << 22 | counter)."""
        return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | next(self._ids))

    def message_create(self, content: str, *, author_id: str = "4242", channel_id: str = "7070",
                       guild_id: str | None = None, author_bot: bool = False,
                       mentions: list[dict[str, Any]] | None = None, username: str = "alice") -> dict[str, Any]:
        """A MESSAGE_CREATE ``d`` shaped like the gateway's (a DM when ``guild_id`` is None)."""
        msg: dict[str, Any] = {
            "id": self.snowflake(), "channel_id": channel_id, "content": content, "type": 0,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime()),
            "author": {"id": author_id, "username": username, "discriminator": "0", "global_name": username,
                       "bot": author_bot, "avatar": None},
            "mentions": mentions or [], "mention_roles": [], "mention_everyone": False, "attachments": [],
            "embeds": [], "pinned": False, "tts": False, "edited_timestamp": None, "flags": 0,
        }
        if guild_id is not None:
            msg["guild_id"] = guild_id
            msg["member"] = {"roles": [], "joined_at": msg["timestamp"], "deaf": False, "mute": False}
        return msg

    def new_interaction(self, *, type: int = 2, data: dict[str, Any] | None = None, user_id: str = "4242",
                        channel_id: str = "7070", guild_id: str | None = None) -> dict[str, Any]:
        """Issue an interaction (1 PING, 2 APPLICATION_COMMAND, ...); its id/token are then valid for callbacks."""
        iid, token = self.snowflake(), f"aW50ZXJhY3Rpb24{next(self._ids)}tok"
        user = {"id": user_id, "username": "alice", "discriminator": "0", "global_name": "alice", "avatar": None}
        payload: dict[str, Any] = {"id": iid, "application_id": self.application_id, "type": type, "token": token,
                                   "version": 1}
        if type != 1:
            payload.update(channel_id=channel_id, channel={"id": channel_id, "type": 1 if guild_id is None else 0},
                           data=data or {"id": self.snowflake(), "name": "ask", "type": 1, "options": []},
                           locale="en-US", app_permissions="0", entitlements=[])
            if guild_id is None:
                payload["user"] = user
            else:
                payload.update(guild_id=guild_id, member={"user": user, "roles": [], "permissions": "0"})
        self.interactions[iid] = Interaction(iid, token, payload)
        return payload

    # ---- gateway -----------------------------------------------------------------------------------

    @property
    def current(self) -> GatewayConnection | None:
        """The newest open connection that has a session."""
        for conn in reversed(self.connections):
            if not conn.closed and conn.session is not None:
                return conn
        return None

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_upgrade is not None:
            self.refused_upgrades += 1
            return web.json_response({"message": "refused", "code": 0}, status=self.refuse_upgrade)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(index=len(self.connections) + 1, path=request.path_qs, ws=ws)
        self.connections.append(conn)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None})
        try:
            while not ws.closed:
                msg = await ws.receive()
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
                elif msg.type == WSMsgType.CLOSE:
                    conn.client_close_code = msg.data
                elif msg.type == WSMsgType.BINARY:
                    await self._close(conn, 4002)
                else:
                    break
        finally:
            conn.closed = True
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
        return ws

    async def _close(self, conn: GatewayConnection, code: int) -> None:
        conn.server_close_code = code
        await conn.ws.close(code=code, message=b"fake discord close")

    async def _send(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        if not conn.ws.closed:
            await conn.ws.send_str(json.dumps(frame))

    async def _on_frame(self, conn: GatewayConnection, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            await self._close(conn, 4002)
            return
        if not isinstance(frame, dict):
            await self._close(conn, 4002)
            return
        conn.received.append(frame)
        op = frame.get("op")
        if op == 1:
            await self._heartbeat(conn, frame.get("d"))
        elif op == 2:
            await self._identify(conn, frame.get("d"))
        elif op == 6:
            await self._resume(conn, frame.get("d"))
        elif conn.session is None:
            await self._close(conn, 4003)
        elif op in CLIENT_COMMANDS:
            conn.commands.append(frame)
        else:
            await self._close(conn, 4001)

    async def _heartbeat(self, conn: GatewayConnection, d: Any) -> None:
        conn.heartbeats.append(d)
        conn.heartbeat_times.append(time.monotonic())
        if d != conn.last_seq_sent:
            self.heartbeat_seq_errors.append((d, conn.last_seq_sent))
        if self.ack_heartbeats:
            await self._send(conn, {"op": 11, "d": None, "s": None, "t": None})

    def _identify_problem(self, d: Any) -> int | None:
        if not isinstance(d, dict) or d.get("token") != self.bot_token:
            return 4004
        props = d.get("properties")
        if not isinstance(props, dict) or not all(isinstance(props.get(k), str) for k in ("os", "browser", "device")):
            return 4002
        intents = d.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or not 0 <= intents < (1 << 26):
            return 4013
        if self.expected_intents is not None and intents != self.expected_intents:
            return 4013
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            return 4014
        return self.fail_identify_with

    async def _identify(self, conn: GatewayConnection, d: Any) -> None:
        self.identify_count += 1
        conn.identify = d if isinstance(d, dict) else None
        if conn.session is not None:
            await self._close(conn, 4005)
            return
        problem = self._identify_problem(d)
        if problem is not None:
            await self._close(conn, problem)
            return
        session = Session(id=f"fake-session-{next(self._ids)}")
        self.sessions[session.id] = session
        self._attach(conn, session)
        self.ready_count += 1
        await self.dispatch("READY", {"v": 10, "user": self.bot_user, "guilds": [], "session_id": session.id,
                                      "resume_gateway_url": self.resume_gateway_url,
                                      "application": {"id": self.application_id, "flags": 0}}, session=session)
        await self._maybe_scripted_close(conn)

    async def _resume(self, conn: GatewayConnection, d: Any) -> None:
        self.resume_count += 1
        conn.resume = d if isinstance(d, dict) else None
        if not isinstance(d, dict) or d.get("token") != self.bot_token:
            await self._close(conn, 4004)
            return
        session = self.sessions.get(str(d.get("session_id")))
        seq = d.get("seq")
        if session is None or not isinstance(seq, int):
            await self._send(conn, {"op": 9, "d": False, "s": None, "t": None})
            return
        self._attach(conn, session)
        for event in session.events:
            if event["s"] > seq:
                await self._send(conn, event)
                conn.last_seq_sent = event["s"]
        await self.dispatch("RESUMED", {}, session=session)
        await self._maybe_scripted_close(conn)

    def _attach(self, conn: GatewayConnection, session: Session) -> None:
        old = session.connection
        session.connection = conn
        conn.session = session
        if old is not None and old is not conn:
            old.session = None

    async def _maybe_scripted_close(self, conn: GatewayConnection) -> None:
        if self.close_after_session:
            await self._close(conn, self.close_after_session.popleft())

    async def dispatch(self, event: str, d: dict[str, Any], *, session: Session | None = None) -> int:
        """Send a dispatch (op 0) on the session (default: the current connection's); returns its sequence.
        Stored for replay, so a dispatch while the client is away is delivered after RESUME."""
        if session is None:
            conn = self.current
            if conn is None or conn.session is None:
                raise AssertionError("fake discord: no session to dispatch to")
            session = conn.session
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": d}
        session.events.append(frame)
        target = session.connection
        if target is not None and not target.closed:
            await self._send(target, frame)
            target.last_seq_sent = session.seq
        return session.seq

    async def dispatch_to_latest_session(self, event: str, d: dict[str, Any]) -> int:
        """Dispatch on the newest session even while its client is disconnected (it gets it on RESUME)."""
        if not self.sessions:
            raise AssertionError("fake discord: no session yet")
        return await self.dispatch(event, d, session=list(self.sessions.values())[-1])

    async def close_current(self, code: int) -> None:
        conn = self.current
        if conn is None:
            raise AssertionError("fake discord: no open connection to close")
        await self._close(conn, code)

    async def send_op(self, op: int, d: Any = None) -> None:
        """Send a raw non-dispatch frame (op 1 heartbeat request, 7 reconnect, 9 invalid session...)."""
        conn = self.current
        if conn is None:
            raise AssertionError("fake discord: no open connection")
        await self._send(conn, {"op": op, "d": d, "s": None, "t": None})

    # ---- REST --------------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Any:
        if request.content_type == "multipart/form-data":  # a message with files (``fake_discord_files``)
            try:
                body: Any = await read_multipart(request)
            except FormError as exc:
                body = {FORM_ERROR: str(exc)}
        else:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), body))
        return body

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return None

    @staticmethod
    def _form_error(field_name: str, message: str) -> web.Response:
        return web.json_response({"code": 50035, "message": "Invalid Form Body",
                                  "errors": {field_name: {"_errors": [{"code": "BASE_TYPE_BAD", "message": message}]}}},
                                 status=400)

    def _message(self, channel_id: str, body: dict[str, Any], *, webhook_id: str | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "id": self.snowflake(), "channel_id": channel_id, "content": body.get("content", ""),
            "author": self.bot_user, "embeds": body.get("embeds", []), "attachments": [], "mentions": [],
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime()), "tts": False,
            "type": 19 if body.get("message_reference") else 0, "flags": body.get("flags", 0) or 0,
        }
        files = body.get(FILES_KEY) or []
        if files:
            msg["attachments"] = attachment_objects(files, self.snowflake)
            self.files.extend({**f, "message_id": msg["id"], "channel_id": channel_id} for f in files)
        if body.get("message_reference"):
            msg["message_reference"] = body["message_reference"]
        if webhook_id is not None:
            msg["webhook_id"] = webhook_id
        return msg

    def _check_content(self, body: Any, *, need_something: bool = True) -> web.Response | None:
        if not isinstance(body, dict):
            return self._form_error("_", "body must be a JSON object")
        if FORM_ERROR in body:
            return self._form_error(body[FORM_ERROR], "Invalid multipart form field.")
        content = body.get("content")
        if content is not None and (not isinstance(content, str) or len(content) > MAX_CONTENT):
            return self._form_error("content", f"Must be {MAX_CONTENT} or fewer in length.")
        if need_something and not content and not body.get("embeds") and not body.get("components") \
                and not body.get(FILES_KEY):
            return web.json_response({"code": 50006, "message": "Cannot send an empty message"}, status=400)
        return None

    async def _create_message(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refused = self._unauthorized(request) or self._check_content(body)
        if refused is not None:
            return refused
        msg = self._message(request.match_info["channel_id"], body)
        self.messages.append(msg)
        self.timeline.append(("send", time.monotonic(), msg["id"], msg["content"]))
        return web.json_response(msg)

    async def _edit_message(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refused = self._unauthorized(request) or self._check_content(body)
        if refused is not None:
            return refused
        channel_id, message_id = request.match_info["channel_id"], request.match_info["message_id"]
        msg = next((m for m in self.messages if m["id"] == message_id and m["channel_id"] == channel_id), None)
        if msg is None:
            return web.json_response({"message": "Unknown Message", "code": 10008}, status=404)
        if "content" in body:
            msg["content"] = body["content"]
        msg["edited_timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        self.edits.append({"channel_id": channel_id, "message_id": message_id, **body})
        self.timeline.append(("edit", time.monotonic(), message_id, msg["content"]))
        return web.json_response(msg)

    def _interaction(self, request: web.Request) -> Interaction | None:
        found = self.interactions.get(request.match_info.get("id", ""))
        if found is None or found.token != request.match_info["token"]:
            return None
        return found

    def _interaction_by_token(self, request: web.Request) -> Interaction | None:
        if request.match_info["app_id"] != self.application_id:
            return None
        return next((i for i in self.interactions.values() if i.token == request.match_info["token"]), None)

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        interaction = self._interaction(request)
        if interaction is None:
            return web.json_response({"message": "Unknown interaction", "code": 10062}, status=404)
        if interaction.callbacks:
            return web.json_response({"message": "Interaction has already been acknowledged.", "code": 40060},
                                     status=400)
        if not isinstance(body, dict) or body.get("type") not in CALLBACK_TYPES:
            return self._form_error("type", "Value must be one of " + str(sorted(CALLBACK_TYPES)))
        interaction.callbacks.append(body)
        return web.Response(status=204)

    async def _followup(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        interaction = self._interaction_by_token(request)
        if interaction is None or not interaction.callbacks:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        refused = self._check_content(body)
        if refused is not None:
            return refused
        interaction.followups.append(body)
        return web.json_response(self._message(interaction.payload.get("channel_id", ""), body,
                                               webhook_id=self.application_id))

    async def _edit_followup(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        interaction = self._interaction_by_token(request)
        if interaction is None or not interaction.callbacks:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        refused = self._check_content(body, need_something=False)
        if refused is not None:
            return refused
        interaction.edits.append({"message_id": request.match_info["message_id"], **body})
        return web.json_response(self._message(interaction.payload.get("channel_id", ""), body,
                                               webhook_id=self.application_id))

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        await self._record(request)
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        return web.json_response({"url": "wss://gateway.discord.gg", "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}})

    async def _me(self, request: web.Request) -> web.Response:
        await self._record(request)
        return self._unauthorized(request) or web.json_response(self.bot_user)

    async def _open_dm(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        recipient = body.get("recipient_id") if isinstance(body, dict) else None
        if not isinstance(recipient, str) or not recipient.isdigit():
            return self._form_error("recipient_id", "Value is not snowflake.")
        channel_id = self.dm_channels.setdefault(recipient, self.snowflake())
        return web.json_response({"id": channel_id, "type": 1, "last_message_id": None, "flags": 0,
                                  "recipients": [{"id": recipient, "username": "user", "discriminator": "0"}]})

    async def _typing(self, request: web.Request) -> web.Response:
        await self._record(request)
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        self.typing.append(request.match_info["channel_id"])
        return web.Response(status=204)

    async def deliver_interaction(self, url: str, payload: dict[str, Any], signer: InteractionSigner, *,
                                  timestamp: str | None = None,
                                  headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST ``payload`` (from :meth:`new_interaction`) to the app's interactions endpoint ``url``, signed by
        ``signer`` (``headers`` replaces the signed headers, e.g. to drop or forge them). A 200 answer whose JSON
        ``type`` is a callback type acknowledges the interaction. Returns (status, JSON body or text)."""
        body = json.dumps(payload).encode()
        sent = headers if headers is not None else signer.headers(body, timestamp)
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=sent) as resp:
            text = await resp.text()
            status = resp.status
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = text
        found = self.interactions.get(str(payload.get("id")))
        if status == 200 and found is not None and isinstance(answer, dict) and answer.get("type") in CALLBACK_TYPES:
            found.callbacks.append(answer)
        return status, answer

    async def _unknown_api(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"message": "404: Not Found", "code": 0}, status=404)
