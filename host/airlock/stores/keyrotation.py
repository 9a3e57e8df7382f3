"""``airlock secrets rotate-key``: re-encrypt every secret under a new master key, so that a process killed at any
point leaves the store openable with the old key or the new one.

Two files change, and no file system renames two files at once; so the key file carries both keys in between
(``stores.masterkey``: new first, old second; the store opens with whichever decrypts its key check). Each
step replaces one file atomically (``write_private_file``):

1. every secret is decrypted with the current key (a value that does not decrypt stops here, nothing written);
2. ``master.key`` <- new key + old key: the store, still under the old key, opens with the old one;
3. ``secrets.json`` <- every secret under the new key: it opens with the new one;
4. ``master.key`` <- new key alone. Running ``rotate-key`` again after a kill finishes nothing half-way: it starts
   over from whichever key works.

A key from ``$AIRLOCK_MASTER_KEY`` cannot be changed by Airlock: the new key is then read from
``$AIRLOCK_NEW_MASTER_KEY`` and only the store is rewritten (one atomic step); the operator sets
``AIRLOCK_MASTER_KEY`` to it afterwards. A running gateway holds the old key in memory, so the rotation takes the
home's serve lock (``stores.homelock``) and refuses while a gateway runs.

Test hook: ``_AIRLOCK_ROTATE_PAUSE=<step>`` (``verified``, ``both-keys``, ``store-rewritten``) stops after that
step and waits to be killed (``tests/stores/test_key_rotation.py`` kills it with SIGKILL there).
"""

from __future__ import annotations

import os
import secrets as _secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import SecretStoreError
from .homelock import HomeBusy, HomeLock
from .masterkey import KEY_ENV_VAR, KEY_FILENAME, parse_master_key, read_key_file, write_private_file
from .secrets import STORE_FILENAME, SecretStore

__all__ = ["NEW_KEY_ENV_VAR", "PAUSE_ENV_VAR", "Rotation", "rotate_master_key"]

#: Where the new key comes from when the current one is ``$AIRLOCK_MASTER_KEY``.
NEW_KEY_ENV_VAR = "AIRLOCK_NEW_MASTER_KEY"
#: Test hook (module docstring): the step after which to stop and wait.
PAUSE_ENV_VAR = "_AIRLOCK_ROTATE_PAUSE"


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: how many secrets were re-encrypted, and where the new key is (a file, or the
    variable the operator must now copy into ``AIRLOCK_MASTER_KEY``)."""

    secrets: int
    key_file: Path | None
    from_env: bool


def _pause(step: str) -> None:
    if os.environ.get(PAUSE_ENV_VAR) == step:
        print(f"rotate-key: paused after {step}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def rotate_master_key(home: Path) -> Rotation:
    """Re-encrypt ``home``'s secret store under a new master key (module docstring for the steps).

    Raises:
        SecretStoreError: there is no store; the key comes from ``$AIRLOCK_MASTER_KEY`` and no valid, different
            ``$AIRLOCK_NEW_MASTER_KEY`` is set (the message says what to do); a gateway runs on the home; a
            secret does not decrypt. Nothing on disk has changed then.
    """
    store_path, key_path = home / STORE_FILENAME, home / KEY_FILENAME
    if not store_path.is_file():
        raise SecretStoreError(f"no secret store in {home}: nothing to rotate (the first secret stored creates "
                               "the master key)")
    env_key = os.environ.get(KEY_ENV_VAR)
    if env_key:
        new_text = os.environ.get(NEW_KEY_ENV_VAR)
        if not new_text:
            raise SecretStoreError(
                f"the master key comes from ${KEY_ENV_VAR}, which airlock cannot change: run "
                f"{NEW_KEY_ENV_VAR}=<new key> airlock secrets rotate-key (a key: python -c \"import secrets; "
                f"print(secrets.token_hex(32))\"), then set {KEY_ENV_VAR} to the new key wherever airlock runs")
        new_key = parse_master_key(new_text)
        if new_key == parse_master_key(env_key):
            raise SecretStoreError(f"${NEW_KEY_ENV_VAR} is the current key; choose a new one")
    try:
        with HomeLock(home):
            return _rotate(home, store_path, key_path, new_key if env_key else None)
    except HomeBusy as busy:
        who = f"pid {busy.pid}" if busy.pid else "another process"
        raise SecretStoreError(f"a gateway ({who}) is running on {home} with the current key in memory: stop it, "
                               "then rotate the key") from None


def _rotate(home: Path, store_path: Path, key_path: Path, env_new_key: bytes | None) -> Rotation:
    store = SecretStore.open(home)  # the current key (either one during an interrupted rotation)
    count = len(store.names())
    if env_new_key is not None:
        data = store.reencrypted(env_new_key)  # decrypts every value first: a bad one stops here
        _pause("verified")
        write_private_file(store_path, data)
        _pause("store-rewritten")
        return Rotation(secrets=count, key_file=None, from_env=True)
    old_key = next(k for k in read_key_file(key_path) if _opens(store_path, k))
    new_key = _secrets.token_bytes(32)
    data = store.reencrypted(new_key)
    _pause("verified")
    write_private_file(key_path, f"{new_key.hex()}\n{old_key.hex()}\n".encode("ascii"))
    _pause("both-keys")
    write_private_file(store_path, data)
    _pause("store-rewritten")
    write_private_file(key_path, f"{new_key.hex()}\n".encode("ascii"))
    return Rotation(secrets=count, key_file=key_path, from_env=False)


def _opens(store_path: Path, key: bytes) -> bool:
    try:
        SecretStore(store_path, key)
    except SecretStoreError:
        return False
    return True
