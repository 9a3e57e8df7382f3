"""``airlock invoke --offline FILE``: every ``http-request`` answered from a file of canned responses.

The file is JSON, either a list of responses or ``{"responses": [...]}``; each response is::

    {"method": "POST",                                   optional; any method when absent
     "url": "https://api.telegram.org/bot*/sendMessage", required; '*' matches any run of characters
     "status": 200,                                      default 200 (100..599)
     "headers": {"content-type": "application/json"},    optional, strings
     "json": {"ok": true}  or  "body": "text",           optional, at most one of the two (default: empty)
     "times": 1}                                         optional: answers at most this many requests

A request is answered by the first response whose method and URL match and whose ``times`` is not used up.
The URL matched is the one the host would send, after the allow-list check and credential injection, with
every secret value replaced by ``[REDACTED]`` (so the file never needs a token). A request no response
matches gets the error ``offline: no canned response for METHOD URL``. The host's policy still runs in full
(allow-list, credentials, rate limit, redirects, ``max_response_bytes``); only the network is replaced, so
nothing leaves the machine: :class:`OfflineEgress` opens no socket and resolves no name.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..capabilities.egress import Egress, EgressResponse
from ..capabilities.http_policy import HttpRefused
from ..errors import ConfigError

__all__ = ["MAX_CANNED_FILE_BYTES", "MAX_CANNED_RESPONSES", "CannedResponse", "OfflineEgress", "load_canned"]

#: Largest canned-responses file read, in bytes.
MAX_CANNED_FILE_BYTES = 4 * 1024 * 1024
#: Most responses one file may hold.
MAX_CANNED_RESPONSES = 1000
#: Request bodies are shown in the report up to this many characters.
_SHOWN_BODY_CHARS = 2000


class CannedResponse(BaseModel):
    """One canned response (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    url: str = Field(min_length=1, max_length=4096)
    method: str | None = Field(default=None, pattern=r"^[A-Za-z]{1,16}$")
    status: int = Field(default=200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    times: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_body(self) -> CannedResponse:
        if self.body is not None and "json_body" in self.model_fields_set:
            raise ValueError("give either body or json, not both")
        return self

    def matches(self, method: str, url: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return _glob(self.url).fullmatch(url) is not None

    def response(self) -> EgressResponse:
        headers = dict(self.headers)
        if "json_body" in self.model_fields_set:
            data = json.dumps(self.json_body).encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["content-type"] = "application/json"
        else:
            data = (self.body or "").encode("utf-8")
        return EgressResponse(status=self.status, headers=tuple(headers.items()), body=data)


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters; everything else is literal (``[`` and ``?`` too)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def load_canned(path: Path) -> list[CannedResponse]:
    """Read and validate a canned-responses file.

    Raises:
        ConfigError: missing file, over :data:`MAX_CANNED_FILE_BYTES`, not JSON, more than
            :data:`MAX_CANNED_RESPONSES` responses, or an invalid response (one line naming its index).
    """
    where = f"--offline {path}"
    try:
        size = path.stat().st_size
        if size > MAX_CANNED_FILE_BYTES:
            raise ConfigError(f"{where}: larger than {MAX_CANNED_FILE_BYTES} bytes")
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid JSON: {exc}") from None
    items = raw.get("responses") if isinstance(raw, dict) and set(raw) == {"responses"} else raw
    if not isinstance(items, list):
        raise ConfigError(f'{where}: expected a list of responses or {{"responses": [...]}}')
    if len(items) > MAX_CANNED_RESPONSES:
        raise ConfigError(f"{where}: more than {MAX_CANNED_RESPONSES} responses")
    out: list[CannedResponse] = []
    for i, item in enumerate(items):
        try:
            out.append(CannedResponse.model_validate(item))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{where}: responses[{i}]{'.' + loc if loc else ''}: {err['msg']}") from None
    return out


@dataclass
class OfflineRequest:
    """One request the guest made, as the report shows it (URL and body redacted)."""

    method: str
    url: str
    body: str | None
    answered_by: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "body": self.body, "answered_by": self.answered_by}


class OfflineEgress(Egress):
    """An :class:`Egress` that answers from canned responses and never touches the network.

    It subclasses ``Egress`` only to stand where the HTTP capability expects one; it does not call
    ``Egress.__init__``, so no event loop thread, session or resolver exists. Thread-safe.
    """

    def __init__(self, responses: list[CannedResponse]) -> None:
        self._canned = responses
        self._used = [0] * len(responses)
        self._lock = threading.Lock()
        self.requests: list[OfflineRequest] = []

    def close(self) -> None:
        """Nothing to close."""

    def fetch(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        max_response_bytes: int,
        timeout_s: float,
        redact: Callable[[str], str] = str,
    ) -> EgressResponse:
        """Answer from the first matching canned response; ``HttpRefused`` when none matches."""
        shown_url = redact(url)
        shown_body = None if body is None else redact(body.decode("utf-8", "replace"))[:_SHOWN_BODY_CHARS]
        with self._lock:
            index = self._match(method, shown_url)
            self.requests.append(OfflineRequest(method, shown_url, shown_body, index))
        if index is None:
            raise HttpRefused(f"offline: no canned response for {method} {shown_url}")
        response = self._canned[index].response()
        if len(response.body) > max_response_bytes:
            raise HttpRefused(f"response body exceeds max_response_bytes ({max_response_bytes} bytes)")
        return response

    def _match(self, method: str, url: str) -> int | None:
        for i, canned in enumerate(self._canned):
            if canned.times is not None and self._used[i] >= canned.times:
                continue
            if canned.matches(method, url):
                self._used[i] += 1
                return i
        return None
