"""The ``capabilities.channel`` section of a capabilities file: webhooks, polling, workspace and emit limits."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from .base import ExtensibleModel, Model, PositiveInt, upper_methods

__all__ = [
    "MIN_POLL_INTERVAL_MS",
    "WEBHOOK_SCHEMES",
    "ChannelCapability",
    "DedupeSpec",
    "EmitRateLimit",
    "SendRateSpec",
    "WebhookSpec",
]

#: Production floor for ``channel.min_poll_interval_ms`` (30 s); only a test host may lower it
#: (:attr:`airlock.host_config.HostConfig.min_poll_interval_override_ms`).
MIN_POLL_INTERVAL_MS = 30_000


class EmitRateLimit(Model):
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


class WebhookSpec(ExtensibleModel):
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
    ``methods`` are uppercased (``None`` = any). Keys starting with ``x-`` are kept.

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
        return upper_methods(v)

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


class DedupeSpec(Model):
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


class SendRateSpec(Model):
    """``capabilities.channel.send_rate``: outbound messages per second for the whole channel and per chat, with
    bursts (``messages.ratelimit``; defaults per platform)."""

    per_second: float = Field(gt=0, le=10_000)
    burst: float = Field(default=1.0, ge=1, le=10_000)
    per_chat_per_second: float = Field(gt=0, le=10_000)
    chat_burst: float = Field(default=1.0, ge=1, le=10_000)


class ChannelCapability(Model):
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
