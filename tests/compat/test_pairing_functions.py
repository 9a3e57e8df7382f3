"""near:agent conformance: ``pairing-upsert-request``, ``pairing-resolve-identity``, ``pairing-read-allow-from``.

The compat guest calls them through the raw WIT binding, as IronClaw's channels do with their ``CHANNEL_NAME``
constant (e.g. ``channels-src/telegram/src/lib.rs``), under IronClaw's telegram file, through the real host and its
SQLite pairing store; the operator approves as ``airlock pairing approve`` does. IronClaw's rules: nearai/ironclaw
``src/channels/wasm/wrapper.rs`` (the ``channel_host::Host`` impl: store errors become the WIT error string, an
unparsable ``meta-json`` is dropped), ``src/pairing/store.rs`` and ``src/pairing/mod.rs`` (``normalize_channel_name``:
ASCII lowercase), ``src/pairing/code.rs`` (8 characters of ``ABCDEFGHJKLMNPQRSTUVWXYZ23456789``),
``src/db/libsql/pairing.rs`` (``upsert_pairing_request``: live 15 minutes; ``approve_pairing``: the code is matched
case-insensitively; ``read_allow_from``: paired external ids, sorted).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from compat_support import probe, telegram_host
from conftest import InstallFn

from airlock.capabilities.pairing import MAX_ID_BYTES
from airlock.stores.pairing import PAIRING_CODE_ALPHABET, PAIRING_CODE_LENGTH, PAIRING_TTL_SECS

pytestmark = pytest.mark.e2e

CODE = re.compile(f"[{PAIRING_CODE_ALPHABET}]{{{PAIRING_CODE_LENGTH}}}")


async def test_pairing_round_trip_codes_and_errors(airlock_home: Path, install_channel: InstallFn) -> None:
    """A stranger gets an 8-character code that lives 15 minutes; the channel name is matched after ASCII
    lowercasing ("Telegram" is this channel, as in IronClaw); refusals are WIT error strings the guest can log.
    After the operator approves the code (typed in lower case), the sender resolves to the owner and is listed.

    Known differences, asserted here: Airlock's upsert is idempotent while a request is live (same code,
    ``created=false``; IronClaw retires it and issues a new code on every upsert, so every message of a stranger
    is answered with a fresh code); a guest may only name its own channel (IronClaw takes any name); an id must be
    1-256 bytes and ``meta-json`` a JSON object of at most 4 KB (IronClaw stores unparsable meta as none)."""
    async with telegram_host(airlock_home, install_channel) as (host, _tg):
        answers, _ = await probe(host, "pairing", ops=[
            ["upsert", "telegram", "1001", '{"chat_id": 1001}'],
            ["upsert", "telegram", "1001", "{}"],
            ["upsert", "Telegram", "1002", ""],
            ["resolve", "telegram", "1001"],
            ["allow", "telegram"],
            ["upsert", "slack", "1003", "{}"],
            ["resolve", "discord", "1001"],
            ["upsert", "telegram", "", "{}"],
            ["upsert", "telegram", "1004", "not json"],
        ])
        (code, created), again, (code2, created2) = (a["ok"] for a in answers[:3])
        assert CODE.fullmatch(code) and CODE.fullmatch(code2) and code != code2
        assert created is True and created2 is True and again == [code, False]
        assert answers[3:5] == [{"ok": None}, {"ok": []}]
        assert answers[5:] == [{"err": "pairing is only available for this channel ('telegram')"}] * 2 + [
            {"err": f"pairing id must be 1-{MAX_ID_BYTES} bytes"}, {"err": "pairing meta-json is not valid JSON"}]
        pending = {r.external_id: r for r in host.pairing.pending("telegram")}
        assert sorted(pending) == ["1001", "1002"]  # "Telegram" was stored under this channel's own name
        assert pending["1001"].expires_at - pending["1001"].created_at == PAIRING_TTL_SECS == 15 * 60
        assert json.loads(pending["1001"].meta_json) == {"chat_id": 1001}  # the first request's meta is kept

        host.pairing.approve("telegram", code.lower(), owner_id="ada")
        answers, _ = await probe(host, "pairing", ops=[
            ["resolve", "telegram", "1001"], ["resolve", "TELEGRAM", "1001"], ["resolve", "telegram", "1002"],
            ["allow", "telegram"]])
    assert answers == [{"ok": "ada"}, {"ok": "ada"}, {"ok": None}, {"ok": ["1001"]}]
