"""Configuration: the channel capabilities file and the host's own settings.

The capabilities file (``<name>.capabilities.json``, IronClaw v1 format, see
``shared/spec/capabilities-file.md``) is what the operator grants a channel. It is parsed into the
pydantic models below by :func:`load_capabilities` / :func:`parse_capabilities`:

* unknown keys never fail: each one is logged as a warning on the ``airlock.config`` logger, naming the
  file and its JSON path, and is dropped. A few sections are extension points whose extra keys are kept
  (in ``model_extra``) without a warning: ``setup``, ``capabilities.websocket`` and
  ``capabilities.channel.webhook``;
* wrong types, missing required keys and values outside their limits raise
  :class:`~airlock.errors.CapabilitiesError` whose message is one line:
  ``<file>: <json path>: <problem>``, e.g. ``x.json: $.capabilities.http.allowlist[0].host: ...``.
  Types are checked strictly: ``"30"`` is not an integer and ``true`` is not a number.

:class:`HostConfig` holds the host's settings (data directory, listen address, limits).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from airlock.errors import CapabilitiesError

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_CAPABILITIES_FILE_BYTES",
    "MIN_POLL_INTERVAL_MS",
    "WEBHOOK_SCHEMES",
    "AllowlistEntry",
    "AuthSpec",
    "AutoGenerate",
    "BasicLocation",
    "BearerLocation",
    "Capabilities",
    "CapabilitiesFile",
    "ChannelCapability",
    "CredentialLocation",
    "CredentialSpec",
    "EmitRateLimit",
    "HeaderLocation",
    "HostConfig",
    "HttpCapability",
    "QueryParamLocation",
    "RateLimit",
    "RequiredSecret",
    "SecretConfigMapping",
    "SecretsCapability",
    "SetupSpec",
    "UrlPathLocation",
    "WebhookSpec",
    "WebsocketCapability",
    "default_home",
    "load_capabilities",
    "parse_capabilities",
]

log = logging.getLogger("airlock.config")

#: Largest capabilities file the loader reads, in bytes (real ones are a few KiB).
MAX_CAPABILITIES_FILE_BYTES = 1024 * 1024

#: Default of :attr:`HostConfig.max_guest_list_bytes`: the largest ``list<u8>`` a host function takes from a
#: guest (2 MiB). Wasmtime itself refuses lists over 2,796,202 elements (its per-call "hostcall fuel" of
#: 128 MiB at 48 bytes per element), so a larger value changes nothing.
DEFAULT_MAX_GUEST_LIST_BYTES = 2 * 1024 * 1024

#: Production floor for ``channel.min_poll_interval_ms`` (30 s); only a test host may lower it
#: (:attr:`HostConfig.min_poll_interval_override_ms`).
MIN_POLL_INTERVAL_MS = 30_000

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
_SECRET_GLOB_RE = re.compile(r"^[a-z0-9_]{1,64}\*?$")
_METHOD_RE = re.compile(r"^[A-Z]{1,16}$")
_PLACEHOLDER_RE = re.compile(r"^\{[A-Z0-9_]{1,64}\}$")

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def _check_host(host: str) -> str:
    """Validate an allow-list host: non-empty, lowercase, DNS labels, optional leading ``*.`` only."""
    if not host:
        raise ValueError("host must not be empty")
    if host != host.lower():
        raise ValueError(f"host {host!r} must be lowercase")
    if not _HOST_RE.match(host):
        raise ValueError(
            f"host {host!r} is not a bare host name (no scheme, port or path; '*.' allowed only as a prefix)"
        )
    return host


def _upper_methods(methods: list[str] | None) -> list[str] | None:
    """Uppercase HTTP method names and check they are plain tokens (``GET``, ``POST``...)."""
    if methods is None:
        return None
    out: list[str] = []
    for m in methods:
        up = m.strip().upper()
        if not _METHOD_RE.match(up):
            raise ValueError(f"{m!r} is not an HTTP method name")
        out.append(up)
    return out


class _Model(BaseModel):
    """Base of the capabilities models: strict types, immutable, unknown keys warned about.

    Unknown keys are accepted at validation time (``extra="allow"``) so that the loader can name them with
    their JSON path afterwards; :func:`parse_capabilities` then warns and drops them unless the class sets
    ``_keeps_extra``.
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)
    _keeps_extra: ClassVar[bool] = False


class _ExtensibleModel(_Model):
    """A section whose extra keys are kept (readable via ``model_extra``) without a warning."""

    _keeps_extra: ClassVar[bool] = True


# --------------------------------------------------------------------------------------------------
# auth / setup
# --------------------------------------------------------------------------------------------------


class AuthSpec(_Model):
    """``auth``: the one main secret that setup UIs ask for first."""

    secret_name: str
    display_name: str | None = None
    instructions: str | None = None
    setup_url: str | None = None
    token_hint: str | None = None
    env_var: str | None = None


class AutoGenerate(_Model):
    """``auto_generate``: the host may generate the secret; ``length`` in characters (> 0)."""

    length: PositiveInt


class RequiredSecret(_Model):
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


class SecretConfigMapping(_Model):
    """One entry of ``setup.secret_config_mappings``: copy the stored secret ``secret_name`` into the config
    handed to ``on-start`` under ``config_key`` (IronClaw, ``src/channels/wasm/setup.rs``). Which entries the
    host honours, and for which components, is decided in ``airlock.channels.activation``."""

    config_key: str
    secret_name: str


class SetupSpec(_ExtensibleModel):
    """``setup``: secrets to ask for, an optional token check URL, a docs URL. Other keys are kept.

    ``validation_endpoint`` may contain ``{secret_name}`` placeholders. ``secret_config_mappings`` (see
    :class:`SecretConfigMapping`) names secrets a ``near:agent`` component gets in its start config.
    """

    required_secrets: list[RequiredSecret] = Field(default_factory=list)
    secret_config_mappings: list[SecretConfigMapping] = Field(default_factory=list)
    validation_endpoint: str | None = None
    setup_url: str | None = None


# --------------------------------------------------------------------------------------------------
# capabilities.http
# --------------------------------------------------------------------------------------------------


class AllowlistEntry(_Model):
    """One HTTPS destination: ``host`` (lowercase, optional leading ``*.``), a path prefix (starts with
    ``/``) and optionally the allowed methods (uppercased; ``None`` means any method)."""

    host: str
    path_prefix: str = "/"
    methods: list[str] | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return _check_host(v)

    @field_validator("path_prefix")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"path_prefix {v!r} must start with '/'")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str] | None) -> list[str] | None:
        return _upper_methods(v)


class BearerLocation(_Model):
    """Inject the secret as ``Authorization: Bearer <secret>``."""

    type: Literal["bearer"]


class BasicLocation(_Model):
    """Inject ``Authorization: Basic base64(username:secret)``."""

    type: Literal["basic"]
    username: str


class HeaderLocation(_Model):
    """Inject header ``name: <prefix><secret>``."""

    type: Literal["header"]
    name: str = Field(min_length=1)
    prefix: str = ""


class QueryParamLocation(_Model):
    """Inject the secret as query parameter ``name``."""

    type: Literal["query_param"]
    name: str = Field(min_length=1)


class UrlPathLocation(_Model):
    """Replace ``placeholder`` (``{UPPER_SNAKE}``) in the URL path with the secret."""

    type: Literal["url_path"]
    placeholder: str

    @field_validator("placeholder")
    @classmethod
    def _placeholder(cls, v: str) -> str:
        if not _PLACEHOLDER_RE.match(v):
            raise ValueError(f"placeholder {v!r} must look like '{{UPPER_SNAKE_NAME}}'")
        return v


CredentialLocation = Annotated[
    BearerLocation | BasicLocation | HeaderLocation | QueryParamLocation | UrlPathLocation,
    Field(discriminator="type"),
]


class CredentialSpec(_Model):
    """``credentials.<id>``: which secret is injected where, for which hosts (and optional path prefixes).

    ``host_patterns`` use the same syntax as allow-list hosts. When several specs match a request, the
    most specific one wins (decided by the HTTP layer, not here). ``optional`` means a missing secret is
    not an error.
    """

    secret_name: str = Field(min_length=1)
    location: CredentialLocation
    host_patterns: list[str] = Field(min_length=1)
    path_patterns: list[str] = Field(default_factory=list)
    optional: bool = False

    @field_validator("host_patterns")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [_check_host(h) for h in v]


class RateLimit(_Model):
    """Outbound HTTP rate limit, in requests per minute and per hour."""

    requests_per_minute: PositiveInt = 60
    requests_per_hour: PositiveInt = 1000


class HttpCapability(_Model):
    """``capabilities.http``: the HTTPS allow-list, credential injection and limits.

    Sizes are bytes (request 1 MiB, response 10 MiB by default); ``timeout_secs`` is seconds.
    """

    allowlist: list[AllowlistEntry] = Field(default_factory=list)
    credentials: dict[str, CredentialSpec] = Field(default_factory=dict)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    max_request_bytes: PositiveInt = 1_048_576
    max_response_bytes: PositiveInt = 10_485_760
    timeout_secs: PositiveInt = 30


# --------------------------------------------------------------------------------------------------
# capabilities.secrets / websocket / channel
# --------------------------------------------------------------------------------------------------


class SecretsCapability(_Model):
    """``capabilities.secrets``: names the guest may ask about: exact names or ``prefix*`` globs.

    Each entry matches ``^[a-z0-9_]{1,64}\\*?$`` (a bare ``*`` is rejected: it would grant every secret).
    """

    allowed_names: list[str] = Field(default_factory=list)

    @field_validator("allowed_names")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for n in v:
            if not _SECRET_GLOB_RE.match(n):
                raise ValueError(f"{n!r} is not a secret name or 'prefix*' glob (lowercase a-z, 0-9, _)")
        return v

    def allows(self, name: str) -> bool:
        """True if ``name`` equals an allowed name or starts with the prefix of a ``prefix*`` glob."""
        for pattern in self.allowed_names:
            if pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return True
            elif name == pattern:
                return True
        return False


class WebsocketCapability(_ExtensibleModel):
    """``capabilities.websocket``: a host-managed outbound WebSocket (``wss://`` only), run by
    ``airlock.channels.socket_runtime``.

    ``protocol``: ``"discord"`` (also inferred for ``wss://gateway.discord.gg`` with an ``identify`` block),
    ``"wecom_aibot"``, or absent for the generic driver; any other name is kept, but the channel stays
    inactive and ``airlock channels check`` refuses the file. A protocol's other keys are kept in ``model_extra``.
    ``bot_id_secret_name`` / ``bot_secret_name`` (``wecom_aibot``): the secrets holding the bot id and secret
    the host subscribes with.
    ``connect_on_start``: open the socket once the channel is active (false: never opened).
    ``identify_secret_name``: the secret the host needs before opening the socket; Discord sends it as the
    IDENTIFY token, the generic driver substitutes it for ``{UPPER_SNAKE_NAME}`` in ``identify``'s strings.
    ``identify``: the identify frame (keys starting with ``_`` are comments and never sent).
    ``heartbeat_interval_ms`` (ms): websocket-level ping interval of the generic driver (default 30000);
    Discord uses the interval its HELLO gives. ``max_missed_heartbeat_acks``: Discord heartbeats in a row
    without ACK before the connection counts as dead (default 1).
    """

    url: str
    connect_on_start: bool = False
    identify_secret_name: str | None = None
    identify: dict[str, Any] | None = None
    heartbeat_interval_ms: PositiveInt | None = None
    max_missed_heartbeat_acks: PositiveInt | None = None
    protocol: str | None = None
    bot_id_secret_name: str | None = None
    bot_secret_name: str | None = None

    @field_validator("url")
    @classmethod
    def _wss(cls, v: str) -> str:
        if not v.startswith("wss://"):
            raise ValueError(f"url {v!r} must start with 'wss://'")
        return v


class EmitRateLimit(_Model):
    """Inbound messages the channel may emit to the agent, per minute and per hour."""

    messages_per_minute: PositiveInt = 100
    messages_per_hour: PositiveInt = 5000


#: The host-side webhook verification schemes (``channel.webhook.scheme``); see ``airlock.inbound.verifiers``.
WEBHOOK_SCHEMES: tuple[str, ...] = ("header", "slack", "discord", "meta", "feishu", "wecom")

#: Keys an explicitly declared scheme needs: each inner tuple is "one of these keys".
_SCHEME_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "header": (("secret_header",), ("secret_name",)),
    "slack": (("hmac_secret_name",),),
    "discord": (("signature_key_secret_name",),),
    "meta": (("secret_name", "app_secret_name"),),
    "feishu": (("verification_token_secret_name", "secret_name"),),
    "wecom": (("verification_token_secret_name", "secret_name"), ("encrypt_key_secret_name",)),
}


class WebhookSpec(_ExtensibleModel):
    """``channel.webhook``: how the host authenticates inbound webhooks before the guest sees them.

    ``scheme`` (Airlock extension) is one of :data:`WEBHOOK_SCHEMES`; when absent it is inferred
    (:attr:`effective_scheme`): ``hmac_secret_name`` -> slack, ``signature_key_secret_name`` -> discord,
    ``verify_token_param`` or ``app_secret_name`` -> meta, ``verification_token_secret_name`` or
    ``encrypt_key_secret_name`` -> feishu, ``secret_header`` + ``secret_name`` -> header, else none.
    Keys per scheme (values are secret names in the host's store):

    * header: ``secret_header`` + ``secret_name``: a shared secret compared in constant time;
    * slack: ``hmac_secret_name``: the HMAC-SHA256 signing secret;
    * discord: ``signature_key_secret_name``: the application's Ed25519 public key (64 hex characters);
    * meta: ``secret_name`` (GET handshake verify token, read from query parameter ``verify_token_param``,
      default ``hub.verify_token``) and ``app_secret_name`` (HMAC-SHA256 app secret for POST signatures);
    * feishu: ``verification_token_secret_name`` (or ``secret_name``) and optional ``encrypt_key_secret_name``;
    * wecom (declared only, never inferred): ``verification_token_secret_name`` (or ``secret_name``: the callback
      Token), ``encrypt_key_secret_name`` (the EncodingAESKey) and optional ``receive_id_secret_name`` (the Corp ID).

    ``managed_by_host: false`` turns host verification off (the guest gets secret-validated = false).
    ``methods`` are uppercased (``None`` = any). Other keys are kept.

    Raises (through the loader): an unknown ``scheme``, or an explicit scheme without the keys it needs.
    """

    scheme: str | None = None
    secret_header: str | None = None
    secret_name: str | None = None
    signature_key_secret_name: str | None = None
    hmac_secret_name: str | None = None
    app_secret_name: str | None = None
    verification_token_secret_name: str | None = None
    encrypt_key_secret_name: str | None = None
    receive_id_secret_name: str | None = None
    managed_by_host: bool = True
    methods: list[str] | None = None
    verify_token_param: str | None = None

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and v not in WEBHOOK_SCHEMES:
            raise ValueError(f"unknown webhook scheme {v!r} (expected one of: {', '.join(WEBHOOK_SCHEMES)})")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str] | None) -> list[str] | None:
        return _upper_methods(v)

    @model_validator(mode="after")
    def _scheme_keys(self) -> WebhookSpec:
        for choices in _SCHEME_NEEDS.get(self.scheme or "", ()):
            if not any(getattr(self, key) for key in choices):
                raise ValueError(f"scheme {self.scheme!r} needs key {' or '.join(choices)}")
        return self

    @property
    def effective_scheme(self) -> str | None:
        """The declared ``scheme``, else the one inferred from the keys present (see the class doc), else None."""
        if self.scheme is not None:
            return self.scheme
        if self.hmac_secret_name:
            return "slack"
        if self.signature_key_secret_name:
            return "discord"
        if self.verify_token_param or self.app_secret_name:
            return "meta"
        if self.verification_token_secret_name or self.encrypt_key_secret_name:
            return "feishu"
        if self.secret_header and self.secret_name:
            return "header"
        return None

    @property
    def verify_token_query_param(self) -> str:
        """The Meta handshake's verify-token query parameter (``hub.verify_token`` unless overridden)."""
        return self.verify_token_param or "hub.verify_token"


class DedupeSpec(_Model):
    """``capabilities.channel.dedupe``: JSON pointers (RFC 6901) into the emitted metadata whose values form the
    platform message id (``messages.dedupe``); ``[]`` turns deduplication off. At most 8 pointers."""

    id_pointers: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("id_pointers")
    @classmethod
    def _pointers(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/") or len(p) > 256:
                raise ValueError(f"pointer {p!r} must start with '/' and be at most 256 characters")
        return v


class SendRateSpec(_Model):
    """``capabilities.channel.send_rate``: outbound messages per second for the whole channel and per chat, with
    bursts (``messages.ratelimit``; defaults per platform)."""

    per_second: float = Field(gt=0, le=10_000)
    burst: float = Field(default=1.0, ge=1, le=10_000)
    per_chat_per_second: float = Field(gt=0, le=10_000)
    chat_burst: float = Field(default=1.0, ge=1, le=10_000)


class ChannelCapability(_Model):
    """``capabilities.channel``: webhook paths, polling, workspace and emit limits.

    ``min_poll_interval_ms`` (ms) is what the file asks for; the host never polls faster than
    :data:`MIN_POLL_INTERVAL_MS` unless its own test setting says so. ``max_message_size`` is bytes,
    ``callback_timeout_secs`` seconds (1..600). ``allowed_paths`` start with ``/``.
    """

    allowed_paths: list[str] = Field(default_factory=list)
    allow_polling: bool = False
    min_poll_interval_ms: PositiveInt = MIN_POLL_INTERVAL_MS
    workspace_prefix: str | None = None
    durable_workspace_paths: list[str] = Field(default_factory=list)
    emit_rate_limit: EmitRateLimit = Field(default_factory=EmitRateLimit)
    max_message_size: PositiveInt = 65_536
    callback_timeout_secs: int = Field(default=30, ge=1, le=600)
    webhook: WebhookSpec | None = None
    dedupe: DedupeSpec | None = None
    send_rate: SendRateSpec | None = None

    def dedupe_pointers(self) -> list[str] | None:
        """The file's dedupe pointers, or None to use the channel's default (``messages.dedupe``)."""
        return self.dedupe.id_pointers if self.dedupe is not None else None

    @field_validator("allowed_paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"path {p!r} must start with '/'")
        return v


class Capabilities(_Model):
    """``capabilities``: everything the operator grants the channel."""

    http: HttpCapability | None = None
    secrets: SecretsCapability = Field(default_factory=SecretsCapability)
    channel: ChannelCapability = Field(default_factory=ChannelCapability)
    websocket: WebsocketCapability | None = None


DM_POLICIES = frozenset({"open", "allowlist", "pairing", "disabled"})
"""``config.dm_policy`` values: ``open`` admits every DM; ``allowlist`` and ``pairing`` admit the owner, ``allow_from``
and paired ids; ``disabled`` refuses every DM (group messages are left to the guest's mention rules)."""


class CapabilitiesFile(_Model):
    """A whole ``<name>.capabilities.json``.

    ``name`` matches ``^[a-z0-9][a-z0-9_-]{0,62}$``; ``config`` is free JSON handed to ``on-start`` (its keys
    ``owner_id``, ``dm_policy`` and ``allow_from`` have host-side meaning, interpreted elsewhere).
    """

    version: str
    wit_version: str
    type: Literal["channel"] = "channel"
    name: str
    description: str = ""
    auth: AuthSpec | None = None
    setup: SetupSpec | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"name {v!r} must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")
        return v

    @field_validator("config")
    @classmethod
    def _admission_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        """The keys the host itself enforces must have exact types: a string ``allow_from`` would otherwise be
        read character by character and admit one-character ids."""
        policy = v.get("dm_policy")
        if policy is not None and policy not in DM_POLICIES:
            raise ValueError(f"dm_policy {policy!r} must be one of {', '.join(sorted(DM_POLICIES))}")
        allow = v.get("allow_from")
        if allow is not None and not (
            isinstance(allow, list) and all(isinstance(x, str | int) and not isinstance(x, bool) for x in allow)
        ):
            raise ValueError("allow_from must be a list of user ids (strings or integers)")
        owner = v.get("owner_id")
        if owner is not None and (isinstance(owner, bool) or not isinstance(owner, str | int)):
            raise ValueError("owner_id must be a user id (string or integer) or null")
        return v


# --------------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------------


def _key_path(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _json_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn a pydantic error location into a JSON path, dropping discriminator tags.

    ``data`` is the raw JSON so that union tags pydantic inserts (``('location', 'header', 'name')``)
    can be told apart from real keys.
    """
    path = "$"
    cur: Any = data
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
            cur = cur[part] if isinstance(cur, list) and -len(cur) <= part < len(cur) else None
            continue
        if isinstance(cur, dict) and part not in cur and cur.get("type") == part and i + 1 < len(loc):
            continue  # a discriminated-union tag, not a key
        path = _key_path(path, part)
        cur = cur.get(part) if isinstance(cur, dict) else None
    return path


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _problem(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid value"))
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    if kind.endswith("_type") or kind in {"model_attributes_type", "dict_type", "list_type"}:
        msg = f"{msg} (got {_json_type(err.get('input'))})"
    return _one_line(msg)


def _walk_extras(model: BaseModel, path: str) -> Iterator[tuple[str, BaseModel]]:
    """Yield ``(json path, model)`` for ``model`` and every model nested in its declared fields."""
    yield path, model
    for field in type(model).model_fields:
        yield from _walk_value(getattr(model, field), _key_path(path, field))


def _walk_value(value: Any, path: str) -> Iterator[tuple[str, BaseModel]]:
    if isinstance(value, BaseModel):
        yield from _walk_extras(value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_value(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _walk_value(item, _key_path(path, str(k)))


def _drop_unknown_keys(doc: CapabilitiesFile, source: str) -> None:
    for path, model in _walk_extras(doc, "$"):
        extra = model.__pydantic_extra__
        if not extra or getattr(model, "_keeps_extra", False):
            continue
        for key in sorted(extra):
            log.warning("%s: %s: unknown key ignored", source, _key_path(path, key))
        extra.clear()


def parse_capabilities(data: bytes | str, source: str) -> CapabilitiesFile:
    """Parse and validate a capabilities file's text.

    ``data`` is UTF-8 JSON (a leading BOM is tolerated), at most :data:`MAX_CAPABILITIES_FILE_BYTES`.
    ``source`` names the file in messages (usually its path).

    Unknown keys are warned about on the ``airlock.config`` logger and dropped (see the module docstring).

    Raises:
        CapabilitiesError: invalid UTF-8, invalid JSON (message names line and column), a top level that
            is not an object, or a validation failure. The message is one line,
            ``<source>: <json path>: <problem>``; when several problems exist the first is reported and
            the count of the others is appended.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_CAPABILITIES_FILE_BYTES:
        raise CapabilitiesError(
            f"{source}: $: file is {len(raw)} bytes, larger than the {MAX_CAPABILITIES_FILE_BYTES} limit"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CapabilitiesError(f"{source}: $: not valid UTF-8 at byte {e.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise CapabilitiesError(
            f"{source}: line {e.lineno} column {e.colno}: invalid JSON: {_one_line(e.msg)}"
        ) from None
    if not isinstance(obj, dict):
        raise CapabilitiesError(f"{source}: $: expected a JSON object (got {_json_type(obj)})")
    try:
        doc = CapabilitiesFile.model_validate(obj)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = errors[0]
        msg = f"{source}: {_json_path(tuple(first['loc']), obj)}: {_problem(first)}"
        if len(errors) > 1:
            more = len(errors) - 1
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise CapabilitiesError(msg) from None
    _drop_unknown_keys(doc, source)
    return doc


def load_capabilities(path: Path) -> CapabilitiesFile:
    """Read and validate a capabilities file from disk (see :func:`parse_capabilities`).

    Logs a warning if the file name is not ``<name>.capabilities.json`` for the ``name`` inside.

    Raises:
        CapabilitiesError: the file cannot be read, or is too large, or is invalid (one-line message).
    """
    source = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CAPABILITIES_FILE_BYTES + 1)
    except OSError as e:
        raise CapabilitiesError(f"{source}: $: cannot read file: {e.strerror or e}") from None
    doc = parse_capabilities(raw, source)
    expected = f"{doc.name}.capabilities.json"
    if path.name != expected:
        log.warning("%s: $.name: file name does not match channel name (expected %s)", source, expected)
    return doc


# The host's settings live in host_config (imported last: it uses the helpers above).
from airlock.host_config import HostConfig, default_home  # noqa: E402
