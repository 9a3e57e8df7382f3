"""The ``auth`` and ``setup`` sections of a capabilities file: the secrets an operator is asked for."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from .base import ExtensibleModel, Model, PositiveInt

__all__ = ["AuthSpec", "AutoGenerate", "RequiredSecret", "SecretConfigMapping", "SetupSpec"]


class AuthSpec(Model):
    """``auth``: the one main secret that setup UIs ask for first."""

    secret_name: str
    display_name: str | None = None
    instructions: str | None = None
    setup_url: str | None = None
    token_hint: str | None = None
    env_var: str | None = None


class AutoGenerate(Model):
    """``auto_generate``: the host may generate the secret; ``length`` in characters (> 0)."""

    length: PositiveInt


class RequiredSecret(Model):
    """One entry of ``setup.required_secrets``.

    ``validation`` is a regular expression (Python ``re`` syntax) the value must match; it is compiled at
    load time and a bad pattern is a load error.
    """

    name: str
    prompt: str = ""
    validation: str | None = None
    optional: bool = False
    auto_generate: AutoGenerate | None = None

    @field_validator("validation")
    @classmethod
    def _compile(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"invalid regular expression: {e}") from None
        return v


class SecretConfigMapping(Model):
    """One entry of ``setup.secret_config_mappings``: copy the stored secret ``secret_name`` into the config
    handed to ``on-start`` under ``config_key`` (IronClaw, ``src/channels/wasm/setup.rs``). Which entries the
    host honours, and for which components, is decided in ``airlock.channels.activation``."""

    config_key: str
    secret_name: str


class SetupSpec(ExtensibleModel):
    """``setup``: secrets to ask for, an optional token check URL, a docs URL. Other keys are kept.

    ``validation_endpoint`` may contain ``{secret_name}`` placeholders. ``secret_config_mappings`` (see
    :class:`SecretConfigMapping`) names secrets a ``near:agent`` component gets in its start config.
    """

    required_secrets: list[RequiredSecret] = Field(default_factory=list)
    secret_config_mappings: list[SecretConfigMapping] = Field(default_factory=list)
    validation_endpoint: str | None = None
    setup_url: str | None = None
