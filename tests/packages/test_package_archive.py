"""The package archive's limits (``airlock.packages.archive``), one test per limit, on real zip files built
here with ``zipfile`` the way an attacker could build them; and the manifest/signature checks of
``verify_package`` that need no component."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from airlock.errors import PackageError
from airlock.manifest import MAX_CAPABILITIES_FILE_BYTES
from airlock.packages import TrustStore, build_package, sign_package, verify_package
from airlock.packages.archive import (
    MAX_COMPONENT_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MEMBER_NAME_CHARS,
    MAX_MEMBERS,
    MAX_PACKAGE_BYTES,
    MAX_SIGNATURE_BYTES,
    read_archive,
    write_archive,
)
from airlock.packages.keys import MAX_KEY_FILE_BYTES, generate_key_files, load_private_key, read_public_key

WORLD = "airlock:channel/sandboxed-channel@0.1.0"
CAPS = b'{"name": "demo", "version": "1.0.0", "wit_version": "0.1.0"}'


def zip_of(*members: tuple[str, bytes], mode: int = stat.S_IFREG | 0o644,
           compress: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = compress
            zf.writestr(info, body)
    return out.getvalue()


def refused(data: bytes, *fragments: str) -> str:
    with pytest.raises(PackageError) as err:
        read_archive(data)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    return str(err.value)


def test_a_package_reads_back_what_was_written() -> None:
    members = {"manifest.json": b"{}", "demo.wasm": b"\0asm" * 5000, "demo.capabilities.json": CAPS}
    assert read_archive(write_archive(members)).members == members


def test_member_count_limit() -> None:
    at_limit = [(f"m{i}.json", b"x") for i in range(MAX_MEMBERS)]
    assert len(read_archive(zip_of(*at_limit)).members) == MAX_MEMBERS
    refused(zip_of(*at_limit, ("one-more.json", b"x")), f"{MAX_MEMBERS + 1} members")


@pytest.mark.parametrize("name", ["../demo.wasm", "/etc/passwd", "a/b.wasm", "..\\x.wasm", "C:x.wasm", ".hidden",
                                  ".."])
def test_path_traversal_and_paths_are_refused(name: str) -> None:
    refused(zip_of((name, b"x")), "unsafe member name")


def test_member_name_length_limit() -> None:
    read_archive(zip_of(("a" * MAX_MEMBER_NAME_CHARS, b"x")))
    refused(zip_of(("a" * (MAX_MEMBER_NAME_CHARS + 1), b"x")), f"over {MAX_MEMBER_NAME_CHARS} characters")


def test_symlinks_are_refused() -> None:
    refused(zip_of(("demo.wasm", b"/etc/passwd"), mode=stat.S_IFLNK | 0o777), "symbolic link")


def test_directories_and_devices_are_refused() -> None:
    refused(zip_of(("dir/", b"")), "unsafe member name")
    refused(zip_of(("demo.wasm", b""), mode=stat.S_IFCHR | 0o644), "not a regular file")


def test_duplicate_names_are_refused() -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = zip_of(("demo.wasm", b"one"), ("demo.wasm", b"two"))
    refused(data, "appears twice")


@pytest.mark.parametrize(("name", "limit"), [("manifest.json", MAX_MANIFEST_BYTES),
                                             ("signature.json", MAX_SIGNATURE_BYTES),
                                             ("demo.capabilities.json", MAX_CAPABILITIES_FILE_BYTES)])
def test_small_member_limits(name: str, limit: int) -> None:
    read_archive(zip_of((name, b" " * limit)))
    refused(zip_of((name, b" " * (limit + 1))), f"{limit}-byte limit")


def test_component_limit_is_checked_before_inflating() -> None:
    # 48 MiB + 1 of zeros deflates to ~50 KB: the declared size is refused without reading the member.
    bomb = zip_of(("demo.wasm", bytes(MAX_COMPONENT_BYTES + 1)), compress=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1024 * 1024
    refused(bomb, f"{MAX_COMPONENT_BYTES}-byte limit")


def test_a_lying_size_field_is_caught_by_the_crc() -> None:
    data = bytearray(zip_of(("demo.wasm", b"A" * 1000)))
    # Rewrite the central directory's uncompressed size to 10: zipfile reads 10 bytes, the CRC fails.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    refused(bytes(data), "demo.wasm", "corrupt")


def test_package_size_limit() -> None:
    refused(b"\0" * (MAX_PACKAGE_BYTES + 1), f"{MAX_PACKAGE_BYTES}-byte limit")


def test_encrypted_and_odd_compression_are_refused() -> None:
    data = bytearray(zip_of(("demo.wasm", b"x")))
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 8] |= 0x1  # the "encrypted" general-purpose flag
    refused(bytes(data), "encrypted")
    refused(zip_of(("demo.wasm", b"x" * 100), compress=zipfile.ZIP_BZIP2), "unsupported compression")


def test_not_a_zip() -> None:
    refused(b"\0asm\x0d\0\x01\0", "not a zip archive")


# ---- verify_package without a component -------------------------------------------------------------------


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    private, public, _ = generate_key_files(tmp_path / "acme", "acme")
    return private, public


def _package(signer: tuple[Path, Path] | None) -> bytes:
    data = build_package("demo", "1.0.0", WORLD, b"\0asm-component", CAPS)
    return sign_package(data, *load_private_key(signer[0])) if signer else data


def test_verify_accepts_a_trusted_signature_and_says_so(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    trust = TrustStore(tmp_path / "home")
    key = trust.add(read_public_key(signer[1])).key
    pkg = verify_package(_package(signer), source="x.airlock", trust=trust)
    assert (pkg.name, pkg.version, pkg.world, pkg.component, pkg.capabilities) == (
        "demo", "1.0.0", WORLD, b"\0asm-component", CAPS)
    assert pkg.provenance.signed and pkg.provenance.key_id == key.key_id and pkg.provenance.publisher == "acme"


def test_a_bad_signature_by_a_trusted_key_is_refused_even_when_unsigned_is_allowed(
        tmp_path: Path, signer: tuple[Path, Path]) -> None:
    trust = TrustStore(tmp_path / "home")
    trust.add(read_public_key(signer[1]))
    members = read_archive(_package(signer)).members
    members["manifest.json"] = members["manifest.json"].replace(b'"1.0.0"', b'"1.0.1"')
    with pytest.raises(PackageError, match="does not verify with trusted key 'acme'"):
        verify_package(write_archive(members), source="x", trust=trust, allow_unsigned=True)


def test_unknown_manifest_keys_and_unexpected_members_are_refused(tmp_path: Path) -> None:
    trust = TrustStore(tmp_path / "home")
    members = read_archive(_package(None)).members
    extra = dict(members, **{"README.md": b"hi"})
    with pytest.raises(PackageError, match=r"unexpected member 'README\.md'"):
        verify_package(write_archive(extra), source="x", trust=trust, allow_unsigned=True)
    bad = dict(members, **{"manifest.json": members["manifest.json"].replace(b'"format"', b'"formta"')})
    with pytest.raises(PackageError, match=r"manifest.json: \$.format: Field required"):
        verify_package(write_archive(bad), source="x", trust=trust, allow_unsigned=True)
    gone = {k: v for k, v in members.items() if k != "demo.capabilities.json"}
    with pytest.raises(PackageError, match=r"'demo\.capabilities\.json' is listed in manifest\.json but missing"):
        verify_package(write_archive(gone), source="x", trust=trust, allow_unsigned=True)


def test_key_file_size_limit(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    big = tmp_path / "big.pub"
    line = signer[1].read_text().rstrip("\n")
    big.write_text(line + " " * (MAX_KEY_FILE_BYTES - len(line)))
    assert big.stat().st_size == MAX_KEY_FILE_BYTES and read_public_key(big).name == "acme"
    big.write_text(big.read_text() + " ")
    with pytest.raises(PackageError, match=f"over {MAX_KEY_FILE_BYTES} bytes; not a key file"):
        read_public_key(big)


def test_an_unsupported_zip_version_is_refused_not_raised() -> None:
    # Found by tests/packages/test_package_fuzz.py: zipfile raises NotImplementedError for "version needed to
    # extract" above 6.3, which escaped as a traceback.
    data = bytearray(zip_of(("demo.wasm", b"x")))
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 6] = 64  # version needed to extract: 6.4
    refused(bytes(data), "not a zip archive")


def test_a_capabilities_file_with_a_bom_is_accepted_and_a_mismatched_one_refused(tmp_path: Path) -> None:
    trust = TrustStore(tmp_path / "home")
    with_bom = build_package("demo", "1.0.0", WORLD, b"\0asm", b"\xef\xbb\xbf" + CAPS)
    assert verify_package(with_bom, source="x", trust=trust, allow_unsigned=True).name == "demo"
    other = build_package("demo", "1.0.1", WORLD, b"\0asm", CAPS)  # the file says 1.0.0
    with pytest.raises(PackageError, match=r"the manifest says demo 1\.0\.1, its capabilities file demo 1\.0\.0"):
        verify_package(other, source="x", trust=trust, allow_unsigned=True)
