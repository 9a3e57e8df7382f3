"""The package file: a zip archive read entirely in memory under strict limits, and written the one way
Airlock writes it.

Why zip and not tar: a zip has a central directory, so the member list (names, sizes, types) is known and
checked *before* a single member is decompressed, and each member is read on its own with its declared size
and CRC-32 checked by ``zipfile``; a tar must be streamed through to list it, and its member types (hard
links, devices, PAX headers that rename members) are more to refuse. Members are never extracted to disk:
they are read into memory, so no name in the archive ever becomes a path.

A package holds exactly these members, flat (no directories):

    manifest.json                 the manifest (``manifest.Manifest``), the bytes the signature covers
    signature.json                optional: the Ed25519 signature of the manifest (``manifest.SignatureDoc``)
    <name>.wasm                   the component
    <name>.capabilities.json      its capabilities file

Limits (each a constant below, each tested): the package file size, the member count, each member's size
(declared and actual), member names (length, no path separators, no ``..``, no absolute paths), no symlinks or
other non-regular entries, no duplicate names, no encryption, only stored or deflated members.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

from ..errors import PackageError
from ..manifest import MAX_CAPABILITIES_FILE_BYTES

__all__ = [
    "CAPS_SUFFIX",
    "MANIFEST",
    "MAX_COMPONENT_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_NAME_CHARS",
    "MAX_PACKAGE_BYTES",
    "MAX_SIGNATURE_BYTES",
    "PACKAGE_SUFFIX",
    "SIGNATURE",
    "Archive",
    "member_limit",
    "read_archive",
    "write_archive",
]

PACKAGE_SUFFIX = ".airlock"
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
CAPS_SUFFIX = ".capabilities.json"

MAX_PACKAGE_BYTES = 64 * 1024 * 1024
"""Largest package file read or downloaded (the Python Telegram component is ~19 MB, ~6 MB deflated)."""
MAX_MEMBERS = 4
"""Entries in the archive: manifest, signature, component, capabilities file."""
MAX_MEMBER_NAME_CHARS = 128
"""Longest member name (a channel name is at most 63 characters, plus ``.capabilities.json``)."""
MAX_COMPONENT_BYTES = 48 * 1024 * 1024
"""Largest component, uncompressed (2.5x the largest bundled one)."""
MAX_MANIFEST_BYTES = 16 * 1024
MAX_SIGNATURE_BYTES = 1024
_ALLOWED_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_ENCRYPTED_FLAG = 0x1
# What zipfile raises on malformed input besides BadZipFile (found by fuzzing, tests/packages): a "version needed
# to extract" it does not know (NotImplementedError), undecodable names (UnicodeDecodeError, a ValueError),
# truncated structures (EOFError, struct.error), absurd offsets (OverflowError, OSError from seek).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError, OverflowError,
               struct.error, OSError)


def member_limit(name: str) -> int:
    """The most bytes member ``name`` may hold uncompressed."""
    if name == MANIFEST:
        return MAX_MANIFEST_BYTES
    if name == SIGNATURE:
        return MAX_SIGNATURE_BYTES
    if name.endswith(CAPS_SUFFIX):
        return MAX_CAPABILITIES_FILE_BYTES
    return MAX_COMPONENT_BYTES


@dataclass(frozen=True)
class Archive:
    """The members of a package, read and size-checked: ``members`` maps name -> bytes (in archive order)."""

    members: dict[str, bytes]


def _check_name(name: str) -> None:
    """Refuse a member name that is not one flat, plain file name (the rule of zip-slip: no name may leave
    the directory it would be extracted into; Airlock never extracts, but refuses such a name all the same)."""
    if len(name) > MAX_MEMBER_NAME_CHARS:
        raise PackageError(f"member name over {MAX_MEMBER_NAME_CHARS} characters: {name[:40]!r}...")
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
           or ":" in name or name.startswith("."))
    if bad:
        raise PackageError(f"unsafe member name {name!r} (a package holds plain file names only, no paths)")


def _check_entry(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise PackageError(f"member {info.filename!r} is a symbolic link (refused)")
    if info.is_dir() or (mode and not stat.S_ISREG(mode)):
        raise PackageError(f"member {info.filename!r} is not a regular file (refused)")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise PackageError(f"member {info.filename!r} is encrypted (refused)")
    if info.compress_type not in _ALLOWED_COMPRESSION:
        raise PackageError(f"member {info.filename!r} uses an unsupported compression (stored or deflated only)")
    limit = member_limit(info.filename)
    if info.file_size > limit:
        raise PackageError(f"member {info.filename!r} is {info.file_size} bytes, over the {limit}-byte limit")


def read_archive(data: bytes) -> Archive:
    """Check the archive's directory against every limit, then read each member (size and CRC checked).

    Raises:
        PackageError: not a zip, over a limit, an unsafe/duplicate/non-regular member, a corrupt member.
    """
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageError(f"package is {len(data)} bytes, over the {MAX_PACKAGE_BYTES}-byte limit")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS:
        raise PackageError("not a package (not a zip archive)") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise PackageError(f"package has {len(infos)} members, more than the {MAX_MEMBERS} allowed")
        seen: set[str] = set()
        for info in infos:
            _check_name(info.filename)
            if info.filename in seen:
                raise PackageError(f"member {info.filename!r} appears twice (refused)")
            seen.add(info.filename)
            _check_entry(info)
        return Archive({info.filename: _read_member(zf, info) for info in infos})


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes, reading at most its limit + 1 (a lying size field cannot make us inflate more)."""
    limit = member_limit(info.filename)
    try:
        with zf.open(info) as f:
            body = f.read(limit + 1)
    except (*_ZIP_ERRORS, zlib.error, RuntimeError) as exc:  # bad CRC, short member: BadZipFile; bad deflate: zlib
        reason = (str(exc).splitlines() or ["unreadable"])[0][:120]
        raise PackageError(f"member {info.filename!r} is corrupt: {reason}") from None
    if len(body) > limit:
        raise PackageError(f"member {info.filename!r} is over the {limit}-byte limit")
    return body


def write_archive(members: dict[str, bytes]) -> bytes:
    """A package archive of ``members`` (name -> bytes), in the given order: regular files, mode 0644,
    a fixed timestamp (the same inputs give the same bytes), deflated except the signature and manifest."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED if len(body) > 4096 else zipfile.ZIP_STORED
            zf.writestr(info, body)
    return out.getvalue()
