"""``airlock channels config show|set|unset NAME``: the operator's settings of a channel (``channels.settings``),
kept apart from the plugin's manifest so that upgrades keep them. A running gateway restarts the channel with
the new settings at once (``Operations.reload``); bad input changes nothing."""

from __future__ import annotations

from typing import Annotated

import typer

from ..channels.layout import ChannelStore
from ..channels.settings import (
    config_sources,
    effective_caps,
    load_settings,
    parse_value,
    read_manifest,
    save_settings,
    with_setting,
)
from ..control import ControlRefused, gateway_for
from ..host_config import HostConfig
from .app import config_from, friendly_errors
from .channels import channels_app
from .channels_lifecycle import NameArg, _store
from .output import JsonOption, print_json

__all__ = ["config_app"]

config_app = typer.Typer(help="Show and change a channel's operator settings (kept across upgrades).",
                         no_args_is_help=True)
channels_app.add_typer(config_app, name="config")

KeyArg = Annotated[str, typer.Argument(help="KEY or config.KEY (the channel's config), capabilities.A.B (a grant).")]


@config_app.command("show")
@friendly_errors
def config_show(ctx: typer.Context, name: NameArg, as_json: JsonOption = False) -> None:
    """Each config key with its value and where it comes from (operator or plugin), and the capability patch.

    --json: {name, version, config: {KEY: {value, source, plugin}}, capabilities_patch: {...}}.
    """
    config = config_from(ctx)
    store = _store(config, name)
    inst = store.get(name)
    settings = load_settings(store.operator_path(name))
    sources = config_sources(read_manifest(store.manifest(name, inst.active)), settings)
    if as_json:
        print_json({"name": name, "version": inst.active, "config": sources,
                    "capabilities_patch": settings.capabilities})
        return
    typer.echo(f"{name} {inst.active}")
    for key, row in sources.items():
        plugin = f" (plugin default: {_json(row['plugin'])})" if row["source"] == "operator" else ""
        typer.echo(f"  {key} = {_json(row['value'])}  [{row['source']}]{plugin}")
    if settings.capabilities:
        typer.echo(f"  capabilities patch (RFC 7396): {_json(settings.capabilities)}")


def _json(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _apply(config: HostConfig, store: ChannelStore, name: str, key: str, value: object, unset: bool) -> str:
    path = store.operator_path(name)
    before = load_settings(path)
    settings = with_setting(before, key, value, unset=unset)
    effective_caps(store, name, settings=settings)  # must still validate: nothing is written otherwise
    save_settings(path, settings)
    gateway = gateway_for(config.home)
    if gateway is None:
        return " (in the home; the next airlock serve uses it)"
    try:
        doc = gateway.call("POST", f"/v1/channels/{name}/reload")
    except ControlRefused:  # the channel did not start with them: it runs on the old ones, which stay recorded
        save_settings(path, before)
        raise
    return f" (running gateway: {doc.get('status')})"


@config_app.command("set")
@friendly_errors
def config_set(ctx: typer.Context, name: NameArg, key: KeyArg,
               value: Annotated[str, typer.Argument(help="A JSON value (123, true, [\"a\"], null), else text.")]
               ) -> None:
    """Set one operator setting; the plugin's value of that key no longer applies (upgrades keep it)."""
    config = config_from(ctx)
    store = _store(config, name)
    parsed = parse_value(value)
    note = _apply(config, store, name, key, parsed, unset=False)
    typer.echo(f"{name}: {key} = {_json(parsed)}{note}")


@config_app.command("unset")
@friendly_errors
def config_unset(ctx: typer.Context, name: NameArg, key: KeyArg) -> None:
    """Drop one operator setting: the plugin's value applies again."""
    config = config_from(ctx)
    store = _store(config, name)
    note = _apply(config, store, name, key, None, unset=True)
    typer.echo(f"{name}: {key} is the plugin's again{note}")
