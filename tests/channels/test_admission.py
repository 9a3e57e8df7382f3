"""Host-side DM admission (``ChannelManager.admit``): the rule is re-checked after the guest, whatever it did."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airlock.channels.channel import InboundMessage
from airlock.channels.manager import ChannelManager
from airlock.runtime.values import EmittedMessage
from airlock.stores import PairingStore


def _admit(tmp_path: Path, config: dict[str, Any], user: str, meta: dict[str, Any] | None = None,
           paired: bool = False) -> bool:
    store = PairingStore(tmp_path / "pairing.db")
    if paired:
        code, _ = store.upsert_request("demo", user)
        store.approve("demo", code)
    channel = SimpleNamespace(name="demo", caps=SimpleNamespace(config=config),
                              pairing=SimpleNamespace(store=store))
    msg = InboundMessage("demo", EmittedMessage(user, None, "hi", None, json.dumps(meta or {})))
    manager = object.__new__(ChannelManager)  # admit() needs no runtime state
    return manager.admit(channel, msg)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "user", "expected"),
    [
        ({"dm_policy": "open"}, "u9", True),
        ({}, "u9", True),
        ({"dm_policy": "pairing"}, "u9", False),
        ({"dm_policy": "pairing", "owner_id": "u9"}, "u9", True),
        ({"dm_policy": "allowlist", "owner_id": 9}, "9", True),
        ({"dm_policy": "allowlist", "allow_from": ["u1", 9]}, "9", True),
        ({"dm_policy": "allowlist", "allow_from": ["u1"]}, "u", False),
        ({"dm_policy": "disabled", "owner_id": "u9", "allow_from": ["u9"]}, "u9", False),
        ({"dm_policy": "allowlist", "allow_from": ["*"]}, "u9", True),
        ({"dm_policy": "pairing", "allow_from": ["@u9"]}, "u9", False),
        ({"dm_policy": "disabled", "allow_from": ["*"]}, "u9", False),
    ],
)
def test_dm_policy(tmp_path: Path, config: dict[str, Any], user: str, expected: bool) -> None:
    assert _admit(tmp_path, config, user) is expected


def test_paired_user_admitted_under_pairing(tmp_path: Path) -> None:
    assert _admit(tmp_path, {"dm_policy": "pairing"}, "u5", paired=True) is True


def test_disabled_refuses_paired_user(tmp_path: Path) -> None:
    assert _admit(tmp_path, {"dm_policy": "disabled"}, "u5", paired=True) is False


def test_group_messages_left_to_guest(tmp_path: Path) -> None:
    assert _admit(tmp_path, {"dm_policy": "pairing"}, "u9", meta={"chat_type": "group"}) is True
    assert _admit(tmp_path, {"dm_policy": "allowlist"}, "u9", meta={"is_group": True}) is True
