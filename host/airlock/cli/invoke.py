"""``airlock invoke WASM CALLBACK``: run one callback in a fresh sandbox and report every host call."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import CapabilitiesFile, HostConfig, load_capabilities
from ..runtime.engine import CALLBACKS
from ..stores import PairingStore, SecretStore
from . import report
from .app import QUIETABLE, app, config_from, friendly_errors, parse_upstreams, setup_logging
from .common import load_component, open_secrets, runtime_for
from .invoke_input import Call, build_call
from .output import JsonOption, show_doc

__all__ = ["invoke"]


def _secret_values(caps: CapabilitiesFile, store: SecretStore | None) -> dict[str, str]:
    """Values of every stored secret the channel could have used (for redacting the report)."""
    if store is None:
        return {}
    named: set[str] = set()
    if caps.capabilities.http is not None:
        named |= {c.secret_name for c in caps.capabilities.http.credentials.values()}
    if caps.setup is not None:
        named |= {s.name for s in caps.setup.required_secrets}
    if caps.auth is not None:
        named.add(caps.auth.secret_name)
    values: dict[str, str] = {}
    for name in store.names():
        if name in named or caps.capabilities.secrets.allows(name):
            value = store.get(name)
            if value is not None:
                values[name] = value
    return values


def _run_invoke(config: HostConfig, wasm: Path, caps: CapabilitiesFile, request: dict[str, Any],
                call: Call) -> dict[str, Any]:
    from ..channels.channel import Channel, HostServices
    from ..runtime.instance import Sandbox

    with contextlib.ExitStack() as stack:
        runtime = stack.enter_context(runtime_for(config))
        loaded = load_component(runtime, wasm)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="airlock-invoke-")))
        pairing = stack.enter_context(PairingStore(scratch / "pairing.db"))
        secrets = open_secrets(config, create=False)
        egress = None
        if caps.capabilities.http is not None:
            from ..capabilities.egress import Egress

            egress = Egress(upstream_overrides=config.upstream_overrides,
                            allow_private_hosts=config.allow_private_hosts)
            stack.callback(egress.close)
        services = HostServices(
            sandbox=Sandbox(runtime, fastpath=config.fastpath),
            secret_lookup=secrets.get if secrets is not None else (lambda _n: None),
            pairing=pairing, durable=None, egress=egress, memory_limit_bytes=config.memory_limit_bytes,
            fuel_per_callback=config.fuel_per_callback,
        )
        channel = Channel(caps, loaded, services)
        outcome = call(channel)
        doc = report.invoke_doc(channel, outcome, request)
        redacted: dict[str, Any] = report.redact(doc, _secret_values(caps, secrets))
        return redacted


@app.command()
@friendly_errors
def invoke(
    ctx: typer.Context,
    wasm: Annotated[Path, typer.Argument(help="The channel component (.wasm).")],
    callback: Annotated[str, typer.Argument(help=f"One of: {', '.join(CALLBACKS)}.")],
    capabilities: Annotated[Path, typer.Option("--capabilities", "-c", help="Its capabilities file.")],
    input_json: Annotated[str | None, typer.Option("--input", metavar="JSON", help=(
        "JSON input. on-start: the config object (default: the capabilities file's config); "
        'on-http-request: {"method","path","headers","query","body"}; on-respond/on-broadcast: '
        '{"content","metadata","user_id","thread_id"}; on-status: {"status","message","metadata"}.'
    ))] = None,
    as_json: JsonOption = False,
    upstream: Annotated[list[str] | None, typer.Option(
        metavar="HOST=URL", help="Send the channel's traffic for HOST to URL instead. Repeatable.")] = None,
) -> None:
    """Run ONE callback in a fresh sandbox and report every host call it made.

    The server's limits apply (memory, fuel, the channel's callback timeout). Secrets come from the
    home's store, so credential injection works (values are redacted from the report); the workspace
    and pairing store are temporary, so nothing is persisted. Exit status 2 if the callback failed.
    """
    setup_logging(logging.WARNING, quiet=QUIETABLE)
    config = config_from(ctx, upstream_overrides=parse_upstreams(upstream))
    caps = load_capabilities(capabilities)
    request, call = build_call(callback, input_json, caps)
    doc = _run_invoke(config, wasm, caps, request, call)
    show_doc(doc, as_json=as_json, render=report.render_invoke)
    if not doc["ok"]:
        raise typer.Exit(2)
