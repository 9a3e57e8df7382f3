"""The gateway's local control socket: how ``airlock channels ...`` and ``airlock secrets ...`` reach a running
``airlock serve`` on the same home (``server``), and the CLI's side of it (``client``)."""

from .client import CONTROL_TIMEOUT_S, ControlClient, ControlRefused, gateway_for
from .server import SOCKET_NAME, ControlServer

__all__ = ["CONTROL_TIMEOUT_S", "SOCKET_NAME", "ControlClient", "ControlRefused", "ControlServer", "gateway_for"]
