"""A persistent plugin process speaking JSON-RPC 2.0 on stdio: the design Airlock is measured against.

Faithful to how plugin hosts run such plugins: one long-lived process per plugin, line-delimited JSON (one
request object per line on stdin, one response per line on stdout), one request in flight at a time, and
the plugin's effects (the messages it emits) returned in the response for the host to apply.

Request:  {"jsonrpc": "2.0", "id": <int>, "method": "on_http_request",
           "params": {"method": str, "path": str, "headers": {str: str}, "query": {str: str},
                      "body": str (UTF-8 text), "secret_validated": bool}}
Result:   {"status": int, "headers": {str: str}, "body": str,
           "emit": [{"user_id": str, "content": str, "user_name": str|null, "thread_id": str|null,
                     "metadata_json": str}]}
Errors (JSON-RPC 2.0 section 5.1): -32700 parse error, -32600 invalid request, -32601 method not found,
-32602 invalid params.

Run: ``python bench/plugin_peer.py`` (reads until EOF).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from work import handle


def _error(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def respond(line: bytes) -> dict[str, Any]:
    """The response object for one request line."""
    try:
        req = json.loads(line)
    except ValueError:
        return _error(None, -32700, "parse error")
    if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str):
        return _error(req.get("id") if isinstance(req, dict) else None, -32600, "invalid request")
    req_id = req.get("id")
    if req["method"] != "on_http_request":
        return _error(req_id, -32601, "method not found")
    params = req.get("params")
    body = params.get("body") if isinstance(params, dict) else None
    if not isinstance(body, str):
        return _error(req_id, -32602, "invalid params: body must be a string")
    status, out, emission = handle(body.encode())
    result = {"status": status, "headers": {"content-type": "application/json"}, "body": out.decode(),
              "emit": [asdict(emission)] if emission is not None else []}
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        if line.strip():
            stdout.write(json.dumps(respond(line), separators=(",", ":")).encode() + b"\n")
            stdout.flush()


if __name__ == "__main__":
    main()
