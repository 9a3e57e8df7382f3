"""Host logs: text or one JSON object a line, with channel, callback and trace id, and no secret values.

``configure_logging("json", "info")`` gives the ``airlock`` logger one handler (replacing one it gave before)
that writes to ``sys.stderr`` as it is at each record (test runners swap it) or to ``stream``. Two filters
run on that handler, so they see every ``airlock.*`` record:

- ``ContextFilter`` puts ``channel``, ``callback`` and ``trace_id`` on the record from
  ``observability.context``; outside a callback, a message written as ``"[%s] ..."`` or ``"channel %s ..."``
  (the host's convention) names its channel in its first argument.
- ``REDACTOR`` (a ``SecretRedactor``) replaces every value of every watched secret store (values of at least
  ``MIN_REDACTED_CHARS`` characters, raw and URL-encoded) in the message and the exception text with
  ``[REDACTED:<name>]``. ``AirlockHost`` watches its store while it runs; the values are re-read only when the
  store file changes (``os.stat`` per record), so a secret set while the host runs is redacted from its next
  record on.

JSON line fields: ``ts`` (UTC, ISO 8601, milliseconds), ``level`` (lowercase), ``logger``, ``message``,
``channel``, ``callback``, ``trace_id`` (each null when unknown) and ``exc`` (the traceback, when there is one).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import IO, Any, Literal
from urllib.parse import quote, quote_plus

from ..errors import ConfigError
from . import context
from .docs import MIN_REDACTED_CHARS

__all__ = [
    "LOG_FORMATS",
    "MIN_REDACTED_CHARS",
    "REDACTOR",
    "ContextFilter",
    "JsonFormatter",
    "SecretRedactor",
    "configure_logging",
    "parse_level",
    "remove_logging",
]

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}


def parse_level(level: str | int) -> int:
    """``"info"`` (any case) or a ``logging`` number -> the number. Raises ConfigError for anything else."""
    if isinstance(level, int):
        return level
    found = _LEVELS.get(level.strip().lower())
    if found is None:
        raise ConfigError(f"log level {level[:20]!r}: expected one of {', '.join(_LEVELS)}")
    return found


class ContextFilter(logging.Filter):
    """Sets ``record.channel``, ``record.callback`` and ``record.trace_id`` (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        channel = ctx.channel if ctx is not None else None
        if channel is None and isinstance(record.msg, str) and record.msg.startswith(("[%s]", "channel %s")):
            args = record.args
            if isinstance(args, tuple) and args and isinstance(args[0], str):
                channel = args[0]
        record.channel = channel
        record.callback = ctx.callback if ctx is not None else None
        record.trace_id = ctx.trace_id if ctx is not None else None
        return True


class _Watched:
    """One secret store's values, re-read when its ``signature()`` changes (the file's stat, or the database
    store's generation)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._signature: tuple[int, int, int] | None = None
        self.pairs: list[tuple[str, str]] = []

    def refresh(self) -> bool:
        signature = self.store.signature()
        if signature == self._signature:
            return False
        values: list[tuple[str, str]] = []
        for name in self.store.names():
            value = self.store.get(name)
            if value is not None and len(value) >= MIN_REDACTED_CHARS:
                values.append((value, name))
        self.pairs, self._signature = values, signature
        return True


class SecretRedactor(logging.Filter):
    """Replaces watched secret values in records (module docstring). Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._watched: list[_Watched] = []
        self._forms: list[tuple[str, str]] = []

    def watch(self, store: Any) -> None:
        """Redact ``store``'s values (a ``SecretStore``: ``signature()``, ``names()``, ``get(name)``) until
        unwatched."""
        with self._lock:
            self._watched.append(_Watched(store))
            self._rebuild()

    def unwatch(self, store: Any) -> None:
        with self._lock:
            self._watched = [w for w in self._watched if w.store is not store]
            self._rebuild()

    def _rebuild(self) -> None:
        forms: dict[str, str] = {}
        for w in self._watched:
            w.refresh()
            for value, name in w.pairs:
                for form in (value, quote(value, safe=""), quote_plus(value)):
                    forms.setdefault(form, name)
        self._forms = sorted(forms.items(), key=lambda p: -len(p[0]))

    def _current(self) -> list[tuple[str, str]]:
        with self._lock:
            if any([w.refresh() for w in self._watched]):
                self._rebuild()
            return self._forms

    def redact(self, text: str) -> str:
        """``text`` with every watched secret value replaced by ``[REDACTED:<name>]``."""
        for form, name in self._current():
            if form in text:
                text = text.replace(form, f"[REDACTED:{name}]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._watched:
            return True
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = SecretRedactor()
"""The process's redactor: every handler ``configure_logging`` installs runs it."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z", "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(), "channel": getattr(record, "channel", None),
            "callback": getattr(record, "callback", None), "trace_id": getattr(record, "trace_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, ensure_ascii=False)


class _Handler(logging.StreamHandler[IO[str]]):
    """Writes to ``stream``, or to whatever ``sys.stderr`` is at emit time when ``stream`` is None."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._fixed is None:
            self.stream = sys.stderr
        super().emit(record)


_installed: list[tuple[str, logging.Handler]] = []


def remove_logging() -> None:
    """Remove the handler ``configure_logging`` installed, if any."""
    for logger, handler in _installed:
        logging.getLogger(logger).removeHandler(handler)
    _installed.clear()


def configure_logging(fmt: str = "text", level: str | int = "info", *, stream: IO[str] | None = None,
                      logger: str = "airlock") -> logging.Handler:
    """Send the ``logger`` tree's records at ``level`` and above to ``stream`` (default: ``sys.stderr``) as
    ``fmt`` ("json": one object a line; "text": ``TEXT_FORMAT``), with context fields and secrets redacted.

    Replaces a handler installed by an earlier call. Returns the handler.

    Raises:
        ConfigError: ``fmt`` is not "json" or "text", or ``level`` is not a level name.
    """
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"log format {fmt[:20]!r}: expected json or text")
    numeric = parse_level(level)
    root = logging.getLogger(logger)
    remove_logging()
    handler = _Handler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(REDACTOR)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    _installed.append((logger, handler))
    return handler
