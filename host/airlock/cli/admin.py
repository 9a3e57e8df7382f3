"""``airlock admin token``: a new login token for the admin console, API and ``/metrics``."""

from __future__ import annotations

import typer

from ..admin import issue_token
from ..admin.auth import TOKEN_FILENAME
from .app import app, config_from, friendly_errors
from .output import JsonOption, print_json

__all__ = ["admin_app"]

admin_app = typer.Typer(help="The admin console and API (served by `airlock serve`).", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


@admin_app.command("token")
@friendly_errors
def admin_token(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Make a new admin token and print it, once. The old token, and every console session opened with it,
    stop working at once, also in a running gateway. Only the token's SHA-256 is stored (HOME/admin-token,
    mode 0600).

    --json: {token, file}.
    """
    config = config_from(ctx)
    token = issue_token(config.home)
    if as_json:
        print_json({"token": token, "file": str(config.home / TOKEN_FILENAME)})
        return
    typer.echo(token)
    typer.echo("the admin token above is shown once; the previous one no longer works", err=True)
