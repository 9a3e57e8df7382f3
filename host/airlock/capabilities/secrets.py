"""The ``secret-exists`` host function: true only for a name the channel may use AND a stored value.

A guest never receives a secret value; names are matched against ``capabilities.secrets.allowed_names``
(exact or ``prefix*``) and looked up in the encrypted secret store.
"""

from __future__ import annotations

from collections.abc import Callable


class SecretsCapability:
    def __init__(self, allowed: Callable[[str], bool], lookup: Callable[[str], str | None]) -> None:
        self._allowed = allowed
        self._lookup = lookup

    def exists(self, name: str) -> bool:
        if not name or len(name) > 128 or not self._allowed(name):
            return False
        return self._lookup(name) is not None
