"""The CLI's side of the control socket (``control.server``): is a gateway serving this home, and ask it to act.

    client = gateway_for(home)          # None: no gateway answers; edit the home directly
    status, doc = client.call("POST", "/v1/channels/telegram/rollback", {})

A socket file nobody answers on (a gateway killed with -9) counts as no gateway.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .server import SOCKET_NAME, socket_address

__all__ = ["CONTROL_TIMEOUT_S", "ControlClient", "ControlRefused", "gateway_for"]

CONTROL_TIMEOUT_S = 120.0
"""Longest wait for the gateway's answer (an upgrade loads a component, drains the old version for up to
``channels.swap.SWAP_DRAIN_S`` and starts the new one)."""
CONNECT_TIMEOUT_S = 2.0


class ControlRefused(ConfigError):
    """The gateway refused or failed the request: ``status`` and its one-line ``error``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("airlock", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            with socket_address(self._path) as address:
                sock.connect(address)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


class ControlClient:
    """Requests to the gateway on ``path`` (a ``control.sock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def call(self, method: str, route: str, body: dict[str, Any] | None = None,
             timeout: float = CONTROL_TIMEOUT_S) -> dict[str, Any]:
        """The JSON answer. Raises ControlRefused (the gateway's status and message) for a non-2xx answer,
        ConfigError when the gateway cannot be reached or answers nonsense."""
        conn = _UnixConnection(self.path, timeout)
        try:
            payload = json.dumps(body or {}).encode()
            conn.request(method, route, body=payload if method != "GET" else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ConfigError(f"the gateway on {self.path} did not answer ({type(exc).__name__})") from None
        finally:
            conn.close()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ConfigError(f"the gateway on {self.path} answered {resp.status} without a JSON object")
        if resp.status >= 300:
            raise ControlRefused(resp.status, str(doc.get("error") or f"status {resp.status}"))
        return doc


def gateway_for(home: Path) -> ControlClient | None:
    """A client for the gateway serving ``home``, or None when none answers on ``home/control.sock``."""
    path = home / SOCKET_NAME
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        with socket_address(path) as address:
            sock.connect(address)
    except OSError:
        return None
    finally:
        sock.close()
    return ControlClient(path)
