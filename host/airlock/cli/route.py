"""``airlock route explain``: which agent and session a message from a given place would get, and why."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from ..messages.routing import explain, route
from ..messages.routing_models import RouteInput
from .app import app, config_from, friendly_errors
from .output import JsonOption, show_doc

route_app = typer.Typer(help="Routing of messages to agents (bindings in HOME/airlock.toml, [routing]).",
                        no_args_is_help=True)
app.add_typer(route_app, name="route")


@route_app.command("explain")
@friendly_errors
def route_explain(
    ctx: typer.Context,
    channel: Annotated[str, typer.Option(help="The platform, e.g. telegram.")],
    peer: Annotated[str, typer.Option(help="The conversation: a user id for a DM, a chat id for a group.")],
    account: Annotated[str | None, typer.Option(help="The channel instance. (default: the channel)")] = None,
    kind: Annotated[str, typer.Option(help="dm, group or thread.")] = "dm",
    parent: Annotated[str | None, typer.Option(help="A thread's parent conversation.")] = None,
    group: Annotated[str | None, typer.Option(help="Group / guild id.")] = None,
    team: Annotated[str | None, typer.Option(help="Team id (Slack workspace).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Print which binding matched (or the default agent), why the others lost, and the session key."""
    cfg = config_from(ctx).routing
    try:
        inp = RouteInput(channel=channel, account=account or channel, peer_kind=kind,  # type: ignore[arg-type]
                         peer_id=peer, parent_peer_id=parent, group_id=group, team_id=team)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).splitlines()[0]) from None
    result = route(cfg, inp)
    lines = explain(cfg, inp)
    doc = {"agent": result.agent, "session_key": result.session_key, "binding": result.binding_index,
           "matched_on": result.matched_on, "explain": lines}
    show_doc(doc, as_json=json_out, render=_render)


def _render(con: Console, doc: dict[str, Any]) -> None:
    for line in doc["explain"]:
        con.print(line, markup=False, soft_wrap=True)
