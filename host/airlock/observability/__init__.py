"""Seeing a running host: Prometheus metrics, JSON or text logs without secret values, recent callbacks.

- ``metrics``: the host's ``prometheus-client`` registry (``/metrics`` on the admin listener).
- ``observer``: ``CallObserver``, fed by the channels, the webhook server and the manager.
- ``recent``: the last callbacks and errors of each channel (the admin API's "recent calls").
- ``logs``: ``configure_logging(format, level)`` and the secret-redacting filter.
- ``context``: the channel / callback / trace id of the running code (contextvars).
- ``reasons``: bounded reason labels for refusals.
"""

from .context import LogContext, new_trace_id
from .logs import REDACTOR, configure_logging
from .metrics import Metrics
from .observer import CallObserver, outcome_of
from .recent import CallRecord, RecentCalls, call_doc

__all__ = [
    "REDACTOR",
    "CallObserver",
    "CallRecord",
    "LogContext",
    "Metrics",
    "RecentCalls",
    "call_doc",
    "configure_logging",
    "new_trace_id",
    "outcome_of",
]
