"""How a failed callback is reported: the trap kinds, the full-pool refusal, and whose fault it was.

Both call paths of ``instance.Sandbox`` (wasmtime-py's objects and ``fastpath_store``) and its reused instances
send every exception through here, so a trap, a full instance pool and a host bug are told apart the same way
whichever path ran. Apart from ``instance`` because it reads only error texts and the call's host state, not
stores or components.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import wasmtime

from ..errors import AirlockError, GuestTrap, HostBug, SandboxBusy, TrapKind
from . import linker as host_linker

log = logging.getLogger("airlock.runtime")


def classify_trap(message: str) -> TrapKind:
    """Map a wasmtime error message to a trap kind (traps surface as WasmtimeError with the reason in
    the text: wasmtime-py-notes.md, "Traps and limits")."""
    text = message.lower()
    if "all fuel consumed" in text:
        return "fuel"
    if "interrupt" in text:
        return "timeout"
    if "memory" in text and ("limit" in text or "exceeds" in text or "grow" in text):
        return "memory"
    if "unreachable" in text:
        return "panic"
    return "trap"


def _trap_reason(exc: BaseException) -> str:
    """One line saying why wasmtime failed. A trap's text starts with "error while executing at wasm
    backtrace:" and names the reason only at the end, after "Caused by:"; other errors lead with it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if "Caused by:" in lines else lines[0]


def pool_full(exc: BaseException) -> SandboxBusy | None:
    """``SandboxBusy`` if ``exc`` is the pooling allocator refusing an instantiation because every slot of some
    kind is taken ("maximum concurrent limit of N for component instances reached", and the same for core
    instances, memories, tables); else None. Only instantiation errors are passed here: a guest cannot
    raise them."""
    if not isinstance(exc, wasmtime.WasmtimeError):
        return None
    for line in str(exc).splitlines():
        text = line.strip()
        if text.startswith("maximum concurrent") and text.endswith("reached"):
            return SandboxBusy(text)
    return None


def classify_failure(exc: BaseException, api: host_linker.HostApi, callback: str) -> AirlockError:
    """How Airlock reports a callback that raised ``exc`` (both call paths go through here).

    A trap is the guest's fault (``GuestTrap`` with the reason's kind), unless a host function recorded a
    host bug first; any other exception is a host value wasmtime could not take (``HostBug``, named by
    ``linker.conversion_failure`` and recorded on ``api`` as a failing host function's bug is, so later
    failures of the same instance keep the blame).
    """
    if isinstance(exc, AirlockError):
        return exc
    if isinstance(exc, wasmtime.WasmtimeError):
        if api.host_bug is not None or host_linker.is_host_bug_trap(exc):
            return HostBug(api.host_bug or "host function failed")
        # Classify the reason only: the backtrace carries guest-chosen function names.
        reason = _trap_reason(exc)
        return GuestTrap(classify_trap(reason), reason)
    if api.host_bug is None:
        api.host_bug = host_linker.conversion_failure(exc, callback)
    return HostBug(api.host_bug)


_T = TypeVar("_T")


def instantiated(instantiate: Callable[[], _T]) -> _T:
    """Run ``instantiate``; a full instance pool becomes ``SandboxBusy`` (not a guest trap)."""
    try:
        return instantiate()
    except wasmtime.WasmtimeError as exc:
        busy = pool_full(exc)
        if busy is not None:
            raise busy from None
        raise


def failure(exc: Exception, api: host_linker.HostApi, callback: str) -> AirlockError:
    """``classify_failure`` for a call that raised ``exc``; an unexpected host exception is logged (the error
    the caller sees names no internals)."""
    # Classified while the call is still bound: a conversion failure is named from that state.
    classified = classify_failure(exc, api, callback)
    if isinstance(classified, HostBug) and not isinstance(exc, AirlockError | wasmtime.WasmtimeError):
        log.error("host bug in %s: %s: %s", callback, type(exc).__name__, exc)
    return classified
