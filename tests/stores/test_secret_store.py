"""Tests for airlock.stores.secrets.SecretStore."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from airlock.errors import SecretStoreError
from airlock.stores import SecretStore
from airlock.stores.secrets import KEY_ENV_VAR, parse_master_key

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
VALUE = "xoxb-super-secret-token-value-1234567890"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)


def test_round_trip_and_api(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.json", KEY)
    assert store.get("slack_bot_token") is None
    assert not store.exists("slack_bot_token")
    assert store.names() == []
    store.set("slack_bot_token", VALUE)
    store.set("a_first", "ünïcödé ✓")
    assert store.get("slack_bot_token") == VALUE
    assert store.get("a_first") == "ünïcödé ✓"
    assert store.exists("slack_bot_token")
    assert store.names() == ["a_first", "slack_bot_token"]
    store.set("slack_bot_token", "rotated")
    assert store.get("slack_bot_token") == "rotated"
    assert store.remove("a_first") is True
    assert store.remove("a_first") is False
    assert store.names() == ["slack_bot_token"]
    # another instance with the same key sees the data
    again = SecretStore(tmp_path / "secrets.json", KEY)
    assert again.get("slack_bot_token") == "rotated"
    again.set("empty", "")
    assert store.get("empty") == ""  # the first instance notices the file changed


def test_ciphertext_on_disk_does_not_contain_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    store = SecretStore(path, KEY)
    store.set("token", VALUE)
    raw = path.read_bytes()
    assert VALUE.encode() not in raw
    assert base64.b64encode(VALUE.encode()) not in raw
    assert b"token" in raw  # names are stored in the clear
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]  # no temp files left behind


def test_nonce_is_fresh_per_write(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    store = SecretStore(path, KEY)
    store.set("a", VALUE)
    first = json.loads(path.read_text())["secrets"]["a"]
    store.set("a", VALUE)
    second = json.loads(path.read_text())["secrets"]["a"]
    assert first != second


def test_wrong_key_fails_without_leaking(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    SecretStore(path, KEY).set("token", VALUE)
    with pytest.raises(SecretStoreError, match="wrong master key") as exc:
        SecretStore(path, OTHER_KEY)
    assert VALUE not in str(exc.value)


def test_value_moved_to_other_name_does_not_decrypt(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    store = SecretStore(path, KEY)
    store.set("a", VALUE)
    store.set("b", "other")
    doc = json.loads(path.read_text())
    doc["secrets"]["b"] = doc["secrets"]["a"]
    path.write_text(json.dumps(doc))
    fresh = SecretStore(path, KEY)
    assert fresh.get("a") == VALUE
    with pytest.raises(SecretStoreError, match="cannot decrypt") as exc:
        fresh.get("b")
    assert VALUE not in str(exc.value)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("{not json")
    with pytest.raises(SecretStoreError, match="corrupt"):
        SecretStore(path, KEY)
    path.write_text(json.dumps({"format": 99, "secrets": {}}))
    with pytest.raises(SecretStoreError, match="format"):
        SecretStore(path, KEY)


@pytest.mark.parametrize("name", ["", "Upper", "with-dash", "a" * 65, "dot.name", "spa ce"])
def test_invalid_names_rejected(tmp_path: Path, name: str) -> None:
    store = SecretStore(tmp_path / "secrets.json", KEY)
    with pytest.raises(SecretStoreError, match="invalid secret name"):
        store.set(name, "v")
    with pytest.raises(SecretStoreError, match="invalid secret name"):
        store.get(name)


def test_bad_key_length(tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match="32 bytes"):
        SecretStore(tmp_path / "secrets.json", b"short")


def test_open_creates_key_file_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = SecretStore.open(home)
    key_file = home / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(parse_master_key(key_file.read_text())) == 32
    store.set("token", VALUE)
    assert store.path == home / "secrets.json"
    # reopening reuses the same key
    assert SecretStore.open(home).get("token") == VALUE


def test_open_refuses_group_readable_key_file(tmp_path: Path) -> None:
    SecretStore.open(tmp_path)
    key_file = tmp_path / "master.key"
    os.chmod(key_file, 0o644)
    with pytest.raises(SecretStoreError, match="chmod 600"):
        SecretStore.open(tmp_path)
    os.chmod(key_file, 0o600)
    SecretStore.open(tmp_path)


def test_open_with_env_key_hex_and_base64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, KEY.hex())
    SecretStore.open(tmp_path).set("token", VALUE)
    assert not (tmp_path / "master.key").exists()
    assert SecretStore(tmp_path / "secrets.json", KEY).get("token") == VALUE
    monkeypatch.setenv(KEY_ENV_VAR, base64.urlsafe_b64encode(KEY).decode())
    assert SecretStore.open(tmp_path).get("token") == VALUE
    monkeypatch.setenv(KEY_ENV_VAR, base64.urlsafe_b64encode(KEY).decode().rstrip("="))
    assert SecretStore.open(tmp_path).get("token") == VALUE
    monkeypatch.setenv(KEY_ENV_VAR, OTHER_KEY.hex())
    with pytest.raises(SecretStoreError, match="wrong master key"):
        SecretStore.open(tmp_path)


@pytest.mark.parametrize("bad", ["abc", "zz" * 32, base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_malformed_env_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, bad)
    with pytest.raises(SecretStoreError, match="64 hex") as exc:
        SecretStore.open(tmp_path)
    assert bad not in str(exc.value)


def test_thread_safety(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.json", KEY)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(10):
                store.set(f"t{i}_{j}", f"v{i}{j}")
                assert store.get(f"t{i}_{j}") == f"v{i}{j}"
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(SecretStore(tmp_path / "secrets.json", KEY).names()) == 60
