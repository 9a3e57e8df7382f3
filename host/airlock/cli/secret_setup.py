"""What installed channels' capabilities files say about a secret, for ``airlock secrets set``: the prompt, a hint,
the validation pattern, whether it may be generated (``setup.required_secrets``, ``auth``); and whether any
installed channel uses the name at all."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from ..channels.catalog import secret_name_for
from ..errors import ConfigError
from ..host_config import HostConfig
from ..manifest import CapabilitiesFile
from .common import installed_caps

__all__ = ["SecretSpec", "secret_spec"]


@dataclass
class SecretSpec:
    """Everything the installed channels declare about one secret name.

    ``channels``: the channels that name it (``required_secrets``, ``auth``, credentials, webhook or websocket
    keys); ``prompts``/``hints``: text to show before asking; ``patterns``: ``(channel, regex)`` the value must
    match; ``generate_length``: characters of an auto-generated value (the largest any channel asks for), if
    any channel allows it; ``known``: every secret name installed channels use (for "did you mean").
    """

    name: str
    channels: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    patterns: list[tuple[str, str]] = field(default_factory=list)
    generate_length: int | None = None
    known: set[str] = field(default_factory=set)

    def unused_warning(self) -> str | None:
        """The warning for a name no installed channel uses (with the closest used name), else ``None``."""
        if self.channels:
            return None
        close = difflib.get_close_matches(self.name, sorted(self.known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"no installed channel uses a secret named {self.name!r}{hint}; stored anyway"

    def check(self, value: str) -> None:
        """Raise :class:`ConfigError` (without the value) when a channel's validation pattern rejects ``value``."""
        for channel, pattern in self.patterns:
            if not re.search(pattern, value):
                raise ConfigError(f"the value for {self.name} does not match the pattern channel {channel!r} "
                                  f"requires ({pattern}); nothing stored")


def secret_spec(config: HostConfig, name: str) -> SecretSpec:
    """What the installed channels (read as the gateway reads them, operator settings applied) declare about secret
    ``name``, as stored: a channel installed ``--as INSTANCE`` names its secrets ``INSTANCE/<name>``."""
    spec = SecretSpec(name)
    for entry in installed_caps(config):
        if entry.caps is not None:
            _add(spec, entry.caps, entry.name)
    return spec


def _names_used(doc: CapabilitiesFile) -> set[str]:
    names = {s.name for s in doc.setup.required_secrets} if doc.setup else set()
    if doc.auth is not None:
        names.add(doc.auth.secret_name)
    http = doc.capabilities.http
    names.update(c.secret_name for c in (http.credentials.values() if http else []))
    hook, socket = doc.capabilities.channel.webhook, doc.capabilities.websocket
    for part in (hook, socket):
        if part is not None:
            names.update(v for k, v in part if k.endswith("secret_name") and isinstance(v, str))
    return names


def _add(spec: SecretSpec, doc: CapabilitiesFile, instance: str) -> None:
    def stored(secret: str) -> str:
        return secret_name_for(instance, doc.name, secret)

    used = {stored(n) for n in _names_used(doc)}
    spec.known |= used
    if spec.name not in used:
        return
    spec.channels.append(instance)
    if doc.auth is not None and stored(doc.auth.secret_name) == spec.name:
        spec.prompts += [t for t in (doc.auth.instructions,) if t]
        spec.hints += [t for t in (doc.auth.token_hint,) if t]
    for req in doc.setup.required_secrets if doc.setup else []:
        if stored(req.name) != spec.name:
            continue
        if req.prompt:
            spec.prompts.append(req.prompt)
        if req.validation:
            spec.patterns.append((instance, req.validation))
        if req.auto_generate is not None:
            spec.generate_length = max(spec.generate_length or 0, req.auto_generate.length)
