"""Checks ``airlock channels install`` makes before it writes anything: the two arguments in the right order, a
component built for the world its capabilities file declares, and a component that asks for what the file grants.

The last one runs the component's ``on-start`` once in a throw-away sandbox (no secrets, no network: the same
offline egress as ``airlock invoke --offline``, with no canned answers; a scratch workspace). A component that asks
for webhook paths or polling, none of which the file grants, was given another channel's capabilities file (a
Slack component with the template's file asks for ``/webhook/slack``, which the file does not allow). When
``on-start`` fails without its secrets or network, nothing can be concluded and the install goes on with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from ..errors import ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile
from ..runtime.engine import SUPPORTED_WORLDS, LoadedComponent
from ..runtime.values import ChannelConfig

__all__ = ["check_argument_order", "check_fit", "check_world"]

log = logging.getLogger("airlock.cli")

_WASM_MAGIC = b"\0asm"
#: Loggers silenced while on-start runs as a dry run (the guest's log lines and the channel's notes).
QUIET_DURING_DRY_RUN = ("airlock.guest", "airlock.channel", "airlock.http", "airlock.emit")


def _kind(path: Path) -> str:
    """``"wasm"``, ``"json"`` or ``"other"`` from the first bytes of a readable file (``"other"`` if unreadable)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        return "other"
    if head.startswith(_WASM_MAGIC):
        return "wasm"
    return "json" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "other"


def check_argument_order(wasm: Path, caps: Path) -> None:
    """Raise when the component and capabilities file were given the other way round, or one is the wrong kind.

    Raises:
        ConfigError: one line saying which argument is which.
    """
    first, second = _kind(wasm), _kind(caps)
    usage = "airlock channels install COMPONENT.wasm NAME.capabilities.json"
    if first == "json" and second == "wasm":
        raise ConfigError(f"the arguments are swapped: the first is the component ({caps}), the second its "
                          f"capabilities file ({wasm}): {usage}")
    if first == "json":
        raise ConfigError(f"{wasm}: the first argument is the component (.wasm), but this is a JSON file: {usage}")
    if second == "wasm":
        raise ConfigError(f"{caps}: the second argument is the capabilities file, but this is a WebAssembly "
                          f"binary: {usage}")


def check_world(doc: CapabilitiesFile, caps: Path, loaded: LoadedComponent) -> None:
    """Raise when the file's ``wit_version`` is a version of another world than the component's.

    A version of the component's own world family (older, or one Airlock does not know) stays a warning
    (``channels.activation.wit_version_note``): IronClaw ships 0.3.0 files for 0.3.1 components.

    Raises:
        ConfigError: e.g. the file declares 0.3.0 (``near:agent``) and the component is ``airlock:channel@0.1.0``.
    """
    package = loaded.world.channel_interface.split("/", 1)[0]
    if _older_or_same(doc.wit_version.strip(), loaded.world.channel_interface.rsplit("@", 1)[-1]):
        return  # a version the component's own family had (0.2.0 for a near:agent 0.3.1 component): a warning
    versions: dict[str, set[str]] = {}
    for channel_interface in SUPPORTED_WORLDS.values():
        pkg, version = channel_interface.split("/", 1)[0], channel_interface.rsplit("@", 1)[1]
        versions.setdefault(version, set()).add(pkg)
    packages = versions.get(doc.wit_version.strip(), set())
    if packages and package not in packages:
        other = sorted(packages)[0]
        raise ConfigError(f"{caps}: $.wit_version: {doc.wit_version} is the {other} world, but the component "
                          f"({loaded.path}) is built for {loaded.world.name}: is this the capabilities file of "
                          f"another channel?")


def _older_or_same(declared: str, built: str) -> bool:
    """Whether ``declared`` (x.y.z) is ``built`` or an earlier version with the same major: version numbers of the
    two world families overlap (``airlock:channel`` 0.2.0, ``near:agent`` 0.2.x), so the component's own family wins."""
    def parse(v: str) -> tuple[int, ...] | None:
        parts = v.split(".")
        return tuple(int(p) for p in parts) if len(parts) == 3 and all(p.isdigit() for p in parts) else None

    d, b = parse(declared), parse(built)
    return d is not None and b is not None and d[0] == b[0] and d <= b


def check_fit(config: HostConfig, doc: CapabilitiesFile, caps: Path, wasm: Path) -> None:
    """Run ``on-start`` in a throw-away sandbox and raise when none of what it asks for is granted (module doc).

    Raises:
        ConfigError: the component asks for webhook paths / polling and the file grants none of them.
    """
    wanted = _dry_start(config, doc, wasm)
    if wanted is None:
        return
    paths = {e.path for e in wanted.http_endpoints}
    polls = wanted.poll is not None and wanted.poll.enabled
    allowed = set(doc.capabilities.channel.allowed_paths)
    if (not paths and not polls) or paths & allowed or (polls and doc.capabilities.channel.allow_polling):
        return
    asks = ", ".join([*sorted(paths), *(["polling"] if polls else [])])
    grants = ", ".join(sorted(allowed)) or "no webhook path"
    raise ConfigError(f"{caps}: the component ({wasm}) asks for {asks}, and this file grants none of it ("
                      f"$.capabilities.channel allows {grants}"
                      f"{'' if doc.capabilities.channel.allow_polling else ', no polling'}): is this the "
                      f"capabilities file of another channel?")


def _dry_start(config: HostConfig, doc: CapabilitiesFile, wasm: Path) -> ChannelConfig | None:
    from ..channels.channel import Channel
    from .common import load_component, runtime_for
    from .invoke import _services
    from .offline import OfflineEgress

    with contextlib.ExitStack() as stack:
        for name in QUIET_DURING_DRY_RUN:  # the guest's own complaints about missing secrets are not the point
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.CRITICAL)
        runtime = stack.enter_context(runtime_for(config))
        loaded = load_component(runtime, wasm)
        channel = Channel(doc, loaded, _services(stack, config, doc, runtime, None, {}, OfflineEgress([])))
        started = channel.start(json.dumps(doc.config))
    if not started.ok or not isinstance(started.value, ChannelConfig):
        log.warning("%s: on-start failed in a dry run without secrets or network (%s); cannot check that the "
                    "component fits its capabilities file", wasm, started.error)
        return None
    return started.value
