"""A small typed async client of the agent HTTP API (``agentapi``; contract: ``agentapi/openapi.json``).

    async with AgentClient("http://127.0.0.1:8789", token) as agent:
        while True:
            for m in await agent.messages(wait=30):
                await agent.status(m.id, "thinking")
                await agent.reply(m.id, f"echo: {m.content}", lease_token=m.lease_token)

Every call raises :class:`AgentApiError` (``status``, ``error``) for an answer other than 2xx. POSTs take an
optional ``idempotency_key``: repeating a call with the same key (after a timeout, say) returns the first answer
instead of doing it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["Accepted", "AckResult", "AgentApiError", "AgentClient", "Message", "OutboxState"]


class AgentApiError(Exception):
    """A 4xx/5xx answer: ``status`` and the server's one-line ``error``."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error


@dataclass(frozen=True)
class Message:
    """A leased message (schema ``Message``). ``raw`` is the whole JSON object."""

    id: str
    lease_token: str
    channel: str
    user_id: str
    user_name: str | None
    thread_id: str | None
    content: str
    metadata: dict[str, Any]
    attachments: list[dict[str, Any]]
    session_key: str
    conversation: str
    received_at: float
    attempts: int
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        return cls(id=d["id"], lease_token=d["lease_token"], channel=d["channel"], user_id=d["user_id"],
                   user_name=d.get("user_name"), thread_id=d.get("thread_id"), content=d["content"],
                   metadata=d.get("metadata") or {}, attachments=list(d.get("attachments") or []),
                   session_key=d["session_key"], conversation=d["conversation"], received_at=d["received_at"],
                   attempts=d["attempts"], raw=d)


@dataclass(frozen=True)
class Accepted:
    """A queued reply, status or broadcast: its outbox id and state."""

    outbox_id: str
    state: str


@dataclass(frozen=True)
class AckResult:
    """One message of a batch acknowledgement (``ack_many``): ``acked``, or the ``status`` (404: not this agent's or
    unknown; 409: leased under another token) and ``error`` the single ack would have answered."""

    id: str
    acked: bool
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class OutboxState:
    """Delivery state of an outbox entry: ``state`` is pending, sent or failed."""

    id: str
    kind: str
    state: str
    attempts: int
    last_error: str | None
    platform_message_id: str | None = None
    """The platform's id of the message a sent reply became (channels of world 0.2.0)."""


class AgentClient:
    """The agent API at ``base_url`` (e.g. ``http://127.0.0.1:8789``) with bearer ``token``."""

    def __init__(self, base_url: str, token: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    idempotency_key: str | None = None, timeout_s: float = 30.0) -> Any:
        headers = dict(self._headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        async with self._http().request(method, self.base_url + path, json=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            doc = await resp.json(content_type=None)
            if resp.status >= 400:
                raise AgentApiError(resp.status, str(doc.get("error") if isinstance(doc, dict) else doc))
            return doc

    async def messages(self, wait: float = 30.0, limit: int = 10) -> list[Message]:
        """Lease up to ``limit`` (1..100) messages, waiting up to ``wait`` seconds (at most 60) for the first."""
        doc = await self._call("GET", f"/v1/messages?wait={wait:g}&limit={limit}", timeout_s=min(wait, 60) + 15)
        return [Message.from_json(m) for m in doc["messages"]]

    async def ack(self, message_id: str, lease_token: str, *, idempotency_key: str | None = None) -> None:
        await self._call("POST", f"/v1/messages/{message_id}/ack", {"lease_token": lease_token}, idempotency_key)

    async def ack_many(self, messages: Sequence[tuple[str, str]], *,
                       idempotency_key: str | None = None) -> list[AckResult]:
        """Acknowledge up to 100 leased messages, ``(id, lease_token)`` each (ids unique), in one request
        (``POST /v1/messages/ack``); one result per message, in order. One bad message does not fail the others; a
        bad request as a whole (no messages, more than 100, a repeated id) raises ``AgentApiError`` 422."""
        doc = await self._call("POST", "/v1/messages/ack",
                               {"messages": [{"id": i, "lease_token": t} for i, t in messages]}, idempotency_key)
        out = []
        for r in doc["results"]:
            error = r.get("error") or {}
            out.append(AckResult(r["id"], "error" not in r, error.get("status"), error.get("message")))
        return out

    async def reply(self, message_id: str, text: str, *, lease_token: str | None = None, thread: str | None = None,
                    stream: bool = False, idempotency_key: str | None = None,
                    attachments: list[dict[str, str]] | None = None) -> Accepted:
        """Acknowledge the message and queue ``text`` as its reply (delivered in the background). ``stream``: the
        first text of a streamed reply, continued with ``edit(outbox_id, text)`` and ended with ``final=True``.
        ``attachments``: files by reference, ``{"sha256", "filename", "mime_type"}`` each (``upload`` gives the
        sha256); at most 10 and 1.5 MiB together per reply (``airlock.messages.reply_files``)."""
        body: dict[str, Any] = {"text": text}
        if attachments:
            body["attachments"] = attachments
        if stream:
            body["stream"] = True
        if lease_token is not None:
            body["lease_token"] = lease_token
        if thread is not None:
            body["thread"] = thread
        doc = await self._call("POST", f"/v1/messages/{message_id}/reply", body, idempotency_key)
        return Accepted(doc["outbox_id"], doc["state"])

    async def upload(self, data: bytes) -> str:
        """Store a file for a reply (``POST /v1/attachments``); returns its sha256 for ``reply(attachments=...)``."""
        async with self._http().post(self.base_url + "/v1/attachments", data=data, headers=self._headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as resp:
            doc = await resp.json(content_type=None)
            if resp.status >= 400:
                raise AgentApiError(resp.status, str(doc.get("error") if isinstance(doc, dict) else doc))
            return str(doc["sha256"])

    async def download(self, url: str) -> bytes:
        """The bytes of an attachment (``Message.attachments[i]["url"]``, relative to the API's base URL)."""
        async with self._http().get(self.base_url + url, headers=self._headers,
                                    timeout=aiohttp.ClientTimeout(total=60)) as resp:
            if resp.status >= 400:
                raise AgentApiError(resp.status, "no such attachment for this agent")
            return await resp.read()

    async def status(self, message_id: str, status: str, message: str = "", *,
                     idempotency_key: str | None = None) -> Accepted:
        doc = await self._call("POST", f"/v1/messages/{message_id}/status", {"status": status, "message": message},
                               idempotency_key)
        return Accepted(doc["outbox_id"], doc["state"])

    async def broadcast(self, channel: str, user_id: str, content: str, *,
                        idempotency_key: str | None = None) -> Accepted:
        doc = await self._call("POST", "/v1/broadcast", {"channel": channel, "user_id": user_id, "content": content},
                               idempotency_key)
        return Accepted(doc["outbox_id"], doc["state"])

    async def edit(self, outbox_id: str, text: str, *, final: bool = False,
                   idempotency_key: str | None = None) -> Accepted:
        """The whole new text of the reply ``outbox_id``: the next text of a streamed reply (``final`` ends it), or a
        one-off edit of a sent reply. Raises ``ApiError`` 409 for a finished stream or a channel without on-edit."""
        doc = await self._call("POST", f"/v1/outbox/{outbox_id}/edit", {"text": text, "final": final},
                               idempotency_key)
        return Accepted(doc["outbox_id"], doc["state"])

    async def outbox(self, outbox_id: str) -> OutboxState:
        d = await self._call("GET", f"/v1/outbox/{outbox_id}")
        return OutboxState(d["id"], d["kind"], d["state"], d["attempts"], d.get("last_error"),
                           d.get("platform_message_id"))
