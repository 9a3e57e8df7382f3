"""Binds the channel-host WIT functions to the host API of the callback running on this thread.

Linkers are built once per (host interface, WASI or not, fast path or not) and shared by every
callback; each WIT import is a small trampoline that finds the current callback's ``HostApi`` in a
thread-local (a callback runs start to finish on one worker thread) and converts values through
``convert``. The same trampolines serve both call paths: on a fast linker, ``fastpath`` converts the WIT
values around them; on a stock linker, wasmtime-py does.

Blame (Spin's rule): a host function answers a guest mistake with a WIT error (``GuestFault`` raised by
the host API becomes ``err(message)``, or is swallowed for functions without a result); any other
exception is a host bug: it is recorded on the call and the guest is trapped, so the callback fails as
``HostBug`` and applies nothing.

Size: a ``list<u8>`` argument longer than the callback's ``max_list_bytes`` (``bind``; the host's
``HostConfig.max_guest_list_bytes``) is a guest mistake like any other, answered before the host API runs.

Big responses: a component composed with the http adapter (``runtime.adapter``) imports
``airlock:adapter/http-chunks`` too. ``http-begin`` is ``http-request`` up to the point where the body would be
handed over (every check, the leak scan included, has run on the whole response); the body then stays here, per
callback, and ``http-read`` hands it out in chunks into the adapter's memory. A body that cannot fit in that memory
(the callback's memory limit, ``bind``'s ``memory_bytes``, less :data:`ADAPTER_RESERVE_BYTES`) is refused with a
WIT error before anything is handed out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime
from wasmtime.component import Linker

from ..host_config import DEFAULT_MAX_GUEST_LIST_BYTES
from . import adapter, convert, fastpath
from .adapter_wat import CHUNK_BYTES
from .values import EmittedMessage, HttpResponse, LogLevel

log = logging.getLogger("airlock.runtime")


class GuestFault(Exception):
    """Raised by a host API method when the guest's input is refused; becomes the WIT error string."""


class CallAbandoned(Exception):
    """Raised by a host API method, before it does anything, to stop the callback without blame: the guest
    is trapped, nothing is logged as a host bug, and the host runs the callback again elsewhere (an inline
    attempt on the event loop that needs a worker thread: ``channels.manager``)."""


class HostApi(Protocol):
    """What a callback's host functions do. Implemented per callback by ``channels.callstate``."""

    host_bug: str | None

    def log(self, level: LogLevel, message: str) -> None: ...
    def now_millis(self) -> int: ...
    def workspace_read(self, path: str) -> str | None: ...
    def workspace_write(self, path: str, content: str) -> None: ...
    def http_request(
        self, method: str, url: str, headers_json: str, body: bytes | None, timeout_ms: int | None
    ) -> HttpResponse: ...
    def secret_exists(self, name: str) -> bool: ...
    def store_attachment_data(self, attachment_id: str, data: bytes) -> None: ...
    def emit_message(self, msg: EmittedMessage) -> None: ...
    def websocket_send_text(self, payload: str) -> None: ...
    def pairing_upsert_request(self, channel: str, external_id: str, meta_json: str) -> tuple[str, bool]: ...
    def pairing_resolve_identity(self, channel: str, external_id: str) -> str | None: ...
    def pairing_read_allow_from(self, channel: str) -> list[str]: ...


_current = threading.local()

ADAPTER_RESERVE_BYTES = 128 * 1024
"""Room the http adapter's memory needs besides the call's arguments, the response headers and body: its first page
(return areas, the heap's start) and one more for alignment and growth rounding. A body that does not fit in the
callback's memory limit with all of these gets a WIT error from http-begin."""


def bind(
    api: HostApi | None, max_list_bytes: int = DEFAULT_MAX_GUEST_LIST_BYTES, memory_bytes: int | None = None,
) -> None:
    """Make ``api`` the host API for callbacks on this thread (``None`` to clear); ``max_list_bytes``: the
    longest ``list<u8>`` its host functions accept from the guest; ``memory_bytes``: the callback's memory limit
    (bounds the response body http-begin accepts; ``None``: no bound). Drops a body not read to its end."""
    _current.api = api
    _current.returning = None
    _current.max_list_bytes = max_list_bytes
    _current.memory_bytes = memory_bytes
    _current.pending = None
    _current.pending_pos = 0


def _oversized(name: str, args: tuple[Any, ...]) -> str | None:
    """Why an argument of a call to ``name`` is refused for its size, or ``None``."""
    limit: int = getattr(_current, "max_list_bytes", DEFAULT_MAX_GUEST_LIST_BYTES)
    for arg in args:
        if isinstance(arg, bytes | bytearray) and len(arg) > limit:
            return f"{name}: a list<u8> argument of {len(arg)} bytes is over the host's limit of {limit} bytes"
    return None


def conversion_failure(exc: BaseException, callback: str) -> str:
    """Name a host value wasmtime could not take, for ``HostBug``: the result of the host function that
    last returned on this thread (stock path: wasmtime-py converts it after the trampoline returned), or
    else the arguments of the ``callback`` being called."""
    name: str | None = getattr(_current, "returning", None)
    return f"{type(exc).__name__} in {name or callback + ' arguments'}"


def _conversion_failed(name: str, exc: BaseException) -> None:
    # Fast path: a host function's result did not fit its WIT type. Same blame as a failing host function.
    api: HostApi | None = getattr(_current, "api", None)
    log.error("host bug in %s: %s: %s", name, type(exc).__name__, exc)
    if api is not None and api.host_bug is None:
        api.host_bug = f"{type(exc).__name__} in {name}"


def _api() -> HostApi:
    api: HostApi | None = getattr(_current, "api", None)
    if api is None:  # a guest call outside a callback: cannot happen unless the host is broken
        raise wasmtime.WasmtimeError("host function called outside a callback")
    return api


class _HostBugTrap(wasmtime.WasmtimeError):
    pass


class _AbandonTrap(wasmtime.WasmtimeError):
    pass


def _guard(name: str, fn: Callable[..., Any], *, err: Callable[[str], Any] | None) -> Callable[..., Any]:
    """Wrap the trampoline of WIT function ``name``: GuestFault -> WIT error (or ignored), CallAbandoned -> trap
    without blame, anything else -> recorded host bug + trap."""
    name = _LABELS.get(name, name)

    def trampoline(_store: Any, *args: Any) -> Any:
        api = _api()
        _current.returning = name  # wasmtime-py converts what this returns after it returned
        try:
            refused = _oversized(name, args)
            if refused is not None:
                raise GuestFault(refused)
            return fn(api, *args)
        except GuestFault as fault:
            if err is None:
                api.log("warn", f"host refused call: {fault}")
                return None
            return err(str(fault))
        except CallAbandoned:
            raise _AbandonTrap("callback abandoned by the host") from None
        except Exception as exc:
            log.exception("host bug in %s", name)
            api.host_bug = f"{type(exc).__name__} in {name}"
            # Raising WasmtimeError (not a plain exception) keeps wasmtime-py's process-global
            # LAST_EXCEPTION slot untouched, which is not safe across worker threads.
            raise _HostBugTrap("host function failed") from None

    return trampoline


def _untagged_err(message: str) -> str:
    return message


def _http_request(api: HostApi, method: str, url: str, headers: str, body: bytes | None, t: int | None) -> Any:
    return convert.http_response_to_wit(api.http_request(method, url, headers, body, t))


def _http_begin(api: HostApi, method: str, url: str, headers: str, body: bytes | None, t: int | None) -> Any:
    _current.pending = None  # a body the adapter did not read to its end (it always does) is dropped first
    resp = api.http_request(method, url, headers, body, t)
    limit: int | None = getattr(_current, "memory_bytes", None)
    # The adapter's memory holds this call's arguments (UTF-8: at most 3 bytes per character) and the response.
    arguments = 3 * (len(method) + len(url) + len(headers)) + len(body or b"")
    if limit is not None and len(resp.body) + 3 * len(resp.headers_json) + arguments + ADAPTER_RESERVE_BYTES > limit:
        raise GuestFault(f"http-request: the response body of {len(resp.body)} bytes does not fit in the "
                         f"callback's memory limit of {limit} bytes")
    _current.pending = memoryview(resp.body)
    _current.pending_pos = 0
    return convert.http_head_to_wit(resp.status, resp.headers_json, len(resp.body))


def _http_read(api: HostApi, most: int) -> bytes:
    """The next bytes of the pending body: at most ``most`` and :data:`CHUNK_BYTES`; at least 1 while any is
    left, none when nothing is pending (the adapter traps on an empty read before the end, so a loop cannot
    spin)."""
    pending: memoryview | None = getattr(_current, "pending", None)
    if pending is None:  # the adapter reads only after an http-begin that succeeded; an empty read makes it trap
        return b""
    pos: int = _current.pending_pos
    chunk = bytes(pending[pos : pos + max(0, min(most, CHUNK_BYTES))])
    _current.pending_pos = pos + len(chunk)
    if _current.pending_pos >= len(pending):
        _current.pending = None  # the host's copy goes as soon as the adapter has it all
    return chunk


def _emit(api: HostApi, rec: Any) -> None:
    api.emit_message(convert.emitted_message_from_wit(rec))


def _pairing_upsert(api: HostApi, channel: str, ext: str, meta: str) -> Any:
    code, created = api.pairing_upsert_request(channel, ext, meta)
    return convert.pairing_upsert_to_wit(code, created)


def _pairing_resolve(api: HostApi, channel: str, ext: str) -> Any:
    # result<option<string>, string>: both cases lower to str, so the value must be tagged.
    return convert.tagged_ok(api.pairing_resolve_identity(channel, ext))


_FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[[str], Any] | None]] = {
    "log": (lambda api, level, msg: api.log(level, msg), None),
    "now-millis": (lambda api: api.now_millis(), None),
    "workspace-read": (lambda api, path: api.workspace_read(path), None),
    "workspace-write": (lambda api, path, content: api.workspace_write(path, content), _untagged_err),
    "http-request": (_http_request, _untagged_err),
    "secret-exists": (lambda api, name: api.secret_exists(name), None),
    "store-attachment-data": (lambda api, i, data: api.store_attachment_data(i, data), _untagged_err),
    "emit-message": (_emit, None),
    "websocket-send-text": (lambda api, payload: api.websocket_send_text(payload), _untagged_err),
    "pairing-upsert-request": (_pairing_upsert, _untagged_err),
    "pairing-resolve-identity": (_pairing_resolve, convert.tagged_err),
    "pairing-read-allow-from": (lambda api, channel: api.pairing_read_allow_from(channel), _untagged_err),
}
"""WIT function name -> (implementation, how a GuestFault becomes the WIT error; None: no error case)."""

_CHUNK_FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[[str], Any] | None]] = {
    "http-begin": (_http_begin, _untagged_err),
    "http-read": (_http_read, None),
}
"""``airlock:adapter/http-chunks`` (``runtime.adapter``): provided next to the channel-host functions."""

_LABELS = {"http-begin": "http-request"}
"""A chunk function's name in errors, logs and size refusals: the function the guest called."""


HostFunctions = dict[str, tuple[Callable[..., Any], Callable[[str], Any] | None]]

_keep_alive: list[Any] = []  # fast trampolines live as long as the process (linkers are few and long-lived)


def build_linker(
    engine: wasmtime.Engine, host_interface: str, *, wasi: bool, fast: bool = False,
    functions: HostFunctions | None = None,
) -> Linker:
    """A linker that provides ``host_interface`` (and WASI p2 when ``wasi``) to components.

    ``fast``: convert values with ``fastpath`` (the component's converters must then be bound with
    ``fastpath.bind_imports`` around each call). ``functions``: WIT name -> (implementation taking the
    ``HostApi`` first, GuestFault -> WIT error mapping); default: the channel-host functions, and then also
    ``airlock:adapter/http-chunks`` for components composed with the http adapter.
    """
    linker = Linker(engine)
    if wasi:
        linker.add_wasip2()
    instances = {host_interface: functions or _FUNCTIONS}
    if functions is None:
        instances[adapter.CHUNKS_INTERFACE] = _CHUNK_FUNCTIONS
    with linker.root() as root:
        for interface, funcs in instances.items():
            guarded = {name: _guard(name, fn, err=err) for name, (fn, err) in funcs.items()}
            with root.add_instance(interface) as inst:
                if fast:
                    _keep_alive.extend(fastpath.add_host_funcs(inst, guarded, _conversion_failed))
                else:
                    for name, trampoline in guarded.items():
                        inst.add_func(name, trampoline)
    return linker


def is_host_bug_trap(exc: BaseException) -> bool:
    return isinstance(exc, _HostBugTrap)
