"""``airlock config show``: the effective host settings and where each came from (``host_settings``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..host_settings import ENV_VARS
from .app import app, friendly_errors, settings_from
from .output import Column, JsonOption, Row, show_rows

__all__ = ["config_app"]

config_app = typer.Typer(help="The host config: HOME/airlock.toml (or --config), AIRLOCK_* variables, defaults.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")

_VAR_OF = {name: var for var, name in ENV_VARS.items()}
_VAR_OF["home"] = "AIRLOCK_HOME"


def _plain(value: Any) -> Any:
    """A JSON-able form of a setting's value (paths as strings, models as objects)."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _text(row: Row) -> str:
    value = row["value"]
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


@config_app.command("show")
@friendly_errors
def config_show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print every host setting's effective value and its source: default, file (its path), env (the variable)
    or command line (--home). Setting NAME is read from the variable AIRLOCK_<NAME> (routing: file only).

    --json: a list of {name, value, source, where, env}.
    """
    settings = settings_from(ctx)
    rows = []
    for name in type(settings.config).model_fields:
        kind, where = settings.origins[name]
        rows.append({"name": name, "value": _plain(getattr(settings.config, name)), "source": kind,
                     "where": where or None, "env": _VAR_OF.get(name)})
    columns = (Column("setting", "name"), Column("value", "value", text=_text, limit=80),
               Column("source", "source", text=lambda r: f"{r['source']} {r['where'] or ''}".strip()))
    show_rows(rows, columns, as_json=as_json, empty="no settings")
