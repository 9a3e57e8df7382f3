"""Plain data classes a channel receives and returns.

Nothing here knows about WIT: headers and metadata are dicts, bodies are bytes, statuses are strings.
The conversion to and from the component model lives in ``airlock_sdk._wit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import _json

__all__ = [
    "AgentReply",
    "Attachment",
    "ChannelConfig",
    "Endpoint",
    "HttpResponse",
    "InboundAttachment",
    "Message",
    "MessageEdit",
    "Poll",
    "Reaction",
    "Request",
    "Response",
    "Status",
    "StatusUpdate",
]


def _decode_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- on_start


@dataclass
class Endpoint:
    """An HTTP path the channel wants the host to route to ``on_http_request``."""

    path: str
    methods: list[str] = field(default_factory=lambda: ["POST"])
    require_secret: bool = False


@dataclass
class Poll:
    """Polling wish; the host clamps ``interval_ms`` to the capability minimum."""

    interval_ms: int
    enabled: bool = True


@dataclass
class ChannelConfig:
    """What ``on_start`` returns."""

    display_name: str
    endpoints: list[Endpoint] = field(default_factory=list)
    poll: Poll | None = None


# --------------------------------------------------------------------------- webhooks


@dataclass
class Request:
    """One inbound HTTP request routed to the channel.

    Header names are lower-cased; ``header()`` looks one up case-insensitively.
    """

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    secret_validated: bool = False

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it is not valid UTF-8 JSON."""
        return _json.loads(self.body.decode("utf-8"))

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return _decode_text(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    """The answer to an inbound HTTP request.

    ``body`` may be bytes, a str (sent as UTF-8 text) or a dict/list (sent as JSON).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] = b""

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"content-type": "application/json"}
        hdrs.update(headers or {})
        return cls(status=status, headers=hdrs, body=_json.dumps(obj).encode("utf-8"))

    @classmethod
    def text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"content-type": "text/plain; charset=utf-8"}
        hdrs.update(headers or {})
        return cls(status=status, headers=hdrs, body=text.encode("utf-8"))

    def encoded(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body bytes, adding a content-type for str/JSON bodies if missing."""
        headers = {str(k): str(v) for k, v in self.headers.items()}
        has_ct = False
        for k in headers:  # a loop, not any(<generator>): cheaper in a fresh WebAssembly interpreter
            if k.lower() == "content-type":
                has_ct = True
                break
        body = self.body
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
            if not has_ct:
                headers["content-type"] = "text/plain; charset=utf-8"
        elif isinstance(body, dict | list):
            data = _json.dumps(body).encode("utf-8")
            if not has_ct:
                headers["content-type"] = "application/json"
        else:
            raise TypeError(f"Response.body must be bytes, str, dict or list, not {type(body).__name__}")
        status = int(self.status)
        if not 100 <= status <= 599:
            raise ValueError(f"Response.status {status} is not an HTTP status code")
        return status, headers, data


# --------------------------------------------------------------------------- agent -> channel


@dataclass
class Attachment:
    """A file the agent attached to its reply."""

    filename: str
    mime_type: str
    data: bytes


@dataclass
class AgentReply:
    """The agent's reply. ``metadata`` is that of the ORIGINAL inbound message (routing info)."""

    message_id: str
    content: str
    thread_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class MessageEdit:
    """World 0.2.0: replace the whole text of a message the channel sent (``Channel.on_edit``).
    ``platform_message_id`` is what ``on_respond`` returned for it; ``metadata`` is the answered inbound message's."""

    platform_message_id: str
    content: str
    thread_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reaction:
    """World 0.2.0: add (``remove`` False) or remove the Unicode ``emoji`` on a message (``Channel.on_react``)."""

    platform_message_id: str
    emoji: str
    remove: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


class Status:
    """The status strings ``StatusUpdate.status`` can hold (the WIT enum names)."""

    THINKING = "thinking"
    DONE = "done"
    INTERRUPTED = "interrupted"
    TOOL_STARTED = "tool-started"
    TOOL_COMPLETED = "tool-completed"
    TOOL_RESULT = "tool-result"
    APPROVAL_NEEDED = "approval-needed"
    STATUS = "status"
    JOB_STARTED = "job-started"
    AUTH_REQUIRED = "auth-required"
    AUTH_COMPLETED = "auth-completed"

    ALL = (
        THINKING,
        DONE,
        INTERRUPTED,
        TOOL_STARTED,
        TOOL_COMPLETED,
        TOOL_RESULT,
        APPROVAL_NEEDED,
        STATUS,
        JOB_STARTED,
        AUTH_REQUIRED,
        AUTH_COMPLETED,
    )


@dataclass
class StatusUpdate:
    """A progress/typing notification; ``status`` is one of ``Status.ALL`` (e.g. "thinking")."""

    status: str
    message: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- channel -> agent


@dataclass
class InboundAttachment:
    """An attachment of an inbound message.

    If ``data`` is set, ``emit()`` first hands the bytes to the host (``store_attachment``).
    """

    id: str
    mime_type: str
    filename: str | None = None
    size_bytes: int | None = None
    source_url: str | None = None
    storage_key: str | None = None
    extracted_text: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None


@dataclass
class Message:
    """A message for the agent, queued with ``emit()``."""

    user_id: str
    content: str
    user_name: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attachments: list[InboundAttachment] = field(default_factory=list)


# --------------------------------------------------------------------------- outbound HTTP


@dataclass
class HttpResponse:
    """The answer to an outbound ``http()`` call (any status; only transport/policy failures raise)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it is not valid UTF-8 JSON."""
        return _json.loads(self.body.decode("utf-8"))

    def text(self) -> str:
        return _decode_text(self.body)

    def header(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lname:
                return v
        return default
