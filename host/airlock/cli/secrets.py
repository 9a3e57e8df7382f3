"""``airlock secrets set|list|rm``: the encrypted secret store (values are never printed)."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from ..channels.catalog import secret_name_for
from ..config import HostConfig
from ..control import gateway_for
from ..errors import ConfigError, SecretStoreError
from ..stores import SecretStore
from ..stores.secrets import is_valid_stored_name
from .app import app, config_from, friendly_errors
from .common import installed_caps, open_secrets
from .output import JsonOption, print_json

__all__ = ["secrets_app"]

secrets_app = typer.Typer(help="Manage the encrypted secret store (values are never printed).",
                          no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _check_against_channels(config: HostConfig, name: str, value: str) -> None:
    """Refuse a value that an installed channel's ``setup.required_secrets[].validation`` rejects."""
    for entry in installed_caps(config):
        doc = entry.caps
        if doc is None or doc.setup is None:
            continue
        for spec in doc.setup.required_secrets:
            stored = secret_name_for(entry.name, entry.platform, spec.name)
            if stored == name and spec.validation and not re.search(spec.validation, value):
                raise ConfigError(f"the value for {name} does not match the pattern channel {entry.name!r} "
                                  f"requires ({spec.validation}); nothing stored")


@secrets_app.command("set")
@friendly_errors
def secrets_set(
    ctx: typer.Context, name: Annotated[str, typer.Argument(
        help="Secret name (a-z, 0-9, _); INSTANCE/NAME for a channel installed --as INSTANCE.")],
) -> None:
    """Store a secret. The value is read from a hidden prompt, or from stdin when it is not a terminal.

    One trailing newline is stripped from stdin, so `echo TOKEN | airlock secrets set NAME` works. A running
    gateway starts the channels that waited for it at once.
    """
    if not is_valid_stored_name(name):
        raise SecretStoreError(f"invalid secret name {name[:80]!r}: names must match [INSTANCE/]NAME, NAME "
                               f"^[a-z0-9_]{{1,64}}$")
    config = config_from(ctx)
    if _stdin_is_tty():
        value: str = typer.prompt(f"value for {name}", hide_input=True)
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if not value:
        raise ConfigError(f"empty value for {name}; nothing stored")
    _check_against_channels(config, name, value)
    store = SecretStore.open(config.home)
    store.set(name, value)
    typer.echo(f"stored secret {name}{_tell_gateway(config)}")


def _tell_gateway(config: HostConfig) -> str:
    """Have a running gateway start or stop the channels the change concerns; what it did, for the output."""
    gateway = gateway_for(config.home)
    if gateway is None:
        return ""
    changed = gateway.call("POST", "/v1/secrets/changed").get("changed", [])
    said = [f"{c.get('name')}: {c.get('status')}" for c in changed if isinstance(c, dict)]
    return f"; running gateway: {'; '.join(said)}" if said else ""


@secrets_app.command("list")
@friendly_errors
def secrets_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the names of stored secrets (never their values), one a line.

    --json: a list of names.
    """
    store = open_secrets(config_from(ctx), create=False)
    names = store.names() if store is not None else []
    if as_json:
        print_json(names)
        return
    if not names:
        typer.echo("no secrets stored", err=True)
    for name in names:
        typer.echo(name)


@secrets_app.command("rm")
@friendly_errors
def secrets_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Secret name.")]) -> None:
    """Delete a stored secret. A running gateway stops the channels that need it at once."""
    config = config_from(ctx)
    store = open_secrets(config, create=False)
    if store is None or not is_valid_stored_name(name) or not store.remove(name):
        raise SecretStoreError(f"no secret named {name[:80]!r}")
    typer.echo(f"removed secret {name}{_tell_gateway(config)}")
