"""The trust store file and the provenance record, on real files: modes, a corrupt store refused with one
line, a corrupt or missing record shown as unsigned (``recorded: false``)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from airlock.errors import PackageError
from airlock.packages import (
    Provenance,
    TrustStore,
    provenance_doc,
    provenance_path,
    read_provenance,
    write_provenance,
)
from airlock.packages.keys import generate_key_files, read_public_key
from airlock.packages.trust import TRUST_FILE


def test_the_trust_store_is_private_and_keeps_names_and_ids_unique(tmp_path: Path) -> None:
    _, public, key = generate_key_files(tmp_path / "acme", "acme")
    store = TrustStore(tmp_path / "home")
    store.add(read_public_key(public))
    assert stat.S_IMODE((tmp_path / "home" / TRUST_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    with pytest.raises(PackageError, match="already trusted as 'acme'"):
        store.add(read_public_key(public), "other-name")
    _, public2, _ = generate_key_files(tmp_path / "acme2", "acme")
    with pytest.raises(PackageError, match="a key named 'acme' is already trusted"):
        store.add(read_public_key(public2))
    assert store.add(read_public_key(public2), "acme-2").key.name == "acme-2"
    assert [t.key.name for t in store.trusted()] == ["acme", "acme-2"]
    assert store.find(key.key_id) is not None and store.remove("acme").key.key_id == key.key_id
    assert store.find(key.key_id) is None


def test_a_corrupt_trust_store_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / TRUST_FILE).write_text('{"keys": [{"name": "x", "key_id": "00", "public_key": "AAAA", "added_at": 1}]}')
    with pytest.raises(PackageError, match="the trust store is corrupt"):
        TrustStore(home).trusted()


def test_provenance_record_round_trip_and_fallbacks(tmp_path: Path) -> None:
    prov = Provenance(signed=True, publisher="acme", key_id="0123456789abcdef", version="1.0.0", world="w",
                      digests={"a.wasm": "ab" * 32}, source="https://example.com/a-1.0.0.airlock",
                      package_sha256="cd" * 32)
    path = write_provenance(provenance_path(tmp_path, "a"), prov)
    assert path == tmp_path / "a.provenance.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_provenance(path) == prov
    assert provenance_doc(path) == {**prov.as_dict(), "recorded": True}
    unsigned = {"signed": False, "publisher": "unsigned", "key_id": None, "recorded": False}
    assert provenance_doc(provenance_path(tmp_path, "b")) == unsigned  # none recorded (copied in by hand)
    path.write_text("{not json")
    assert provenance_doc(path) == unsigned
