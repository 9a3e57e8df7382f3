"""Build, sign and verify packages; what a verified package hands to the install code.

Verification order (``verify_package``), each step refusing with one line before anything is written:
the archive's directory and limits (``archive``), the manifest, the member set (exactly the manifest,
optionally the signature, ``<name>.wasm`` and ``<name>.capabilities.json``), the signature against the
trust store, then each member's size and SHA-256 against the manifest (a mismatch names the member), and
the capabilities file's name and version against the manifest's.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import PackageError
from .archive import MANIFEST, PACKAGE_SUFFIX, SIGNATURE, Archive, read_archive, write_archive
from .keys import PublicKey, sign
from .manifest import FORMAT, Manifest, MemberDigest, SignatureDoc, manifest_bytes, parse_json_model, sha256
from .trust import TrustStore

__all__ = [
    "UNSIGNED",
    "Provenance",
    "VerifiedPackage",
    "bare_provenance",
    "build_package",
    "package_file_name",
    "sign_package",
    "verify_package",
]

UNSIGNED = "unsigned"
"""``Provenance.publisher`` of anything installed without a trusted signature."""


@dataclass(frozen=True)
class Provenance:
    """Where an installed channel came from, recorded with it (``provenance.json``, ``channels list --json``).

    ``signed``: a signature by a trusted key was verified at install. ``publisher``: that key's name in the
    trust store, or ``"unsigned"``. ``key_id``: the verified key's id (None when unsigned). ``digests``:
    member name -> SHA-256 of what was installed. ``source``: the package path or URL, or the component's path
    for a bare ``.wasm`` + ``.json`` install. ``package_sha256``: of the package file (None for a bare
    install). ``note``: why it is unsigned, when it is.
    """

    signed: bool
    publisher: str
    key_id: str | None
    version: str
    world: str | None
    digests: dict[str, str]
    source: str
    package_sha256: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"signed": self.signed, "publisher": self.publisher, "key_id": self.key_id,
                "version": self.version, "world": self.world, "digests": dict(self.digests),
                "source": self.source, "package_sha256": self.package_sha256, "note": self.note}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Provenance:
        """The inverse of :meth:`as_dict`. Raises KeyError / TypeError / ValueError on a malformed one."""
        digests = doc["digests"]
        if not isinstance(digests, dict):
            raise TypeError("digests")
        return cls(signed=bool(doc["signed"]), publisher=str(doc["publisher"]), key_id=doc.get("key_id"),
                   version=str(doc["version"]), world=doc.get("world"),
                   digests={str(k): str(v) for k, v in digests.items()}, source=str(doc["source"]),
                   package_sha256=doc.get("package_sha256"), note=doc.get("note"))

    def summary(self) -> str:
        """``signed by acme (3f9a0c1b2d4e5f60)`` or ``unsigned``."""
        return f"signed by {self.publisher} ({self.key_id})" if self.signed else UNSIGNED


@dataclass(frozen=True)
class VerifiedPackage:
    """A package whose digests (and, unless accepted unsigned, signature) were verified: the bytes to
    install and where they came from. The only thing the install code takes from a package."""

    manifest: Manifest
    component: bytes = field(repr=False)
    capabilities: bytes = field(repr=False)
    provenance: Provenance

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def world(self) -> str:
        return self.manifest.world


def bare_provenance(name: str, version: str, world: str | None, component: bytes, capabilities: bytes,
                    source: str) -> Provenance:
    """The record of a bare ``.wasm`` + ``.capabilities.json`` install: unsigned, with both digests."""
    return Provenance(signed=False, publisher=UNSIGNED, key_id=None, version=version, world=world,
                      digests={f"{name}.wasm": sha256(component), f"{name}.capabilities.json": sha256(capabilities)},
                      source=source, note="bare component and capabilities file")


def package_file_name(name: str, version: str) -> str:
    """``<name>-<version>.airlock``."""
    return f"{name}-{version}{PACKAGE_SUFFIX}"


def build_package(name: str, version: str, world: str, component: bytes, capabilities: bytes) -> bytes:
    """An unsigned package of ``component`` and ``capabilities`` (checked against the archive limits)."""
    manifest = Manifest(format=FORMAT, name=name, version=version, world=world, members={
        f"{name}.wasm": MemberDigest(sha256=sha256(component), size=len(component)),
        f"{name}.capabilities.json": MemberDigest(sha256=sha256(capabilities), size=len(capabilities)),
    })
    data = write_archive({MANIFEST: manifest_bytes(manifest), manifest.component_member: component,
                          manifest.caps_member: capabilities})
    read_archive(data)  # the same limits as a reader applies: never write a package no host would accept
    return data


def sign_package(data: bytes, key: Ed25519PrivateKey, public: PublicKey) -> bytes:
    """``data`` with its signature (re)placed by ``key``'s. The package is checked first (structure and
    digests): a tampered package is never signed. Raises PackageError."""
    archive = read_archive(data)
    manifest = _checked(archive)
    raw = archive.members[MANIFEST]
    doc = SignatureDoc(algorithm="ed25519", key_id=public.key_id,
                       signature=base64.b64encode(sign(key, raw)).decode())
    signature = (doc.model_dump_json(indent=2) + "\n").encode()
    return write_archive({MANIFEST: raw, SIGNATURE: signature,
                          manifest.component_member: archive.members[manifest.component_member],
                          manifest.caps_member: archive.members[manifest.caps_member]})


def _manifest(archive: Archive) -> Manifest:
    raw = archive.members.get(MANIFEST)
    if raw is None:
        raise PackageError(f"no {MANIFEST} in the package")
    manifest = parse_json_model(Manifest, raw, MANIFEST)
    expected = {manifest.component_member, manifest.caps_member}
    if set(manifest.members) != expected:
        raise PackageError(f"{MANIFEST}: $.members: must list exactly {', '.join(sorted(expected))}")
    allowed = expected | {MANIFEST, SIGNATURE}
    for name in archive.members:
        if name not in allowed:
            raise PackageError(f"unexpected member {name!r} (a package of {manifest.name} holds "
                               f"{', '.join(sorted(allowed))})")
    for name in sorted(expected):
        if name not in archive.members:
            raise PackageError(f"member {name!r} is listed in {MANIFEST} but missing")
    return manifest


def _check_digests(archive: Archive, manifest: Manifest) -> None:
    for name, want in sorted(manifest.members.items()):
        body = archive.members[name]
        if len(body) != want.size or sha256(body) != want.sha256:
            raise PackageError(f"member {name!r} does not match its sha256 in {MANIFEST} (tampered or corrupt)")


def _check_identity(caps: bytes, manifest: Manifest) -> None:
    """The capabilities file must name the channel and version the manifest does (its full validation is
    the install's, ``config.load_capabilities``)."""
    try:
        doc = json.loads(caps.decode("utf-8-sig"))  # a leading BOM is tolerated, as by the capabilities loader
    except (UnicodeDecodeError, ValueError):
        raise PackageError(f"member {manifest.caps_member!r} is not UTF-8 JSON") from None
    said = (doc.get("name"), doc.get("version")) if isinstance(doc, dict) else (None, None)
    if said != (manifest.name, manifest.version):
        raise PackageError(f"the manifest says {manifest.name} {manifest.version}, its capabilities file "
                           f"{said[0]} {said[1]}")


def _checked(archive: Archive) -> Manifest:
    manifest = _manifest(archive)
    _check_digests(archive, manifest)
    return manifest


def _signer(archive: Archive, trust: TrustStore, allow_unsigned: bool) -> tuple[PublicKey | None, str | None]:
    """The trusted key that signed the manifest, or (None, why) when accepted unsigned."""
    raw_sig = archive.members.get(SIGNATURE)
    if raw_sig is None:
        if not allow_unsigned:
            raise PackageError("the package is unsigned (--allow-unsigned accepts it)")
        return None, "no signature"
    sig = parse_json_model(SignatureDoc, raw_sig, SIGNATURE)
    trusted = trust.find(sig.key_id)
    if trusted is None:
        if not allow_unsigned:
            raise PackageError(f"signed by key {sig.key_id}, which is not trusted (airlock trust add KEY.pub; "
                               "--allow-unsigned accepts it unverified)")
        return None, f"signed by untrusted key {sig.key_id} (not verified)"
    # A bad signature by a key we trust is refused even with --allow-unsigned: someone changed the manifest.
    if not trusted.key.verifies(base64.b64decode(sig.signature), archive.members[MANIFEST]):
        raise PackageError(f"the signature does not verify with trusted key {trusted.key.name!r} "
                           f"({sig.key_id}): {MANIFEST} was changed after signing")
    return trusted.key, None


def verify_package(data: bytes, *, source: str, trust: TrustStore, allow_unsigned: bool = False) -> VerifiedPackage:
    """Verify a package held in memory (module docstring) and return what to install.

    ``source``: the path or URL it came from (recorded). ``allow_unsigned``: accept a package with no
    signature or one by an untrusted key (recorded as unsigned); never one whose trusted signature fails.

    Raises:
        PackageError: one line; nothing has been written anywhere.
    """
    archive = read_archive(data)
    manifest = _manifest(archive)
    key, note = _signer(archive, trust, allow_unsigned)
    _check_digests(archive, manifest)
    _check_identity(archive.members[manifest.caps_member], manifest)
    provenance = Provenance(
        signed=key is not None, publisher=key.name if key is not None else UNSIGNED,
        key_id=key.key_id if key is not None else None, version=manifest.version, world=manifest.world,
        digests={n: d.sha256 for n, d in sorted(manifest.members.items())}, source=source,
        package_sha256=sha256(data), note=note)
    return VerifiedPackage(manifest=manifest, component=archive.members[manifest.component_member],
                           capabilities=archive.members[manifest.caps_member], provenance=provenance)
