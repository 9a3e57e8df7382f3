"""The ``secret-exists`` host function, and the guard on every secret name a guest supplies.

A guest never receives a secret value. It can name secrets in two places: ``secret-exists(name)`` and
``{UPPER_SNAKE}`` placeholders in an ``http-request`` (``capabilities.http``). Either way the name is
guest input: it is checked against the secret store's name rule (``^[a-z0-9_]{1,64}$``,
``stores.secrets.SECRET_NAME_RE``) *before* the channel's ``capabilities.secrets.allowed_names`` (exact or
``prefix*``; a glob such as ``slack_*`` admits ``slack_BAD-Name!`` by prefix alone) and before the store, so a
hostile name is a plain "no" (``false``, or the http capability's WIT error) and never reaches the store,
whose own check would raise ``SecretStoreError`` (a host bug, issue 13 defect 3).
"""

from __future__ import annotations

from collections.abc import Callable

from ..stores.secrets import is_valid_secret_name

__all__ = ["SecretsCapability", "guest_safe_lookup"]

Lookup = Callable[[str], str | None]


def guest_safe_lookup(lookup: Lookup) -> Lookup:
    """``lookup`` (name -> value or ``None``) that answers ``None`` for a malformed name without calling it.

    For lookups whose name may come from a guest (the http capability's placeholders and credentials)."""

    def checked(name: str) -> str | None:
        return lookup(name) if is_valid_secret_name(name) else None

    return checked


class SecretsCapability:
    """One channel's view of the secret store: which names it may ask about, and whether they are stored.

    Args:
        allowed: ``capabilities.secrets.allowed_names`` as a predicate (``config.SecretsCapability.allows``).
        lookup: the store's ``name -> value | None`` (``SecretStore.get``); called only for well-formed,
            allowed names.
    """

    def __init__(self, allowed: Callable[[str], bool], lookup: Lookup) -> None:
        self._allowed = allowed
        self._lookup = lookup

    def allows(self, name: str) -> bool:
        """True if ``name`` is a well-formed secret name (1-64 of ``a-z0-9_``) that ``allowed_names`` admit."""
        return is_valid_secret_name(name) and self._allowed(name)

    def exists(self, name: str) -> bool:
        """``secret-exists``: true only for an allowed, well-formed name with a stored value; never raises
        for a name the guest chose."""
        return self.allows(name) and self._lookup(name) is not None
