"""``airlock agents add|list|rm``: the agents allowed to use the agent API (``agentapi``; ``stores.agents``).

``add`` prints the new agent's bearer token once (only its hash is kept) and, for a push agent, its push signing
secret once (kept in the encrypted secret store). A running gateway sees a new or removed agent at once (tokens
are checked per request; push workers within a few seconds). With PostgreSQL state the registry is the cluster's
(``state.backends.open_agents``): an agent added on one node's home works on every node.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..errors import ConfigError
from ..state.backends import open_agents
from .app import app, config_from, friendly_errors
from .common import open_secrets
from .output import Column, JsonOption, print_json, show_rows

__all__ = ["agents_app"]

agents_app = typer.Typer(help="Manage the agents that use the agent HTTP API (tokens, push URLs).",
                         no_args_is_help=True)
app.add_typer(agents_app, name="agents")

AGENT_COLUMNS = (
    Column("name", "name"),
    Column("mode", "mode"),
    Column("push url", "push_url", limit=80),
    Column("created", "created_at", text=lambda r: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"]))),
)


@agents_app.command("add")
@friendly_errors
def agents_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Agent name: a-z, 0-9, _ and -, up to 64 characters.")],
    push_url: Annotated[str | None, typer.Option(
        "--push-url", metavar="URL", help="Push mode: POST each message, signed, to this http(s) URL.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Register an agent and print its bearer token (shown once; store it now).

    Routing sends it the messages its bindings match (or all unclaimed ones if it is the default agent).
    --json: {name, token, push_url, push_secret}.
    """
    config = config_from(ctx)
    store = open_secrets(config) if push_url is not None else None
    registry = open_agents(config)
    try:
        token, secret = registry.add(name, store, push_url)  # a pull agent needs no store (nor a master key)
    finally:
        registry.close()
    if as_json:
        print_json({"name": name, "token": token, "push_url": push_url, "push_secret": secret})
        return
    typer.echo(f"added agent {name}")
    typer.echo(f"token: {token}")
    if secret is not None:
        typer.echo(f"push secret: {secret}")
    typer.echo("these are shown once: only a hash of the token is kept", err=True)


@agents_app.command("list")
@friendly_errors
def agents_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered agents (never their tokens).

    --json: a list of {name, mode ("pull" or "push"), push_url, created_at (Unix seconds)}.
    """
    config = config_from(ctx)
    if config.state_url.kind == "sqlite" and not config.agents_db.exists():
        records = []
    else:
        registry = open_agents(config)
        try:
            records = registry.all()
        finally:
            registry.close()
    rows = [{"name": r.name, "mode": r.mode, "push_url": r.push_url, "created_at": r.created_at} for r in records]
    show_rows(rows, AGENT_COLUMNS, as_json=as_json, empty="no agents registered (add one: airlock agents add NAME)")


@agents_app.command("rm")
@friendly_errors
def agents_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Agent name.")]) -> None:
    """Remove an agent: its token stops working at once (its messages stay in the log)."""
    config = config_from(ctx)
    registry = open_agents(config)
    try:
        record = registry.get(name)
        if record is None:
            raise ConfigError(f"no agent named {name!r}")
        store = open_secrets(config, create=False) if record.push_secret_name else None
        registry.remove(name, store)
    finally:
        registry.close()
    typer.echo(f"removed agent {name}")
