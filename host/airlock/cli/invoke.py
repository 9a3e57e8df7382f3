"""``airlock invoke TARGET CALLBACK``: run one callback in a fresh sandbox and report every host call.

TARGET is a component file (its capabilities file from ``-c``, else ``NAME.capabilities.json`` beside it) or
the name of an installed channel (its installed component and capabilities file). Options that let a channel
author exercise any callback without a live platform:

* ``--workspace KEY=VALUE`` (repeatable) seeds the temporary workspace;
* ``--after-start`` runs ``on-start`` with the capabilities file's ``config`` first, so the callback sees
  what ``on-start`` saved (its report is included);
* ``--input @FILE`` (or ``@-`` for stdin) reads the input JSON from a file;
* ``--offline FILE`` answers every ``http-request`` from canned responses (``cli/offline.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..capabilities.workspace import MAX_VALUE_BYTES, validate_path
from ..errors import ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile, load_capabilities
from ..messages.model import NewEntry
from ..runtime.engine import CALLBACKS
from ..runtime.linker import GuestFault
from ..stores import PairingStore, SecretStore
from . import report
from .app import QUIETABLE, app, config_from, friendly_errors, parse_upstreams, setup_logging
from .common import NAME_RE, load_component, open_secrets, runtime_for
from .invoke_input import Call, build_call
from .offline import OfflineEgress, load_canned
from .output import JsonOption, show_doc

if TYPE_CHECKING:
    from ..capabilities.egress import Egress
    from ..channels.channel import HostServices
    from ..runtime.engine import Runtime

__all__ = ["MAX_INPUT_BYTES", "invoke"]

#: Largest ``--input`` read from a file or stdin, in bytes (a webhook body is at most 2 MiB, plus JSON).
MAX_INPUT_BYTES = 4 * 1024 * 1024


class _SeedWorkspace:
    """The invoke workspace's "durable" backend: starts with the ``--workspace`` values, keeps writes in
    memory only (``capabilities.workspace.DurableBackend``)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def load_workspace(self, instance: str) -> dict[str, str]:
        return dict(self.values)

    def commit(self, instance: str, workspace: Mapping[str, str], entries: Sequence[NewEntry],
               now: float, fence: object = None) -> list[NewEntry]:
        self.values.update(workspace)
        return list(entries)


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


def _parse_workspace(items: list[str] | None) -> dict[str, str]:
    """``--workspace KEY=VALUE`` items, checked like a guest's workspace-write (path rules, value size)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--workspace {item[:80]!r}: expected KEY=VALUE (e.g. state/offset=41)")
        try:
            validate_path(key)
        except GuestFault as exc:
            raise ConfigError(f"--workspace {key[:80]!r}: {exc}") from None
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise ConfigError(f"--workspace {key!r}: value larger than {MAX_VALUE_BYTES} bytes")
        out[key] = value
    return out


def _read_input(value: str | None) -> str | None:
    """``--input``: JSON text, or ``@FILE`` / ``@-`` (stdin), at most :data:`MAX_INPUT_BYTES`."""
    if value is None or not value.startswith("@"):
        return value
    source = value[1:]
    if source == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"--input {value}: file not found")
        with path.open("rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ConfigError(f"--input {value}: larger than {MAX_INPUT_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--input {value}: not UTF-8 text") from None


def _resolve_target(config: HostConfig, target: str, caps: Path | None) -> tuple[Path, Path]:
    """The component and capabilities file for ``target`` (a .wasm path or an installed channel's name)."""
    path = Path(target)
    if not path.exists() and NAME_RE.match(target):
        installed = config.channels_dir / f"{target}.wasm"
        if not installed.is_file():
            raise ConfigError(f"{target}: neither a file nor a channel installed in {config.channels_dir}")
        return installed, caps or installed.with_name(f"{target}.capabilities.json")
    if caps is not None:
        return path, caps
    sibling = path.with_name(f"{path.name.removesuffix('.wasm')}.capabilities.json")
    if sibling.is_file():
        return path, sibling
    raise ConfigError(f"--capabilities is required: no {sibling.name} next to {path}")


def _services(stack: contextlib.ExitStack, config: HostConfig, caps: CapabilitiesFile, runtime: Runtime,
              secrets: SecretStore | None, seed: dict[str, str], offline: OfflineEgress | None) -> HostServices:
    from ..capabilities.egress import Egress
    from ..channels.channel import HostServices
    from ..runtime.instance import Sandbox

    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="airlock-invoke-")))
    pairing = stack.enter_context(PairingStore(scratch / "pairing.db"))
    egress: Egress | None = offline
    if egress is None and caps.capabilities.http is not None:
        egress = Egress(upstream_overrides=config.upstream_overrides, allow_private_hosts=config.allow_private_hosts)
        stack.callback(egress.close)
    return HostServices(
        sandbox=Sandbox(runtime, fastpath=config.fastpath, max_guest_list_bytes=config.max_guest_list_bytes),
        secret_lookup=secrets.get if secrets is not None else (lambda _n: None),
        pairing=pairing, durable=_SeedWorkspace(seed), egress=egress, memory_limit_bytes=config.memory_limit_bytes,
        fuel_per_callback=config.fuel_per_callback,
    )


def _run_invoke(
    config: HostConfig, wasm: Path, caps: CapabilitiesFile, callback: str, request: dict[str, Any], call: Call, *,
    seed: dict[str, str], after_start: bool, offline: OfflineEgress | None,
) -> dict[str, Any]:
    """Load the component, optionally run on-start, run ``call``; the redacted report document."""
    from ..channels.channel import Channel

    with contextlib.ExitStack() as stack:
        runtime = stack.enter_context(runtime_for(config))
        loaded = load_component(runtime, wasm)
        secrets = open_secrets(config, create=False)
        channel = Channel(caps, loaded, _services(stack, config, caps, runtime, secrets, seed, offline))
        started, start_request = None, {"config": caps.config}
        if after_start:
            started = channel.start(json.dumps(caps.config))
        if started is not None and not started.ok:
            doc = report.invoke_doc(channel, started, start_request)
            doc["not_run"] = callback  # on-start failed, so the callback asked for did not run
        else:
            doc = report.invoke_doc(channel, call(channel), request)
            if started is not None:
                doc["after_start"] = report.invoke_doc(channel, started, start_request)
        doc["workspace"]["seeded"] = sorted(seed)
        if offline is not None:
            doc["offline"] = {"requests": [r.as_dict() for r in offline.requests]}
        redacted: dict[str, Any] = report.redact(doc, _secret_values(caps, secrets))
        return redacted


@app.command()
@friendly_errors
def invoke(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        metavar="WASM|CHANNEL", help="A component (.wasm), or the name of an installed channel.")],
    callback: Annotated[str, typer.Argument(help=f"One of: {', '.join(CALLBACKS)}.")],
    capabilities: Annotated[Path | None, typer.Option("--capabilities", "-c", help=(
        "Its capabilities file. (default: the installed one, or NAME.capabilities.json beside the .wasm)"))] = None,
    input_json: Annotated[str | None, typer.Option("--input", metavar="JSON|@FILE", help=(
        "JSON input, or @FILE to read it from a file (@- for stdin). on-start: the config object (default: "
        'the capabilities file\'s config); on-http-request: {"method","path","headers","query","body",'
        '"secret_validated"}; on-respond/on-broadcast: {"content","metadata","user_id","thread_id"}; '
        'on-status: {"status","message","metadata"}.'))] = None,
    workspace: Annotated[list[str] | None, typer.Option(
        "--workspace", metavar="KEY=VALUE", help="Seed the temporary workspace. Repeatable.")] = None,
    after_start: Annotated[bool, typer.Option(
        "--after-start", help="Run on-start with the capabilities file's config first (its report included).",
    )] = False,
    offline: Annotated[Path | None, typer.Option(
        "--offline", metavar="FILE", help="Answer every http-request from this file of canned responses; "
        "nothing leaves the machine.")] = None,
    as_json: JsonOption = False,
    upstream: Annotated[list[str] | None, typer.Option(
        metavar="HOST=URL", help="Send the channel's traffic for HOST to URL instead. Repeatable.")] = None,
) -> None:
    """Run ONE callback in a fresh sandbox and report every host call it made.

    The server's limits apply (memory, fuel, the channel's callback timeout). Secrets come from the
    home's store, so credential injection works (values are redacted from the report); the workspace
    and pairing store are temporary, so nothing is persisted. Exit status 2 if the callback (or, with
    --after-start, on-start) failed.
    """
    setup_logging(logging.WARNING, quiet=QUIETABLE)
    if offline is not None and upstream:
        raise ConfigError("--offline and --upstream cannot be combined (offline, nothing is sent anywhere)")
    if after_start and callback == "on-start":
        raise ConfigError("--after-start runs on-start first; the callback is already on-start")
    config = config_from(ctx, upstream_overrides=parse_upstreams(upstream))
    seed = _parse_workspace(workspace)
    wasm, caps_path = _resolve_target(config, target, capabilities)
    caps = load_capabilities(caps_path, lenient=config.lenient_capabilities)
    request, call = build_call(callback, _read_input(input_json), caps)
    canned = OfflineEgress(load_canned(offline)) if offline is not None else None
    doc = _run_invoke(config, wasm, caps, callback, request, call, seed=seed, after_start=after_start,
                      offline=canned)
    show_doc(doc, as_json=as_json, render=report.render_invoke)
    if not doc["ok"]:
        raise typer.Exit(2)
