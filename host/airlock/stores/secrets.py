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
import stat
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from airlock.errors import SecretStoreError

from .files import private_dir

__all__ = [
    "KEY_ENV_VAR",
    "KEY_FILENAME",
    "MAX_SECRET_BYTES",
    "SECRET_NAME_RE",
    "STORED_NAME_RE",
    "STORE_FILENAME",
    "SecretStore",
    "is_valid_secret_name",
    "is_valid_stored_name",
    "missing_key_message",
    "parse_master_key",
]

#: Environment variable holding the master key (64 hex chars or urlsafe base64 of 32 bytes).
KEY_ENV_VAR = "AIRLOCK_MASTER_KEY"
#: Master key file name inside the data directory.
KEY_FILENAME = "master.key"
#: Store file name inside the data directory.
STORE_FILENAME = "secrets.json"
#: Valid secret names (as capabilities files and guests say them).
SECRET_NAME_RE = re.compile(r"^[a-z0-9_]{1,64}$")
#: Valid names in the store: a secret name, or ``<instance>/<secret name>`` for a second account of a platform
#: (``channels.channel.namespaced_lookup``; the instance part is a channel name).
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


def parse_master_key(text: str) -> bytes:
    """Decode a master key: 64 hex characters, or urlsafe base64 (padding optional) of 32 bytes.

    Raises:
        SecretStoreError: the text is neither (the message does not repeat the text).
    """
    t = text.strip()
    if len(t) == 64:
        try:
            return bytes.fromhex(t)
        except ValueError:
            pass
    try:
        raw = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw
    raise SecretStoreError(
        "master key must be 64 hex characters or urlsafe base64 of 32 bytes "
        '(generate one with: python -c "import secrets; print(secrets.token_hex(32))")'
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.urlsafe_b64decode(text.encode("ascii"))


def _write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


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
        return cls(store_path, cls._key_from_file(key_path))

    @staticmethod
    def _key_from_file(path: Path) -> bytes:
        """Read the key file, or create it (32 random bytes as hex, mode 0600) if absent."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as e:
            raise SecretStoreError(f"cannot create master key file {path}: {e.strerror or e}") from None
        else:
            key = _secrets.token_bytes(32)
            try:
                try:
                    os.fchmod(fd, 0o600)
                    os.write(fd, (key.hex() + "\n").encode("ascii"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise SecretStoreError(f"cannot write master key file {path}: {e.strerror or e}") from None
            return key
        try:
            st = os.stat(path)
        except OSError as e:
            raise SecretStoreError(f"cannot read master key file {path}: {e.strerror or e}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretStoreError(
                f"master key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); fix with: chmod 600 {path}"
            )
        try:
            text = path.read_text("ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise SecretStoreError(f"cannot read master key file {path}: {e}") from None
        try:
            return parse_master_key(text)
        except SecretStoreError as e:
            raise SecretStoreError(f"master key file {path}: {e}") from None

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
            _write_private_file(self._path, json.dumps(doc, indent=1).encode("utf-8"))
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
