"""Choose and build a channel's webhook verifier from its capabilities file's ``channel.webhook`` block."""

from __future__ import annotations

import logging

from ...manifest import CapabilitiesFile, WebhookSpec
from .base import MAX_REPLAY_ENTRIES, ReplayCache, ReplayFactory, ReplayGuard, SecretLookup, Verifier
from .discord import DiscordVerifier
from .feishu import FeishuVerifier
from .meta import MetaVerifier
from .simple import HeaderVerifier, Unverified
from .slack import SlackVerifier
from .wecom import WecomVerifier

log = logging.getLogger("airlock.inbound")


def verifier_for(caps: CapabilitiesFile, lookup: SecretLookup, replay: ReplayFactory | None = None) -> Verifier:
    """The verifier for a whole capabilities file: its ``channel.webhook`` block, with the secrets that
    ``setup.required_secrets`` marks optional (see :func:`build_verifier`)."""
    optional = frozenset(s.name for s in caps.setup.required_secrets if s.optional) if caps.setup else frozenset()
    return build_verifier(caps.capabilities.channel.webhook, lookup, channel=caps.name, optional=optional,
                          replay=replay)


def build_verifier(
    spec: WebhookSpec | None, lookup: SecretLookup, *, channel: str, replay_max: int = MAX_REPLAY_ENTRIES,
    optional: frozenset[str] = frozenset(), replay: ReplayFactory | None = None,
) -> Verifier:
    """The verifier for ``spec.effective_scheme`` (declared ``scheme`` or inferred, see :class:`WebhookSpec`).

    ``lookup`` is called on every request, so secrets stored later take effect without a restart.
    ``replay_max`` bounds the Slack/Discord replay cache (entries per channel); ``replay`` gives the channel's
    replay guard instead (a cache shared by every process on the state database, ``state.replay``).
    ``optional`` names secrets the file marks optional: only the Feishu Encrypt Key (token-only checks while it is
    not stored) and the WeCom receive id (no Corp ID check while it is not stored) use it; every other secret a
    check needs refuses requests while it is missing.
    No block, no scheme, or ``managed_by_host: false`` gives :class:`Unverified` (secret-validated = false).
    Logs (``airlock.inbound``) which check applies, and a warning when Meta POSTs cannot be verified.
    Never raises for a validated spec (the loader already checked the keys an explicit scheme needs).
    """
    scheme = spec.effective_scheme if spec is not None else None
    if spec is None or scheme is None:
        return Unverified(channel, lookup, declared=False)
    if not spec.managed_by_host:
        log.info("channel %s: webhook %s check left to the guest (managed_by_host false; secret-validated=false)",
                 channel, scheme)
        return Unverified(channel, lookup, declared=True)
    guard = replay(channel) if replay is not None else ReplayCache(replay_max)
    verifier = _build(scheme, spec, lookup, channel, guard, optional)
    log.info("channel %s: webhooks verified by the host (%s)", channel, scheme)
    if isinstance(verifier, FeishuVerifier) and verifier.encrypt_key_optional:
        log.info("channel %s: while the optional %s is not stored, Feishu webhooks are checked by token only",
                 channel, verifier.encrypt_key_name)
    if isinstance(verifier, MetaVerifier) and not verifier.verifies_posts:
        log.warning("channel %s: webhook.app_secret_name is not set, so Meta POST signatures (X-Hub-Signature-256) "
                    "are NOT verified; POSTs reach the guest with secret-validated=false. Add app_secret_name to "
                    "the capabilities file and store the app secret.", channel)
    return verifier


def _build(
    scheme: str, spec: WebhookSpec, lookup: SecretLookup, channel: str, replay: ReplayGuard, optional: frozenset[str],
) -> Verifier:
    if scheme == "slack":
        return SlackVerifier(channel, lookup, secret_name=spec.hmac_secret_name or "",
                             replay=replay)
    if scheme == "discord":
        return DiscordVerifier(channel, lookup, key_name=spec.signature_key_secret_name or "",
                               replay=replay)
    if scheme == "meta":
        return MetaVerifier(channel, lookup, verify_token_name=spec.secret_name,
                            token_param=spec.verify_token_query_param, app_secret_name=spec.app_secret_name)
    if scheme == "feishu":
        key_name = spec.encrypt_key_secret_name
        return FeishuVerifier(channel, lookup, token_name=spec.verification_token_secret_name or spec.secret_name
                              or "", encrypt_key_name=key_name, encrypt_key_optional=key_name in optional)
    if scheme == "wecom":
        receive_id = spec.receive_id_secret_name
        return WecomVerifier(channel, lookup, token_name=spec.verification_token_secret_name or spec.secret_name or "",
                             aes_key_name=spec.encrypt_key_secret_name or "", receive_id_name=receive_id,
                             receive_id_optional=receive_id in optional)
    if scheme == "header":
        return HeaderVerifier(channel, lookup, header=spec.secret_header or "", secret_name=spec.secret_name or "")
    raise ValueError(f"unknown webhook scheme {scheme!r}")  # unreachable: WebhookSpec validates the name
