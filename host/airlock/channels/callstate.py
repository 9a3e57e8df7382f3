"""``CallState``: the host API of one callback, composed from the channel's capabilities.

It buffers everything a callback does (logs, emits, workspace writes, attachment bytes) so the channel
can apply it only if the callback succeeds, and keeps a trace of every host call for ``airlock invoke``.

Inline attempts (``inline=True``: the callback runs on the event loop thread, see ``channels.manager``): a host
function that would block or act outside the callback before it ends — ``http-request`` (network, rate-limit
counters), ``pairing-upsert-request`` (creates a code at once), ``websocket-send-text`` (sends at once) — records
why in ``abandoned`` and raises ``CallAbandoned`` before doing anything, so the attempt can be dropped and the
callback run again on a worker thread. Everything else is buffered already, or a quick local read (secret
names, the pairing store's reads, which the host's admission check also does on the loop).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..capabilities.attachments import AttachmentBuffer
from ..capabilities.emit import EmitBuffer
from ..capabilities.http_policy import HttpRefused
from ..capabilities.logging import LogBuffer
from ..capabilities.workspace import WorkspaceTxn
from ..messages.retry import PlatformAnswer, retry_hint
from ..runtime.linker import CallAbandoned, GuestFault
from ..runtime.values import EmittedMessage, HttpResponse, LogLevel

if TYPE_CHECKING:
    from ..capabilities.http import HttpAudit
    from .channel import Channel

MAX_TRACE = 2000


def _headers(headers_json: str) -> dict[str, str]:
    try:
        value = json.loads(headers_json or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class HostCall(NamedTuple):
    """One host function call, for reports. ``detail`` never carries a secret value. Immutable; a named tuple
    rather than a frozen dataclass because one is built per host call (~0.3 us instead of ~1.1 us)."""

    function: str
    detail: dict[str, Any]
    ok: bool = True
    error: str | None = None


@dataclass
class CallState:
    """Per-callback buffers plus the channel's capabilities (implements ``runtime.linker.HostApi``)."""

    channel: Channel
    deadline: float
    workspace: WorkspaceTxn
    logs: LogBuffer = field(default_factory=LogBuffer)
    emits: EmitBuffer = field(default_factory=lambda: EmitBuffer(65536))
    attachments: AttachmentBuffer = field(default_factory=AttachmentBuffer)
    http_audit: list[HttpAudit] = field(default_factory=list)
    trace: list[HostCall] = field(default_factory=list)
    host_bug: str | None = None
    http_wait_s: float = 0.0
    retry_hints: list[float] = field(default_factory=list)
    """Retry-After / retry_after hints (seconds) of 429 and 5xx answers in this callback."""
    inline: bool = False
    """True for an inline attempt on the event loop (see the module docstring)."""
    abandoned: str | None = None
    """The host function that ended an inline attempt (the callback must run again on a worker), else None."""

    def _needs_worker(self, function: str) -> None:
        """In an inline attempt, stop the callback before ``function`` does anything (module docstring)."""
        if self.inline:
            self.abandoned = function
            raise CallAbandoned(function)

    def _record(self, function: str, detail: dict[str, Any], error: str | None = None) -> None:
        if len(self.trace) < MAX_TRACE:
            self.trace.append(HostCall(function, detail, ok=error is None, error=error))

    def log(self, level: LogLevel, message: str) -> None:
        self.logs.add(level, message)
        self._record("log", {"level": level, "message": message[:200]})

    def now_millis(self) -> int:
        return int(time.time() * 1000)

    def workspace_read(self, path: str) -> str | None:
        try:
            value = self.workspace.read(path)
        except GuestFault as fault:
            # workspace-read has no error case in the WIT: a refused path reads as absent.
            self._record("workspace-read", {"path": path[:256]}, str(fault))
            return None
        self._record("workspace-read", {"path": path, "found": value is not None})
        return value

    def workspace_write(self, path: str, content: str) -> None:
        try:
            self.workspace.write(path, content)
        except GuestFault as fault:
            self._record("workspace-write", {"path": path[:256]}, str(fault))
            raise
        self._record("workspace-write", {"path": path, "bytes": len(content.encode())})

    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> HttpResponse:
        self._needs_worker("http-request")
        http = self.channel.http
        if http is None:
            self._record("http-request", {"method": method}, "this channel has no http capability")
            raise GuestFault("this channel has no http capability")
        start = time.monotonic()
        try:
            result = http.request(method, url, headers_json, body, timeout_ms, deadline=self.deadline,
                                  audit=self.http_audit)
        except HttpRefused as refused:
            self._record("http-request", self._last_audit(method), str(refused))
            raise GuestFault(str(refused)) from None
        finally:
            self.http_wait_s = max(self.http_wait_s, time.monotonic() - start)
        self._record("http-request", self._last_audit(method))
        if result.status == 429 or result.status >= 500:  # the outbox's retry class reads the platform's hint
            hint = retry_hint(result.status, _headers(result.headers_json), result.body)
            if hint is not None:
                self.retry_hints.append(hint)
        return HttpResponse(status=result.status, headers_json=result.headers_json, body=result.body)

    def platform_answers(self) -> list[PlatformAnswer]:
        """The HTTP exchanges of this callback that reached the network (status None: no answer), the last one
        carrying the largest retry hint seen (``messages.retry``)."""
        answers = [PlatformAnswer(a.status) for a in self.http_audit if a.allowed]
        if answers and self.retry_hints:
            answers[-1] = PlatformAnswer(answers[-1].status, max(self.retry_hints))
        return answers

    def _last_audit(self, method: str) -> dict[str, Any]:
        if not self.http_audit:
            return {"method": method}
        a = self.http_audit[-1]
        return {"method": a.method, "url": a.url, "allowed": a.allowed, "status": a.status,
                "elapsed_ms": round(a.elapsed_s * 1000, 1)}

    def secret_exists(self, name: str) -> bool:
        found = self.channel.secrets.exists(name)
        self._record("secret-exists", {"name": name[:128], "exists": found})
        return found

    def store_attachment_data(self, attachment_id: str, data: bytes) -> None:
        try:
            self.attachments.store(attachment_id, data)
        except GuestFault as fault:
            self._record("store-attachment-data", {"id": attachment_id[:128], "bytes": len(data)}, str(fault))
            raise
        self._record("store-attachment-data", {"id": attachment_id, "bytes": len(data)})

    def emit_message(self, msg: EmittedMessage) -> None:
        before = len(self.emits.messages)
        self.emits.add(msg)
        dropped = len(self.emits.messages) == before
        self._record("emit-message", {"user_id": msg.user_id, "content": msg.content[:200]},
                     "dropped (limit)" if dropped else None)

    def websocket_send_text(self, payload: str) -> None:
        self._needs_worker("websocket-send-text")
        try:
            self.channel.websocket.send_text(payload)
        except GuestFault as fault:
            self._record("websocket-send-text", {"bytes": len(payload)}, str(fault))
            raise
        self._record("websocket-send-text", {"bytes": len(payload)})

    def pairing_upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]:
        self._needs_worker("pairing-upsert-request")
        try:
            code, created = self.channel.pairing.upsert_request(channel, external_id, meta_json)
        except GuestFault as fault:
            self._record("pairing-upsert-request", {"id": external_id[:256]}, str(fault))
            raise
        self._record("pairing-upsert-request", {"id": external_id, "created": created})
        return code, created

    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None:
        try:
            owner = self.channel.pairing.resolve_identity(channel, external_id)
        except GuestFault as fault:
            self._record("pairing-resolve-identity", {"id": external_id[:256]}, str(fault))
            raise
        self._record("pairing-resolve-identity", {"id": external_id, "paired": owner is not None})
        return owner

    def pairing_read_allow_from(self, channel: str) -> list[str]:
        try:
            ids = self.channel.pairing.read_allow_from(channel)
        except GuestFault as fault:
            self._record("pairing-read-allow-from", {"channel": channel[:128]}, str(fault))
            raise
        self._record("pairing-read-allow-from", {"count": len(ids)})
        return ids
