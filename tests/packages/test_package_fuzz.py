"""Untrusted package bytes never escape as anything but ``PackageError``: a valid signed package with random
bytes overwritten, truncated or extended is either read correctly or refused with one line (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.errors import PackageError
from airlock.packages import TrustStore, build_package, sign_package, verify_package
from airlock.packages.keys import generate_key_files, load_private_key, read_public_key

WORLD = "airlock:channel/sandboxed-channel@0.1.0"
CAPS = b'{"name": "demo", "version": "1.0.0", "wit_version": "0.1.0"}'


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, TrustStore]:
    tmp = tmp_path_factory.mktemp("fuzz")
    private, public, _ = generate_key_files(tmp / "acme", "acme")
    trust = TrustStore(tmp / "home")
    trust.add(read_public_key(public))
    data = build_package("demo", "1.0.0", WORLD, b"\0asm" + bytes(range(256)) * 40, CAPS)
    return sign_package(data, *load_private_key(private)), trust


def _mutate(data: bytes, edits: list[tuple[int, int, bool]], cut: int | None, tail: bytes) -> bytes:
    out = bytearray(data)
    for pos, value, near_end in edits:
        # Half the edits land in the last 512 bytes: the central directory and the end record, which are most
        # of what zipfile parses before reading any member.
        out[len(out) - 1 - pos % 512 if near_end else pos % len(out)] = value
    if cut is not None:
        out = out[: cut % len(out)]
    return bytes(out) + tail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255), st.booleans()), max_size=4),
       cut=st.none() | st.integers(min_value=0), tail=st.binary(max_size=8))
def test_mutated_packages_are_verified_or_refused(signed: tuple[bytes, TrustStore],
                                                  edits: list[tuple[int, int, bool]], cut: int | None,
                                                  tail: bytes) -> None:
    data, trust = signed
    mutated = _mutate(data, edits, cut, tail)
    try:
        pkg = verify_package(mutated, source="fuzz", trust=trust)
    except PackageError as exc:
        assert "\n" not in str(exc)
        return
    # Accepted: then it is exactly what was signed (a change outside the members' bytes, e.g. a timestamp).
    assert (pkg.component, pkg.capabilities, pkg.provenance.signed) == (
        b"\0asm" + bytes(range(256)) * 40, CAPS, True)


def test_the_fuzz_target_is_valid(signed: tuple[bytes, TrustStore]) -> None:
    assert verify_package(signed[0], source="x", trust=signed[1]).provenance.publisher == "acme"
