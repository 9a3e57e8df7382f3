"""The master key of the secret store: ``$AIRLOCK_MASTER_KEY`` or the key file ``HOME/master.key``.

The key file holds one key (64 hex characters and a newline, mode 0600), or two during a key rotation
(``stores.keyrotation``): the new key on the first line, the old one on the second. The store opens with
whichever of them decrypts its key check, so a rotation killed at any point leaves a working key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets as _secrets
import stat
from pathlib import Path

from airlock.errors import SecretStoreError

__all__ = ["KEY_ENV_VAR", "KEY_FILENAME", "MAX_KEYS_IN_FILE", "create_key_file", "parse_master_key",
           "read_key_file", "write_private_file"]

#: Environment variable holding the master key (64 hex chars or urlsafe base64 of 32 bytes).
KEY_ENV_VAR = "AIRLOCK_MASTER_KEY"
#: Master key file name inside the data directory.
KEY_FILENAME = "master.key"
#: Keys a key file may hold: the current one, and the previous one while a rotation is under way.
MAX_KEYS_IN_FILE = 2


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


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, ``os.replace``, directory
    fsync), mode 0600: a reader, or a process killed at any point, sees the old content or the new, never part."""
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


def create_key_file(path: Path) -> bytes | None:
    """Create ``path`` with a new random key (mode 0600) unless it exists; the key, or ``None`` if it existed.

    Raises:
        SecretStoreError: the file cannot be created or written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as e:
        raise SecretStoreError(f"cannot create master key file {path}: {e.strerror or e}") from None
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


def read_key_file(path: Path) -> list[bytes]:
    """The keys in an existing key file: one, or two during a rotation (new first).

    Raises:
        SecretStoreError: the file is accessible by group or others (the message gives the ``chmod`` fix),
            unreadable, empty, holds more than :data:`MAX_KEYS_IN_FILE` keys, or a line is not a key.
    """
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
    lines = [line for line in text.splitlines() if line.strip()]
    if not 1 <= len(lines) <= MAX_KEYS_IN_FILE:
        raise SecretStoreError(f"master key file {path}: expected one key (two during a key rotation), "
                               f"found {len(lines)}")
    try:
        return [parse_master_key(line) for line in lines]
    except SecretStoreError as e:
        raise SecretStoreError(f"master key file {path}: {e}") from None
