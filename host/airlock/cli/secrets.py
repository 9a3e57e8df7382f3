"""``airlock secrets set|list|rm``: the encrypted secret store (values are never printed)."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from ..config import HostConfig
from ..errors import ConfigError, SecretStoreError
from ..stores.secrets import is_valid_secret_name
from .app import app, config_from, friendly_errors
from .common import installed_caps, open_secrets, read_caps_quietly
from .output import JsonOption, print_json

__all__ = ["secrets_app"]

secrets_app = typer.Typer(help="Manage the encrypted secret store (values are never printed).",
                          no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _check_against_channels(config: HostConfig, name: str, value: str) -> None:
    """Refuse a value that an installed channel's ``setup.required_secrets[].validation`` rejects."""
    for caps_path in installed_caps(config):
        doc = read_caps_quietly(caps_path)
        if doc is None or doc.setup is None:
            continue
        for spec in doc.setup.required_secrets:
            if spec.name == name and spec.validation and not re.search(spec.validation, value):
                raise ConfigError(f"the value for {name} does not match the pattern channel {doc.name!r} "
                                  f"requires ({spec.validation}); nothing stored")


@secrets_app.command("set")
@friendly_errors
def secrets_set(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Secret name (a-z, 0-9, _).")],
) -> None:
    """Store a secret. The value is read from a hidden prompt, or from stdin when it is not a terminal.

    One trailing newline is stripped from stdin, so `echo TOKEN | airlock secrets set NAME` works.
    """
    if not is_valid_secret_name(name):
        raise SecretStoreError(f"invalid secret name {name[:80]!r}: names must match ^[a-z0-9_]{{1,64}}$")
    config = config_from(ctx)
    if _stdin_is_tty():
        value: str = typer.prompt(f"value for {name}", hide_input=True)
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if not value:
        raise ConfigError(f"empty value for {name}; nothing stored")
    _check_against_channels(config, name, value)
    store = open_secrets(config)
    assert store is not None
    store.set(name, value)
    typer.echo(f"stored secret {name}")


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
    """Delete a stored secret."""
    store = open_secrets(config_from(ctx), create=False)
    if store is None or not store.remove(name):
        raise SecretStoreError(f"no secret named {name!r}")
    typer.echo(f"removed secret {name}")
