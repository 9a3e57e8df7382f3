"""``airlock secrets set|list|rm``: the encrypted secret store (values are never printed)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..control import gateway_for
from ..errors import ConfigError, SecretStoreError
from ..host_config import HostConfig
from ..stores.secrets import generate_value, is_valid_stored_name
from .app import app, config_from, friendly_errors
from .common import open_secrets
from .output import JsonOption, print_json
from .report import safe
from .secret_setup import SecretSpec, secret_spec

__all__ = ["secrets_app"]

secrets_app = typer.Typer(help="Manage the encrypted secret store (values are never printed).",
                          no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")

#: Characters of ``secrets set --generate`` when no installed channel says how long the secret should be.
DEFAULT_GENERATE_LENGTH = 32


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@secrets_app.command("set")
@friendly_errors
def secrets_set(
    ctx: typer.Context, name: Annotated[str, typer.Argument(
        help="Secret name (a-z, 0-9, _); INSTANCE/NAME for a channel installed --as INSTANCE.")],
    generate: Annotated[bool, typer.Option(
        "--generate", help="Store a random value (the length a channel's setup asks for; else "
                           f"{DEFAULT_GENERATE_LENGTH} characters) instead of reading one.")] = False,
) -> None:
    """Store a secret. The value is read from a hidden prompt, or from stdin when it is not a terminal.

    Installed channels' capabilities files (setup.required_secrets, auth) give the prompt and a hint, a pattern
    the value must match, and whether an empty value may be generated. A name no installed channel uses is
    stored with a warning. One trailing newline is stripped from stdin (`echo TOKEN | airlock secrets set NAME`).
    A running gateway starts the channels that waited for it at once.
    """
    if not is_valid_stored_name(name):
        raise SecretStoreError(f"invalid secret name {name[:80]!r}: names must match [INSTANCE/]NAME, NAME "
                               f"^[a-z0-9_]{{1,64}}$")
    config = config_from(ctx)
    spec = secret_spec(config, name)
    value = "" if generate else _read_value(spec)
    generated = not value and (generate or spec.generate_length is not None)
    if generated:
        value = generate_value(spec.generate_length or DEFAULT_GENERATE_LENGTH)
    if not value:
        raise ConfigError(f"empty value for {name}; nothing stored")
    spec.check(value)
    store = open_secrets(config)
    assert store is not None
    store.set(name, value)
    typer.echo(f"stored secret {name}" + (f" (generated, {len(value)} characters)" if generated else "")
               + _tell_gateway(config))
    warning = spec.unused_warning()
    if warning is not None:  # after storing: a refused value gets its one error line only
        typer.echo(f"warning: {warning}", err=True)


def _tell_gateway(config: HostConfig) -> str:
    """Have a running gateway start or stop the channels the change concerns; what it did, for the output."""
    gateway = gateway_for(config.home)
    if gateway is None:
        return ""
    changed = gateway.call("POST", "/v1/secrets/changed").get("changed", [])
    said = [f"{c.get('name')}: {c.get('status')}" for c in changed if isinstance(c, dict)]
    return f"; running gateway: {'; '.join(said)}" if said else ""


def _read_value(spec: SecretSpec) -> str:
    """The value from a hidden prompt (with the channels' prompt and hint shown first), or from stdin."""
    if _stdin_is_tty():
        for line in [*dict.fromkeys(spec.prompts), *dict.fromkeys(spec.hints)]:
            typer.echo(safe(line, 300), err=True)
        empty_ok = spec.generate_length is not None
        return str(typer.prompt(f"value for {spec.name}" + (" (empty: generate one)" if empty_ok else ""),
                                hide_input=True, default="" if empty_ok else None, show_default=False))
    value = sys.stdin.read()
    return value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value


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


@secrets_app.command("rotate-key")
@friendly_errors
def secrets_rotate_key(ctx: typer.Context) -> None:
    """Re-encrypt every secret with a new master key (HOME/master.key is replaced).

    Safe to interrupt: killed at any point, the store opens with the old key or the new one; run it again to
    finish. Refused while a gateway runs on the home. With AIRLOCK_MASTER_KEY, the new key is read from
    AIRLOCK_NEW_MASTER_KEY and you set AIRLOCK_MASTER_KEY to it afterwards.
    """
    from ..stores.keyrotation import NEW_KEY_ENV_VAR, rotate_master_key

    config = config_from(ctx)
    done = rotate_master_key(config.home)
    plural = "" if done.secrets == 1 else "s"
    if done.from_env:
        typer.echo(f"re-encrypted {done.secrets} secret{plural} with the key in {NEW_KEY_ENV_VAR}; set "
                   f"AIRLOCK_MASTER_KEY to it now (the old key no longer opens the store)")
    else:
        typer.echo(f"re-encrypted {done.secrets} secret{plural} with a new master key in {done.key_file}")
