"""``airlock messages list|show|retry``: the message log in ``HOME/state.db`` (``messages``), read by the operator.

``list`` shows the newest inbound messages and outbox entries (replies, broadcasts, status updates) together;
``--failed`` only the dead letters (outbox entries that failed for good, with their error). ``retry ID`` makes a
dead letter pending again with its tries reset: a running gateway's outbox sender picks it up within a second
(it looks at the log every ``messages.outbox.IDLE_S``), a stopped one at its next start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError
from ..messages.log import MessageLog
from ..messages.model import Entry, OutboxEntry
from ..state.backends import open_log
from .app import app, config_from, friendly_errors
from .output import Column, JsonOption, Row, show_doc, show_rows
from .report import safe

__all__ = ["messages_app"]

messages_app = typer.Typer(help="Inspect the message log and retry failed deliveries.", no_args_is_help=True)
app.add_typer(messages_app, name="messages")

#: Rows ``list`` shows unless ``--limit`` says otherwise; the most it accepts.
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000


def _when(row: Row) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["at"]))


COLUMNS = (
    Column("id", "id"),
    Column("dir", "direction"),
    Column("kind", "kind"),
    Column("channel", "channel", limit=32),
    Column("state", "state", style=lambda r: "red" if r["state"] == "failed" else ""),
    Column("tries", "attempts"),
    Column("at", "at", text=_when),
    Column("text", "text", limit=60),
    Column("error", "last_error", limit=80),
)


@contextmanager
def _log(ctx: typer.Context, *, create: bool = False) -> Iterator[MessageLog | None]:
    """The home's message log (``state`` in its config: SQLite, or PostgreSQL); None when a SQLite home has none
    yet and ``create`` is false."""
    config = config_from(ctx)
    if not create and config.state_url.kind == "sqlite" and not config.state_db.exists():
        yield None
        return
    log = open_log(config)
    try:
        yield log
    finally:
        log.close()


def inbound_doc(e: Entry) -> dict[str, Any]:
    return {"id": e.id, "direction": "in", "kind": "message", "channel": e.instance, "state": e.state,
            "attempts": e.attempts, "at": e.received_at, "text": e.content, "last_error": None,
            "user_id": e.user_id, "user_name": e.user_name, "thread_id": e.thread_id, "agent": e.route.agent,
            "session_key": e.route.session_key, "conversation": e.route.conversation,
            "matched_on": e.route.matched_on, "dedupe_key": e.dedupe_key, "metadata": e.metadata,
            "attachments": [a.as_dict() for a in e.attachments], "lease_until": e.lease_until}


def outbox_doc(o: OutboxEntry) -> dict[str, Any]:
    p = o.payload
    return {"id": o.id, "direction": "out", "kind": o.kind, "channel": o.instance, "state": o.state,
            "attempts": o.attempts, "at": o.created_at, "text": str(p.get("content") or p.get("status") or ""),
            "last_error": o.last_error, "in_reply_to": o.in_reply_to, "conversation": o.conversation,
            "next_attempt_at": o.next_attempt_at, "updated_at": o.updated_at, "agent": p.get("agent"),
            "platform_message_id": o.platform_message_id}


@messages_app.command("list")
@friendly_errors
def messages_list(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Only dead letters (deliveries that failed for good).")] =
    False,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="Most rows shown.")] = DEFAULT_LIMIT,
    as_json: JsonOption = False,
) -> None:
    """List the newest messages in (from channels) and out (replies, broadcasts, status), newest first.

    --json: a list of {id, direction ("in"/"out"), kind, channel, state, attempts, at (Unix seconds), text,
    last_error, ...}.
    """
    with _log(ctx) as log:
        rows: list[dict[str, Any]] = []
        if log is not None:
            rows = [outbox_doc(o) for o in log.list_outbox("failed" if failed else None, limit)]
            if not failed:
                rows += [inbound_doc(e) for e in log.list_inbound(None, limit)]
    rows = sorted(rows, key=lambda r: r["at"], reverse=True)[:limit]
    show_rows(rows, COLUMNS, as_json=as_json, empty="no failed deliveries" if failed else "the message log is empty")
    if failed and rows and not as_json:
        typer.echo("retry one with: airlock messages retry ID", err=True)


def _render(out: Console, doc: dict[str, Any]) -> None:
    grid = Table.grid(padding=(0, 2))
    for key, value in doc.items():
        grid.add_row(Text(key, style="bold"), Text(safe("" if value is None else str(value))))
    out.print(grid)


@messages_app.command("show")
@friendly_errors
def messages_show(ctx: typer.Context, message_id: Annotated[str, typer.Argument(metavar="ID", help="A log id.")],
                  as_json: JsonOption = False) -> None:
    """Show one inbound message or outbox entry in full.

    --json: the document (see `messages list --json`, plus routing, metadata and attachments).
    """
    with _log(ctx) as log:
        entry = log.get(message_id) if log is not None else None
        out = log.get_outbox(message_id) if log is not None and entry is None else None
    if entry is None and out is None:
        raise ConfigError(f"no message or outbox entry {message_id[:40]!r}")
    doc = inbound_doc(entry) if entry is not None else outbox_doc(out) if out is not None else {}
    show_doc(doc, as_json=as_json, render=_render)


@messages_app.command("retry")
@friendly_errors
def messages_retry(
    ctx: typer.Context, message_id: Annotated[str, typer.Argument(metavar="ID", help="A failed outbox entry's id.")],
) -> None:
    """Try a failed delivery again (its tries start over); a running gateway sends it within about a second."""
    with _log(ctx) as log:
        done = log is not None and log.retry(message_id, time.time())
        known = log is not None and log.get_outbox(message_id) is not None
    if not done:
        why = "it has not failed" if known else "no such outbox entry"
        raise ConfigError(f"cannot retry {message_id[:40]!r}: {why} (see airlock messages list --failed)")
    typer.echo(f"queued {message_id} for another delivery")
