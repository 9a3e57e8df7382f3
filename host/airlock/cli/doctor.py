"""``airlock doctor``: check what the gateway needs before it is needed.

Toolchain (Python, wasmtime-py; the channel build tools as notes), the home and the master key (private to
this user), the secret store (opens with the key), installed channels (valid, component present, secrets
set), the webhook port (free, or held by this home's gateway), clock skew against ``--clock-url``'s ``Date``
header (signed webhooks allow 300 s), and the compile cache (entries this wasmtime loads). Nothing is written
to the home. Exit status 2 when a check fails, else 0 (warnings and notes do not fail).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console

from ..errors import ConfigError
from . import doctor_checks as checks
from .app import app, config_from, friendly_errors
from .output import Column, JsonOption, show_doc, show_rows

__all__ = ["doctor"]

_STYLE = {"ok": "green", "note": "cyan", "warn": "yellow", "fail": "bold red", "skip": "dim"}

DOCTOR_COLUMNS = (
    Column("check", "area"),
    Column("status", "status", style=lambda r: _STYLE.get(str(r["status"]), "")),
    Column("detail", "detail"),
)


def _render(out: Console, doc: dict[str, Any]) -> None:
    show_rows(doc["checks"], DOCTOR_COLUMNS, as_json=False, empty="")
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    out.print(f"{len(failed)} check(s) failed" if failed else "no failures", style="red" if failed else "green")


@app.command()
@friendly_errors
def doctor(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(
        metavar="N", help="The webhook port to check. (default: 8080, as serve)")] = None,
    host: Annotated[str | None, typer.Option(help="The listen address to check. (default: 127.0.0.1)")] = None,
    clock_url: Annotated[str | None, typer.Option(
        "--clock-url", metavar="URL", help="Compare this machine's clock with the Date header of URL "
        "(e.g. https://slack.com). Without it the clock is not checked.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the toolchain, the home's permissions, the secret store, channels, the port, the clock and the
    compile cache. Exit status 2 if a check fails."""
    if clock_url is not None and urlsplit(clock_url).scheme not in ("http", "https"):
        raise ConfigError(f"--clock-url {clock_url!r}: expected an http:// or https:// URL")
    values: dict[str, Any] = {}
    if port is not None:
        values["listen_port"] = port
    if host is not None:
        values["listen_host"] = host
    config = config_from(ctx, **values)
    results = [*checks.toolchain(), *checks.home(config), *checks.state(config), *checks.secrets(config),
               *checks.channels(config),
               *checks.port(config), *checks.clock(clock_url), *checks.cache(config)]
    doc = {"ok": not any(c.status == "fail" for c in results), "home": str(config.home),
           "checks": [c.as_dict() for c in results]}
    show_doc(doc, as_json=as_json, render=_render)
    if not doc["ok"]:
        raise typer.Exit(2)
