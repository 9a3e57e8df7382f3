"""The host side of the JSON-RPC plugin (bench/plugin_peer.py): spawn it once, send one request per
callback, validate the response and turn its emissions into Airlock's ``EmittedMessage`` as a real host would.

``SyncPlugin`` is for the callback-level benchmark (blocking pipes, the cheapest possible round trip);
``AsyncPlugin`` serves the HTTP benchmark from the event loop (one request in flight, like a stdio plugin).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from airlock.runtime.values import EmittedMessage

PEER = Path(__file__).resolve().with_name("plugin_peer.py")
MAX_LINE_BYTES = 4 * 1024 * 1024
"""A response line longer than this is refused (a plugin host must bound what it reads)."""


class PluginError(Exception):
    """The plugin answered something that is not a valid response to the request."""


def request_line(req_id: int, body: bytes, path: str, headers: dict[str, str]) -> bytes:
    params = {"method": "POST", "path": path, "headers": headers, "query": {}, "body": body.decode(),
              "secret_validated": True}
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "on_http_request", "params": params},
                      separators=(",", ":")).encode() + b"\n"


def _opt_str(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise PluginError(f"{what} must be a string or null")
    return value


def _message(item: Any) -> EmittedMessage:
    if not isinstance(item, dict):
        raise PluginError("emit entries must be objects")
    user_id, content, meta = item.get("user_id"), item.get("content"), item.get("metadata_json")
    if not isinstance(user_id, str) or not isinstance(content, str) or not isinstance(meta, str):
        raise PluginError("emit entries need string user_id, content and metadata_json")
    return EmittedMessage(user_id=user_id, content=content, metadata_json=meta,
                          user_name=_opt_str(item.get("user_name"), "user_name"),
                          thread_id=_opt_str(item.get("thread_id"), "thread_id"))


def parse_response(line: bytes, req_id: int) -> tuple[int, bytes, list[EmittedMessage]]:
    """(status, body, messages) from one response line.

    Raises:
        PluginError: not JSON-RPC 2.0, another id, an error object, or a result of the wrong shape.
    """
    if not line.endswith(b"\n"):
        raise PluginError("plugin closed its stdout or sent a partial line")
    try:
        resp = json.loads(line)
    except ValueError:
        raise PluginError("response is not JSON") from None
    if not isinstance(resp, dict) or resp.get("jsonrpc") != "2.0" or resp.get("id") != req_id:
        raise PluginError("response is not a JSON-RPC 2.0 answer to this request")
    if "error" in resp:
        raise PluginError(f"plugin error: {resp['error']!r}"[:200])
    result = resp.get("result")
    if not isinstance(result, dict):
        raise PluginError("result must be an object")
    status, body, emit = result.get("status"), result.get("body"), result.get("emit")
    if not isinstance(status, int) or not 100 <= status <= 599 or not isinstance(body, str):
        raise PluginError("result needs an HTTP status and a string body")
    if not isinstance(emit, list):
        raise PluginError("result.emit must be a list")
    return status, body.encode(), [_message(m) for m in emit]


class SyncPlugin:
    """One plugin process driven with blocking pipes. Not thread-safe (one request in flight)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, str(PEER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._next_id = 0

    def call(self, body: bytes, path: str = "/webhook/plugin",
             headers: dict[str, str] | None = None) -> tuple[int, bytes, list[EmittedMessage]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._next_id += 1
        self._proc.stdin.write(request_line(self._next_id, body, path, headers or {}))
        self._proc.stdin.flush()
        return parse_response(self._proc.stdout.readline(MAX_LINE_BYTES), self._next_id)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=5)


class AsyncPlugin:
    """One plugin process driven from an event loop; requests are serialized by a lock."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._lock = asyncio.Lock()
        self._next_id = 0

    @classmethod
    async def start(cls) -> AsyncPlugin:
        proc = await asyncio.create_subprocess_exec(sys.executable, str(PEER), stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, limit=MAX_LINE_BYTES)
        return cls(proc)

    async def call(self, body: bytes, path: str, headers: dict[str, str]) -> tuple[int, bytes, list[EmittedMessage]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        async with self._lock:
            self._next_id += 1
            self._proc.stdin.write(request_line(self._next_id, body, path, headers))
            await self._proc.stdin.drain()
            line = await self._proc.stdout.readline()
            return parse_response(line, self._next_id)

    async def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        await asyncio.wait_for(self._proc.wait(), timeout=5)
