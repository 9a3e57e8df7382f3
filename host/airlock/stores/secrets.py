"""The encrypted secret store: one file of ``name -> AES-256-GCM ciphertext``.

File format (JSON, mode 0600, replaced atomically on every write)::

    {"format": 1,
     "check": "<b64 nonce||ciphertext of a fixed marker, AD = b'airlock:key-check'>",
     "secrets": {"<name>": "<urlsafe b64 of 12-byte nonce || ciphertext+16-byte tag>"}}

Each value is encrypted with a fresh random 12-byte nonce and the secret's *name* as associated data, so
a ciphertext moved to another name fails to decrypt. ``check`` lets a wrong master key be detected when
the store is opened, even before any secret is read.

The 32-byte master key comes from ``AIRLOCK_MASTER_KEY`` (64 hex chars or urlsafe base64 of 32 bytes) or
from ``<home>/master.key`` (64 hex chars), created on first use with mode 0600, but never while the store
file exists (a new key could not decrypt it: opening the store says the key file is missing instead).

Error messages never contain secret values.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import secrets as _secrets
import string
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from airlock.errors import SecretStoreError

from .files import private_dir
from .masterkey import (
    KEY_ENV_VAR,
    KEY_FILENAME,
    create_key_file,
    parse_master_key,
    read_key_file,
    write_private_file,
)

__all__ = [
    "GENERATE_ALPHABET",
    "KEY_ENV_VAR",
    "KEY_FILENAME",
    "MAX_SECRET_BYTES",
    "SECRET_NAME_RE",
    "STORED_NAME_RE",
    "STORE_FILENAME",
    "SecretStore",
    "generate_value",
    "is_valid_secret_name",
    "is_valid_stored_name",
    "missing_key_message",
    "parse_master_key",
]

#: Store file name inside the data directory.
STORE_FILENAME = "secrets.json"
#: Valid secret names (as capabilities files and guests say them).
SECRET_NAME_RE = re.compile(r"^[a-z0-9_]{1,64}$")
#: Valid names in the store: a secret name, or ``<instance>/<secret name>`` for a second account of a platform
#: (``channels.services.namespaced_lookup``; the instance part is a channel name).
STORED_NAME_RE = re.compile(r"^(?:[a-z0-9][a-z0-9_-]{0,62}/)?[a-z0-9_]{1,64}$")
#: Largest secret value accepted by :meth:`SecretStore.set`, in UTF-8 bytes.
MAX_SECRET_BYTES = 64 * 1024

_FORMAT = 1
_NONCE_BYTES = 12
_CHECK_AD = b"airlock:key-check"
_CHECK_PLAINTEXT = b"airlock secret store v1"


def is_valid_secret_name(name: str) -> bool:
    """True if ``name`` matches ``^[a-z0-9_]{1,64}$`` in full (``fullmatch``: ``$`` alone would also admit a
    trailing newline). False, never an exception, for anything else, including a non-string."""
    return isinstance(name, str) and SECRET_NAME_RE.fullmatch(name) is not None


def is_valid_stored_name(name: str) -> bool:
    """True if ``name`` is a secret name, optionally in an instance's namespace (``support-bot/telegram_bot_token``).
    Never for names a guest supplies: those are checked with :func:`is_valid_secret_name`."""
    return isinstance(name, str) and STORED_NAME_RE.fullmatch(name) is not None
#: Characters of a generated secret value (``setup.required_secrets[].auto_generate``).
GENERATE_ALPHABET = string.ascii_letters + string.digits


def generate_value(length: int) -> str:
    """A random secret value of ``length`` characters from :data:`GENERATE_ALPHABET` (``secrets.choice``)."""
    return "".join(_secrets.choice(GENERATE_ALPHABET) for _ in range(length))


def _check_name(name: str) -> None:
    if not is_valid_stored_name(name):
        shown = repr(name)[:80] if isinstance(name, str) else type(name).__name__
        raise SecretStoreError(f"invalid secret name {shown}: names must match [INSTANCE/]NAME, NAME "
                               f"^[a-z0-9_]{{1,64}}$")


def missing_key_message(key_path: Path, store_path: Path) -> str:
    """The one line said when ``store_path`` exists but its master key file ``key_path`` does not."""
    return (f"master key file {key_path} is missing, but {store_path} holds secrets encrypted with it: restore "
            f"{key_path.name} from a backup (mode 0600), or set {KEY_ENV_VAR} to the key (64 hex characters); "
            f"Airlock does not create a new key while encrypted secrets exist")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.urlsafe_b64decode(text.encode("ascii"))


class SecretStore:
    """A thread-safe, file-backed, AES-256-GCM encrypted map of secret name -> string value.

    Names match ``^[a-z0-9_]{1,64}$``; values are strings of at most :data:`MAX_SECRET_BYTES` UTF-8 bytes.
    Every call re-reads the file if it changed on disk (another process, e.g. the CLI, may have written
    it), so a running host sees ``airlock secrets set`` at once. Writers in several processes at once are
    not coordinated (last writer wins); the host and the CLI rarely write together.

    Args:
        path: the store file (created on first write; its directory must exist).
        key: the 32-byte master key.

    Raises:
        SecretStoreError: ``key`` is not 32 bytes; the file exists but is corrupt, unreadable, or was
            written with another key.
    """

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != 32:
            raise SecretStoreError("master key must be exactly 32 bytes")
        self._path = Path(path)
        self._aead = AESGCM(key)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._data: dict[str, str] = {}
        self._check: str | None = None
        with self._lock:
            self._load()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, home: Path) -> SecretStore:
        """Open ``home/secrets.json`` with the master key from the environment or ``home/master.key``.

        ``home`` is created (mode 0700) if missing. The key comes from ``$AIRLOCK_MASTER_KEY`` if set,
        else from ``home/master.key``, which is generated (32 random bytes as hex, mode 0600) if absent,
        but only while ``home/secrets.json`` does not exist.

        Raises:
            SecretStoreError: the env key is malformed; the key file is missing while the store exists (the
                message says how to restore it or set ``$AIRLOCK_MASTER_KEY``); the key file is readable by
                group/others (the message gives the ``chmod`` fix), unreadable or malformed; or the store
                does not open with this key.
        """
        home = Path(home)
        try:
            private_dir(home)
        except OSError as e:
            raise SecretStoreError(f"cannot create data directory {home}: {e.strerror or e}") from None
        env = os.environ.get(KEY_ENV_VAR)
        if env:
            return cls(home / STORE_FILENAME, parse_master_key(env))
        key_path, store_path = home / KEY_FILENAME, home / STORE_FILENAME
        if not key_path.exists() and store_path.exists():
            # A fresh key could never decrypt the store, and the next command would blame "a wrong master key
            # or a tampered store" (issue 13, defect 11): refuse, and say how to get the key back.
            raise SecretStoreError(missing_key_message(key_path, store_path))
        return cls._open_with_key_file(store_path, key_path)

    @classmethod
    def _open_with_key_file(cls, store_path: Path, key_path: Path) -> SecretStore:
        """Open with the key file's key, creating the file if absent; during a rotation (two keys in the file,
        ``stores.keyrotation``) with whichever key the store was written with."""
        created = create_key_file(key_path)
        keys = [created] if created is not None else read_key_file(key_path)
        for key in keys[:-1]:
            with contextlib.suppress(SecretStoreError):
                return cls(store_path, key)
        return cls(store_path, keys[-1])

    # ------------------------------------------------------------------ file I/O (lock held)

    def _load(self) -> None:
        """Refresh the in-memory copy if the file changed. Caller holds the lock."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._stamp, self._data, self._check = None, {}, None
            return
        except OSError as e:
            raise SecretStoreError(f"cannot read secret store {self._path}: {e.strerror or e}") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            doc = json.loads(self._path.read_bytes())
        except OSError as e:
            raise SecretStoreError(f"cannot read secret store {self._path}: {e.strerror or e}") from None
        except ValueError:
            raise SecretStoreError(f"secret store {self._path} is corrupt (not JSON)") from None
        if (
            not isinstance(doc, dict)
            or doc.get("format") != _FORMAT
            or not isinstance(doc.get("secrets"), dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc["secrets"].items())
        ):
            raise SecretStoreError(f"secret store {self._path} is corrupt or of an unknown format")
        check = doc.get("check")
        if check is not None:
            if not isinstance(check, str):
                raise SecretStoreError(f"secret store {self._path} is corrupt (bad key check)")
            self._decrypt(check, _CHECK_AD, what="the key check")
        self._data = dict(doc["secrets"])
        self._check = check
        self._stamp = stamp

    def _save(self) -> None:
        """Write the in-memory copy. Caller holds the lock."""
        if self._check is None:
            self._check = self._encrypt(_CHECK_PLAINTEXT, _CHECK_AD)
        doc = {"format": _FORMAT, "check": self._check, "secrets": dict(sorted(self._data.items()))}
        try:
            write_private_file(self._path, json.dumps(doc, indent=1).encode("utf-8"))
            st = os.stat(self._path)
        except OSError as e:
            self._stamp = None  # force a reload next time
            raise SecretStoreError(f"cannot write secret store {self._path}: {e.strerror or e}") from None
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _encrypt(self, plaintext: bytes, ad: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        return _b64(nonce + self._aead.encrypt(nonce, plaintext, ad))

    def _decrypt(self, blob: str, ad: bytes, what: str) -> bytes:
        try:
            raw = _unb64(blob)
        except (binascii.Error, ValueError):
            raise SecretStoreError(f"secret store {self._path}: {what} is corrupt") from None
        if len(raw) < _NONCE_BYTES + 16:
            raise SecretStoreError(f"secret store {self._path}: {what} is corrupt")
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], ad)
        except InvalidTag:
            raise SecretStoreError(
                f"cannot decrypt {what} in {self._path}: wrong master key or tampered store"
            ) from None

    # ------------------------------------------------------------------ API

    @property
    def path(self) -> Path:
        """The store file."""
        return self._path

    def signature(self) -> tuple[int, int, int]:
        """Changes when the stored values may have changed (the log redactor re-reads the values then): the
        file's modification time, size and inode."""
        try:
            st = os.stat(self._path)
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any previous value; the file is rewritten atomically.

        Raises:
            SecretStoreError: invalid name, value too large (> :data:`MAX_SECRET_BYTES`), or I/O failure.
        """
        _check_name(name)
        if not isinstance(value, str):
            raise SecretStoreError(f"secret {name!r}: value must be a string")
        plaintext = value.encode("utf-8")
        if len(plaintext) > MAX_SECRET_BYTES:
            raise SecretStoreError(f"secret {name!r}: value larger than {MAX_SECRET_BYTES} bytes")
        with self._lock:
            self._load()
            self._data[name] = self._encrypt(plaintext, name.encode("ascii"))
            self._save()

    def get(self, name: str) -> str | None:
        """Return the value of ``name``, or ``None`` if it is not stored.

        Raises:
            SecretStoreError: invalid name, unreadable store, or the value does not decrypt.
        """
        _check_name(name)
        with self._lock:
            self._load()
            blob = self._data.get(name)
            if blob is None:
                return None
            plaintext = self._decrypt(blob, name.encode("ascii"), what=f"secret {name!r}")
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretStoreError(f"secret {name!r} is not valid UTF-8") from None

    def exists(self, name: str) -> bool:
        """True if ``name`` is stored (without decrypting it).

        Raises:
            SecretStoreError: invalid name or unreadable store.
        """
        _check_name(name)
        with self._lock:
            self._load()
            return name in self._data

    def names(self) -> list[str]:
        """All stored names, sorted.

        Raises:
            SecretStoreError: unreadable store.
        """
        with self._lock:
            self._load()
            return sorted(self._data)

    def reencrypted(self, key: bytes) -> bytes:
        """The store file's content with every secret (and the key check) encrypted under ``key`` instead: what
        ``stores.keyrotation`` writes in place of the file. Every value is decrypted first.

        Raises:
            SecretStoreError: ``key`` is not 32 bytes, or a value does not decrypt with the current key.
        """
        if len(key) != 32:
            raise SecretStoreError("master key must be exactly 32 bytes")
        with self._lock:
            self._load()
            plain = {n: self._decrypt(b, n.encode("ascii"), what=f"secret {n!r}") for n, b in self._data.items()}
        other = SecretStore.__new__(SecretStore)
        other._aead = AESGCM(key)
        secrets = {n: other._encrypt(v, n.encode("ascii")) for n, v in sorted(plain.items())}
        doc = {"format": _FORMAT, "check": other._encrypt(_CHECK_PLAINTEXT, _CHECK_AD), "secrets": secrets}
        return json.dumps(doc, indent=1).encode("utf-8")

    def remove(self, name: str) -> bool:
        """Delete ``name``; True if it existed (the file is rewritten only then).

        Raises:
            SecretStoreError: invalid name or I/O failure.
        """
        _check_name(name)
        with self._lock:
            self._load()
            if name not in self._data:
                return False
            del self._data[name]
            self._save()
            return True
