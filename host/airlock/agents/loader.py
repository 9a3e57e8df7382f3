"""Load the agent ``airlock serve --agent module:callable`` names.

An agent is an async callable taking the running :class:`~airlock.host.AirlockHost`::

    # mybot.py
    async def run(host):
        async for message in host.messages():
            await host.respond(message, message.content.upper())

``airlock serve --agent mybot:run`` imports ``mybot`` (the current directory is searched first, as
``python -m`` would) and calls ``run(host)``. The attribute part may be dotted (``pkg.mod:Bot.run``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..host import AirlockHost

Agent = Callable[["AirlockHost"], Awaitable[None]]
"""What ``serve`` runs: ``async def agent(host: AirlockHost) -> None``."""

__all__ = ["Agent", "load_agent"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - an instance with an async __call__
    return call is not None and not inspect.isclass(obj) and inspect.iscoroutinefunction(call)


def load_agent(spec: str, *, search_cwd: bool = True) -> Agent:
    """Import ``module:attribute`` and return it if it is an async callable.

    Raises:
        ConfigError: malformed spec, the module does not import (the message gives the first line of the
            import error), the attribute is missing, not callable, or not async. One line.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ConfigError(f"agent {spec!r}: expected module:callable (e.g. mybot:run)")
    if search_cwd and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"agent {spec!r}: cannot import {module_name!r}: {_first_line(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"agent {spec!r}: {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ConfigError(f"agent {spec!r}: {attr!r} is not callable (got {type(obj).__name__})")
    if not _is_async_callable(obj):
        short = attr.rsplit(".", 1)[-1]
        raise ConfigError(f"agent {spec!r}: {attr!r} must be async (async def {short}(host): ...)")
    return cast(Agent, obj)
