"""``airlock pairing list|approve``: pairing requests from unknown senders."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..state.backends import open_pairing
from . import report
from .app import app, config_from, friendly_errors
from .common import complete_channel
from .output import Column, JsonOption, Row, show_rows

__all__ = ["pairing_app"]

pairing_app = typer.Typer(help="List and approve pairing requests from unknown senders.", no_args_is_help=True)
app.add_typer(pairing_app, name="pairing")


def _expires_in(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s"


def _expires_text(row: Row) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(row["expires_at"]))
    return f"in {_expires_in(row['expires_in_s'])} ({clock})"


PAIRING_COLUMNS = (
    Column("code", "code"),
    Column("external id", "external_id", limit=64),
    Column("meta", "meta_json", limit=80),
    Column("expires", "expires_at", text=_expires_text),
)


@pairing_app.command("list")
@friendly_errors
def pairing_list(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="The channel's name.", autocompletion=complete_channel)],
    as_json: JsonOption = False,
) -> None:
    """Show a channel's pending pairing requests: code, sender id, what the channel said, expiry.

    --json: a list of {code, external_id, meta_json, expires_at (Unix seconds), expires_in_s}.
    """
    config = config_from(ctx)
    with open_pairing(config) as store:
        pending = store.pending(channel)
    now = time.time()
    rows = [{"code": req.code, "external_id": req.external_id, "meta_json": req.meta_json,
             "expires_at": req.expires_at, "expires_in_s": max(0, int(req.expires_at - now))} for req in pending]
    show_rows(rows, PAIRING_COLUMNS, as_json=as_json, empty=f"no pending pairing requests for {channel}")
    if rows and not as_json:
        typer.echo(f"approve with: airlock pairing approve {channel} CODE", err=True)


@pairing_app.command("approve")
@friendly_errors
def pairing_approve(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="The channel's name.", autocompletion=complete_channel)],
    code: Annotated[str, typer.Argument(help="The code the sender was given (case-insensitive).")],
    owner: Annotated[str | None, typer.Option(
        help="Owner id to bind the sender to. (default: the sender's own id)")] = None,
) -> None:
    """Approve a pending pairing request: its sender may message the agent from now on."""
    config = config_from(ctx)
    with open_pairing(config) as store:
        req = store.approve(channel, code, owner)
    bound = f" as {owner}" if owner is not None else ""
    typer.echo(f"approved {report.safe(req.external_id)} on {channel}{bound}")
