"""Publisher keys: Ed25519 (RFC 8032) through ``cryptography``.

- A private key file is PKCS#8 PEM, unencrypted, created mode 0600 and never overwritten; loading one that
  group or others may read is refused (as ssh does), since anyone who reads it can publish as you.
- A public key file is one line: ``airlock-ed25519 <base64 of the 32-byte key> <name>``.
- A key id is the first 16 hex characters of the SHA-256 of the 32-byte public key: short enough to read
  aloud, long enough (64 bits) that two keys of one trust store never collide by chance.

What is signed is ``SIGNING_CONTEXT + manifest bytes``: the prefix keeps a package signature from ever being
valid as a signature of anything else the same key might sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import PackageError

__all__ = [
    "KEY_ID_HEX_CHARS",
    "MAX_KEY_FILE_BYTES",
    "PUBLIC_KEY_PREFIX",
    "SIGNING_CONTEXT",
    "PublicKey",
    "check_key_name",
    "generate_key_files",
    "load_private_key",
    "parse_public_key",
    "read_public_key",
    "sign",
]

KEY_ID_HEX_CHARS = 16
PUBLIC_KEY_PREFIX = "airlock-ed25519"
SIGNING_CONTEXT = b"airlock-package-manifest-v1\0"
MAX_KEY_FILE_BYTES = 4096
"""Largest key file read (a PEM Ed25519 key is 119 bytes; a public key line under 200)."""
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_key_name(name: str) -> str:
    """``name`` if it is a valid publisher name (letters, digits, ``._@-``, at most 64), else PackageError."""
    if not _KEY_NAME_RE.match(name):
        raise PackageError(f"{name!r} is not a key name (letters, digits and ._@- only, at most 64 characters)")
    return name


@dataclass(frozen=True)
class PublicKey:
    """A publisher's public key: ``name`` (from the key file or the trust store), ``raw`` (32 bytes)."""

    name: str
    raw: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:KEY_ID_HEX_CHARS]

    def line(self) -> str:
        """The public key file's one line (no newline)."""
        return f"{PUBLIC_KEY_PREFIX} {base64.b64encode(self.raw).decode()} {self.name}"

    def verifies(self, signature: bytes, manifest: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``manifest``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, SIGNING_CONTEXT + manifest)
        except InvalidSignature:
            return False
        return True


def parse_public_key(text: str, source: str) -> PublicKey:
    """Parse a public key line. Raises PackageError naming ``source`` when it is not one."""
    parts = text.strip().split()
    if len(parts) != 3 or parts[0] != PUBLIC_KEY_PREFIX:
        raise PackageError(f"{source}: not an Airlock public key (expected '{PUBLIC_KEY_PREFIX} <base64> <name>')")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise PackageError(f"{source}: the key is not valid base64") from None
    if len(raw) != 32:
        raise PackageError(f"{source}: an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return PublicKey(name=check_key_name(parts[2]), raw=raw)


def _read_small(path: Path) -> bytes:
    if not path.is_file():
        raise PackageError(f"{path}: key file not found")
    with path.open("rb") as f:
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise PackageError(f"{path}: over {MAX_KEY_FILE_BYTES} bytes; not a key file")
    return data


def read_public_key(path: Path) -> PublicKey:
    """Read a public key file (``.pub``). Raises PackageError when it is missing or malformed."""
    try:
        return parse_public_key(_read_small(path).decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise PackageError(f"{path}: not an Airlock public key (not text)") from None


def load_private_key(path: Path) -> tuple[Ed25519PrivateKey, PublicKey]:
    """Read a private key file and its public half (named after the file's stem).

    Raises:
        PackageError: missing, readable by group or others, not an Ed25519 PKCS#8 PEM key.
    """
    data = _read_small(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PackageError(f"{path}: private key readable by others (mode {mode:04o}); chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise PackageError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PackageError(f"{path}: not an Ed25519 key")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, PublicKey(name=_stem_name(path), raw=raw)


def _stem_name(path: Path) -> str:
    stem = path.name.removesuffix(".key")
    return stem if _KEY_NAME_RE.match(stem) else "publisher"


def sign(key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``manifest`` (with :data:`SIGNING_CONTEXT`)."""
    return key.sign(SIGNING_CONTEXT + manifest)


def generate_key_files(stem: Path, name: str) -> tuple[Path, Path, PublicKey]:
    """Create ``<stem>.key`` (private, 0600) and ``<stem>.pub``; refuse to replace either.

    Raises:
        PackageError: a file of either name exists, or ``name`` is not a valid key name.
        OSError: the directory is not writable.
    """
    check_key_name(name)
    private, public = stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub")
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise PackageError(f"{path} already exists (refusing to replace a key)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = PublicKey(name=name, raw=raw)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, pem)
    finally:
        os.close(fd)
    try:
        with public.open("x", encoding="utf-8") as f:
            f.write(pub.line() + "\n")
    except BaseException:
        private.unlink(missing_ok=True)
        raise
    return private, public, pub
