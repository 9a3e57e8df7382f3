"""Limits of the buffered host functions, one test per documented limit.

Covers ``airlock.capabilities.{logging,emit,attachments,pairing,websocket,secrets}``; workspace path
validation is tested elsewhere. Nothing here needs a guest: each capability is driven directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.capabilities import attachments as att_mod
from airlock.capabilities import emit as emit_mod
from airlock.capabilities import logging as log_mod
from airlock.capabilities import pairing as pairing_mod
from airlock.capabilities import websocket as ws_mod
from airlock.capabilities.attachments import AttachmentBuffer
from airlock.capabilities.emit import EmitBuffer, EmitLimiter, SlidingWindowLimiter
from airlock.capabilities.logging import LogBudget, LogBuffer
from airlock.capabilities.pairing import PairingCapability
from airlock.capabilities.secrets import SecretsCapability, guest_safe_lookup
from airlock.capabilities.websocket import WebsocketCapability
from airlock.host_config import HostConfig
from airlock.runtime.linker import GuestFault
from airlock.runtime.values import EmittedMessage, InboundAttachment
from airlock.stores.pairing import PAIRING_CODE_ALPHABET, PAIRING_CODE_LENGTH, PairingStore
from airlock.stores.secrets import SecretStore

MiB = 1024 * 1024


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def msg(content: str = "hi", n_attachments: int = 0) -> EmittedMessage:
    atts = tuple(
        InboundAttachment(id=f"a{i}", mime_type="text/plain", filename=None, size_bytes=None, source_url=None,
                          storage_key=None, extracted_text=None, extras_json="{}")
        for i in range(n_attachments)
    )
    return EmittedMessage(user_id="u1", user_name=None, content=content, thread_id=None, metadata_json="{}",
                          attachments=atts)


# --------------------------------------------------------------------------------------------- logging


def test_constants_match_documented_limits() -> None:
    assert log_mod.MAX_ENTRIES == 1000
    assert log_mod.MAX_ENTRY_BYTES == 4096
    assert emit_mod.MAX_PER_CALLBACK == 100
    assert emit_mod.MAX_ATTACHMENTS_PER_MESSAGE == 32
    assert att_mod.MAX_ATTACHMENT_BYTES == 20 * 1024 * 1024
    assert att_mod.MAX_CALLBACK_BYTES == 50 * 1024 * 1024
    assert att_mod.MAX_ID_BYTES == 128
    assert pairing_mod.MAX_ID_BYTES == 256
    assert pairing_mod.MAX_META_BYTES == 4096
    assert ws_mod.MAX_FRAME_BYTES == 1024 * 1024


def test_log_entries_past_1000_are_counted_as_dropped() -> None:
    buf = LogBuffer()
    for i in range(1000):
        buf.add("info", f"m{i}")
    assert len(buf.entries) == 1000
    assert buf.dropped == 0
    buf.add("info", "one too many")
    buf.add("error", "and another")
    assert len(buf.entries) == 1000
    assert buf.dropped == 2
    assert buf.entries[-1] == ("info", "m999")


def test_log_entry_at_4096_bytes_is_kept_whole() -> None:
    buf = LogBuffer()
    exact = "x" * 4096
    buf.add("info", exact)
    assert buf.entries == [("info", exact)]


def test_log_entry_over_4096_bytes_is_truncated_without_splitting_a_character() -> None:
    buf = LogBuffer()
    # 3-byte characters: the 4093-byte cut point falls inside the 1365th one.
    euro = "€" * 2000
    # 4-byte characters: the cut point falls inside the 1024th one.
    emoji = "😀" * 1100
    # ASCII over by one byte.
    ascii_ = "y" * 4097
    for m in (euro, emoji, ascii_):
        buf.add("info", m)
    for (_, out), original in zip(buf.entries, (euro, emoji, ascii_), strict=True):
        raw = out.encode("utf-8")  # strict: would raise on a split surrogate pair / invalid text
        assert len(raw) <= 4096
        assert out.endswith("...")
        body = out[:-3]
        assert original.startswith(body)
        # Not truncated more than one character's worth below the cap.
        assert len(raw) > 4096 - 4 - 3
    assert buf.entries[0][1] == "€" * 1364 + "..."
    assert buf.entries[1][1] == "😀" * 1023 + "..."
    assert buf.entries[2][1] == "y" * 4093 + "..."


def test_unknown_log_level_is_mapped_to_info() -> None:
    buf = LogBuffer()
    buf.add("critical", "a")
    buf.add("", "b")
    buf.add("WARN", "c")
    buf.add("warn", "d")
    assert buf.entries == [("info", "a"), ("info", "b"), ("info", "c"), ("warn", "d")]


def test_flush_writes_channel_prefixed_entries_at_mapped_levels_and_reports_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    buf = LogBuffer()
    for level in ("trace", "debug", "info", "warn", "error", "bogus"):
        buf.add(level, f"msg-{level}")
    for _ in range(1000 - 6):
        buf.add("debug", "filler")
    for _ in range(7):
        buf.add("error", "dropped")
    caplog.set_level(logging.DEBUG, logger="airlock.guest")
    buf.flush("tg")
    guest = [r for r in caplog.records if r.name == "airlock.guest"]
    assert len(guest) == 1000 + 1
    first = [(r.levelno, r.getMessage()) for r in guest[:6]]
    assert first == [
        (logging.DEBUG, "[tg] msg-trace"),
        (logging.DEBUG, "[tg] msg-debug"),
        (logging.INFO, "[tg] msg-info"),
        (logging.WARNING, "[tg] msg-warn"),
        (logging.ERROR, "[tg] msg-error"),
        (logging.INFO, "[tg] msg-bogus"),
    ]
    report = guest[-1]
    assert report.levelno == logging.WARNING
    assert report.getMessage().startswith("[tg] 7 log entries dropped")
    assert "1000" in report.getMessage()


def _guest_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "airlock.guest"]
    caplog.clear()
    return lines


def _flush(budget: LogBudget, *messages: str) -> None:
    buf = LogBuffer()
    for m in messages:
        buf.add("info", m)
    buf.flush(budget.channel, budget)


def test_log_budget_default_is_256_kib_per_minute() -> None:
    assert log_mod.DEFAULT_LOG_BYTES_PER_MINUTE == 256 * 1024
    assert log_mod.LOG_BUDGET_WINDOW_S == 60
    assert LogBudget("ch").bytes_per_minute == 256 * 1024
    assert HostConfig().log_bytes_per_minute == log_mod.DEFAULT_LOG_BYTES_PER_MINUTE


def test_log_budget_drops_past_the_budget_and_reports_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """1000 bytes a minute: across callbacks, lines fit until the budget is spent; the rest of the minute is
    dropped and counted; the first flush of the next minute writes one "dropped" line, then its own lines."""
    clock = FakeClock()
    budget = LogBudget("flood", 1000, clock=clock)
    caplog.set_level(logging.DEBUG, logger="airlock.guest")
    _flush(budget, "a" * 400, "b" * 400)
    _flush(budget, "c" * 200, "d" * 300)  # exactly 1000 with "c"; "d" does not fit
    assert _guest_lines(caplog) == ["[flood] " + "a" * 400, "[flood] " + "b" * 400, "[flood] " + "c" * 200]
    for _ in range(50):  # a flood for the rest of the minute: nothing more is written
        clock.advance(1)
        _flush(budget, "e" * 10)
    assert _guest_lines(caplog) == []
    clock.advance(9.5)  # 59.5 s into the window
    _flush(budget, "f")
    assert _guest_lines(caplog) == []
    clock.advance(0.5)  # the window closed: one line for it, then this flush's own line
    _flush(budget, "g" * 10)
    assert _guest_lines(caplog) == [
        "[flood] 52 guest log lines (801 bytes) dropped in the last minute: over the log budget of 1000 bytes "
        "per minute",
        "[flood] " + "g" * 10,
    ]
    assert budget.dropped_total == 52
    clock.advance(60)  # a window without drops closes silently
    _flush(budget, "h")
    assert _guest_lines(caplog) == ["[flood] h"]


def test_log_budget_counts_utf8_bytes_and_the_per_callback_drop_line(caplog: pytest.LogCaptureFixture) -> None:
    budget = LogBudget("ch", 12, clock=FakeClock())
    caplog.set_level(logging.DEBUG, logger="airlock.guest")
    _flush(budget, "€€€€", "x")  # 12 bytes, then nothing fits
    buf = LogBuffer(dropped=3)  # the entry-cap line is a log line like the others: over budget, dropped
    buf.flush("ch", budget)
    assert _guest_lines(caplog) == ["[ch] €€€€"]
    assert budget.dropped_total == 2


def test_log_budget_refuses_a_non_positive_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        LogBudget("ch", 0)


def test_flush_without_drops_reports_nothing_extra(caplog: pytest.LogCaptureFixture) -> None:
    buf = LogBuffer()
    buf.add("info", "only")
    caplog.set_level(logging.DEBUG, logger="airlock.guest")
    buf.flush("ch")
    assert [r.getMessage() for r in caplog.records if r.name == "airlock.guest"] == ["[ch] only"]


# ------------------------------------------------------------------------------------------------ emit


def test_emit_buffer_caps_at_100_messages_per_callback() -> None:
    buf = EmitBuffer(max_message_size=65536)
    for i in range(100):
        buf.add(msg(f"m{i}"))
    assert len(buf.messages) == 100
    buf.add(msg("101st"))
    assert len(buf.messages) == 100
    assert buf.dropped_over_cap == 1
    assert buf.dropped_too_large == 0
    assert buf.messages[-1].content == "m99"


def test_emit_content_over_max_message_size_in_utf8_bytes_is_dropped() -> None:
    buf = EmitBuffer(max_message_size=10)
    buf.add(msg("a" * 10))  # exactly at the limit
    buf.add(msg("é" * 5))  # 5 characters, 10 bytes
    buf.add(msg("é" * 6))  # 6 characters but 12 bytes: over
    buf.add(msg("a" * 11))
    assert [m.content for m in buf.messages] == ["a" * 10, "é" * 5]
    assert buf.dropped_too_large == 2
    assert buf.dropped_over_cap == 0


def test_emit_with_more_than_32_attachments_is_dropped() -> None:
    buf = EmitBuffer(max_message_size=65536)
    buf.add(msg("ok", n_attachments=32))
    buf.add(msg("too many", n_attachments=33))
    assert [m.content for m in buf.messages] == ["ok"]
    assert buf.dropped_too_large == 1


@pytest.mark.parametrize("content", ["€" * 21, "😀" * 20, "y" * 61])
def test_emit_truncates_long_content_for_near_agent_components(content: str) -> None:
    buf = EmitBuffer(max_message_size=60, truncate_long=True)
    buf.add(msg(content))
    buf.add(msg("y" * 60))  # exactly at the cap: whole
    out = buf.messages[0].content
    assert out.endswith(emit_mod.TRUNCATED_MARK) and content.startswith(out.removesuffix(emit_mod.TRUNCATED_MARK))
    assert 60 - 4 < len(out.encode("utf-8")) <= 60  # cut at a character boundary, within the cap
    assert buf.messages[1].content == "y" * 60
    assert (buf.truncated, buf.dropped_too_large) == (1, 0)


def test_emit_report_logs_both_counts(caplog: pytest.LogCaptureFixture) -> None:
    buf = EmitBuffer(max_message_size=4)
    buf.add(msg("too long"))
    buf.add(msg("too long"))
    for _ in range(100 + 3):
        buf.add(msg("ok"))
    assert (buf.dropped_over_cap, buf.dropped_too_large) == (3, 2)
    caplog.set_level(logging.WARNING, logger="airlock.emit")
    buf.report("slack")
    texts = [r.getMessage() for r in caplog.records if r.name == "airlock.emit"]
    assert len(texts) == 2
    assert texts[0].startswith("[slack] 3 emitted messages dropped")
    assert "100" in texts[0]
    assert texts[1].startswith("[slack] 2 emitted messages dropped")


def test_emit_report_is_silent_without_drops(caplog: pytest.LogCaptureFixture) -> None:
    buf = EmitBuffer(max_message_size=100)
    buf.add(msg())
    caplog.set_level(logging.DEBUG, logger="airlock.emit")
    buf.report("c")
    assert [r for r in caplog.records if r.name == "airlock.emit"] == []


def test_sliding_window_refuses_past_per_minute_and_slides_after_60s() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter(per_minute=100, per_hour=5000, clock=clock)
    assert all(lim.try_acquire() for _ in range(100))
    assert lim.try_acquire() is False
    clock.advance(59.9)
    assert lim.try_acquire() is False
    clock.advance(0.1)  # the first 100 events are now exactly 60 s old
    assert lim.try_acquire() is True


def test_sliding_window_slides_gradually() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter(per_minute=2, per_hour=100, clock=clock)
    assert lim.try_acquire()
    clock.advance(30)
    assert lim.try_acquire()
    assert not lim.try_acquire()
    clock.advance(30)  # the first event leaves the window, the second is 30 s old
    assert lim.try_acquire()
    assert not lim.try_acquire()


def test_sliding_window_hour_cap() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter(per_minute=10, per_hour=25, clock=clock)
    granted = 0
    for _ in range(10):  # ten minutes of trying 10 per minute
        granted += sum(1 for _ in range(10) if lim.try_acquire())
        clock.advance(60)
    assert granted == 25
    clock.advance(3600 - 10 * 60 - 1)  # just under an hour since the first events
    assert lim.try_acquire() is False
    clock.advance(1)  # the first minute's 10 events are now an hour old
    assert lim.try_acquire() is True


def test_emit_limiter_admits_drops_counts_and_logs_running_total(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    lim = EmitLimiter("discord", per_minute=3, per_hour=100, clock=clock)
    caplog.set_level(logging.WARNING, logger="airlock.emit")
    batch = [msg(f"m{i}") for i in range(5)]
    admitted = lim.admit(batch)
    assert [m.content for m in admitted] == ["m0", "m1", "m2"]
    assert lim.dropped == 2
    assert lim.admit([msg("x")]) == []
    assert lim.dropped == 3
    texts = [r.getMessage() for r in caplog.records if r.name == "airlock.emit"]
    assert len(texts) == 2
    assert texts[0].startswith("[discord] 2 messages dropped by the emit rate limit")
    assert texts[0].endswith("2 dropped so far")
    assert texts[1].startswith("[discord] 1 messages dropped")
    assert texts[1].endswith("3 dropped so far")
    clock.advance(60)
    caplog.clear()
    assert len(lim.admit([msg("later")])) == 1
    assert lim.dropped == 3
    assert [r for r in caplog.records if r.name == "airlock.emit"] == []


# ----------------------------------------------------------------------------------------- attachments


def test_attachment_of_exactly_20_mib_is_accepted_and_one_more_byte_refused() -> None:
    buf = AttachmentBuffer()
    buf.store("exact", bytes(20 * MiB))
    assert len(buf.data["exact"]) == 20 * 1024 * 1024
    with pytest.raises(GuestFault, match="larger than"):
        buf.store("over", bytes(20 * MiB + 1))
    assert "over" not in buf.data


def test_attachments_capped_at_50_mib_per_callback() -> None:
    buf = AttachmentBuffer()
    buf.store("a", bytes(20 * MiB))
    buf.store("b", bytes(20 * MiB))
    buf.store("c", bytes(10 * MiB))  # exactly 50 MiB in total
    assert buf.total == 50 * 1024 * 1024
    with pytest.raises(GuestFault, match="exceed"):
        buf.store("d", b"x")
    assert "d" not in buf.data
    assert buf.total == 50 * 1024 * 1024


def test_replacing_an_attachment_counts_only_the_new_size() -> None:
    buf = AttachmentBuffer()
    buf.store("a", bytes(20 * MiB))
    buf.store("b", bytes(20 * MiB))
    buf.store("c", bytes(10 * MiB))
    # Replacing "a" (20 MiB) with 20 MiB keeps the total at 50 MiB: allowed.
    buf.store("a", b"\x01" * (20 * MiB))
    assert buf.data["a"][:1] == b"\x01"
    buf.store("a", b"small")
    assert buf.total == 30 * MiB + 5
    # A replacement that would push the total over is refused and the old bytes stay.
    buf.store("d", bytes(20 * MiB - 5))
    with pytest.raises(GuestFault):
        buf.store("a", bytes(6))
    assert buf.data["a"] == b"small"


@pytest.mark.parametrize("bad_id", ["", "x" * 129, "é" * 65, "a\x00b", "\x00"])
def test_attachment_id_must_be_1_to_128_bytes_without_nul(bad_id: str) -> None:
    buf = AttachmentBuffer()
    with pytest.raises(GuestFault, match="attachment id"):
        buf.store(bad_id, b"data")
    assert buf.data == {}


def test_attachment_id_of_128_bytes_is_accepted() -> None:
    buf = AttachmentBuffer()
    buf.store("x" * 128, b"1")
    buf.store("é" * 64, b"2")
    assert len(buf.data) == 2


# --------------------------------------------------------------------------------------------- pairing


@pytest.fixture
def pairing_store(tmp_path: Path) -> Iterator[PairingStore]:
    store = PairingStore(tmp_path / "pairing.sqlite")
    yield store
    store.close()


@pytest.fixture
def pairing(pairing_store: PairingStore) -> PairingCapability:
    return PairingCapability("telegram", pairing_store)


def test_pairing_refuses_another_channels_name(pairing: PairingCapability, pairing_store: PairingStore) -> None:
    with pytest.raises(GuestFault, match="only available for this channel"):
        pairing.upsert_request("slack", "u1", "{}")
    with pytest.raises(GuestFault):
        pairing.resolve_identity("slack", "u1")
    with pytest.raises(GuestFault):
        pairing.read_allow_from("slack")
    assert pairing_store.pending("slack") == []


@pytest.mark.parametrize("bad_id", ["", "x" * 257, "é" * 129])
def test_pairing_id_must_be_1_to_256_bytes(pairing: PairingCapability, pairing_store: PairingStore,
                                           bad_id: str) -> None:
    with pytest.raises(GuestFault, match="1-256 bytes"):
        pairing.upsert_request("telegram", bad_id, "{}")
    with pytest.raises(GuestFault, match="1-256 bytes"):
        pairing.resolve_identity("telegram", bad_id)
    assert pairing_store.pending("telegram") == []


def test_pairing_id_of_256_bytes_is_accepted(pairing: PairingCapability) -> None:
    _, created = pairing.upsert_request("telegram", "x" * 256, "{}")
    assert created is True
    assert pairing.resolve_identity("telegram", "é" * 128) is None


def test_pairing_meta_json_over_4096_bytes_is_refused(pairing: PairingCapability,
                                                      pairing_store: PairingStore) -> None:
    def meta(size: int) -> str:
        skeleton = json.dumps({"n": ""})
        return json.dumps({"n": "a" * (size - len(skeleton))})

    assert len(meta(4096).encode()) == 4096
    pairing.upsert_request("telegram", "fits", meta(4096))
    with pytest.raises(GuestFault, match="larger than 4096"):
        pairing.upsert_request("telegram", "too-big", meta(4097))
    assert [r.external_id for r in pairing_store.pending("telegram")] == ["fits"]


@pytest.mark.parametrize(
    ("meta_json", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('"str"', "JSON object"), ("null", "JSON object"),
     ("3", "JSON object"), ("[" * 4000, "not valid JSON"), ('{"a":[' * 600, "not valid JSON")],
)
def test_pairing_meta_json_must_be_a_json_object(pairing: PairingCapability, pairing_store: PairingStore,
                                                 meta_json: str, message: str) -> None:
    with pytest.raises(GuestFault, match=message):
        pairing.upsert_request("telegram", "u1", meta_json)
    assert pairing_store.pending("telegram") == []


def test_pairing_upsert_is_idempotent(pairing: PairingCapability, pairing_store: PairingStore) -> None:
    code, created = pairing.upsert_request("telegram", "u1", '{"name": "Ann"}')
    assert created is True
    assert len(code) == PAIRING_CODE_LENGTH
    assert set(code) <= set(PAIRING_CODE_ALPHABET)
    again, created2 = pairing.upsert_request("telegram", "u1", '{"name": "Other"}')
    assert (again, created2) == (code, False)
    assert len(pairing_store.pending("telegram")) == 1
    # Empty meta is accepted as an empty object.
    _, created3 = pairing.upsert_request("telegram", "u2", "")
    assert created3 is True
    assert pairing_store.pending("telegram")[1].meta_json == "{}"


def test_pairing_resolve_and_allow_from_after_approval(pairing: PairingCapability,
                                                        pairing_store: PairingStore) -> None:
    code, _ = pairing.upsert_request("telegram", "u1", "{}")
    assert pairing.resolve_identity("telegram", "u1") is None
    assert pairing.read_allow_from("telegram") == []
    pairing_store.approve("telegram", code.lower(), owner_id="owner-7")
    assert pairing.resolve_identity("telegram", "u1") == "owner-7"
    assert pairing.read_allow_from("telegram") == ["u1"]
    # Another channel's view does not see it, and this one cannot ask for the other's.
    other = PairingCapability("slack", pairing_store)
    assert other.resolve_identity("slack", "u1") is None
    assert other.read_allow_from("slack") == []


# ------------------------------------------------------------------------------------------- websocket


def test_websocket_without_sender_is_refused() -> None:
    ws = WebsocketCapability("discord")
    with pytest.raises(GuestFault, match="no websocket"):
        ws.send_text("hello")


def test_websocket_with_sender_forwards_frames() -> None:
    ws = WebsocketCapability("discord")
    sent: list[str] = []
    ws.sender = sent.append
    ws.send_text("hello")
    ws.send_text("x" * MiB)  # exactly 1 MiB
    assert sent == ["hello", "x" * MiB]


def test_websocket_frame_over_1_mib_is_refused() -> None:
    ws = WebsocketCapability("discord")
    sent: list[str] = []
    ws.sender = sent.append
    with pytest.raises(GuestFault, match="larger than"):
        ws.send_text("x" * (MiB + 1))
    # Counted in UTF-8 bytes, not characters.
    with pytest.raises(GuestFault, match="larger than"):
        ws.send_text("é" * (MiB // 2 + 1))
    assert sent == []


# --------------------------------------------------------------------------------------------- secrets


@pytest.fixture
def secrets_cap() -> SecretsCapability:
    allowed = {"bot_token", "shared_key", "x" * 64, "x" * 65}
    stored = {"bot_token": "v1", "other_token": "v2", "x" * 64: "v3", "x" * 65: "v4"}
    return SecretsCapability(allowed.__contains__, stored.get)


def test_secret_exists_only_when_allowed_and_stored(secrets_cap: SecretsCapability) -> None:
    assert secrets_cap.exists("bot_token") is True
    assert secrets_cap.exists("x" * 64) is True


def test_secret_stored_but_not_allowed_is_hidden(secrets_cap: SecretsCapability) -> None:
    assert secrets_cap.exists("other_token") is False


def test_secret_allowed_but_missing_is_false(secrets_cap: SecretsCapability) -> None:
    assert secrets_cap.exists("shared_key") is False


def test_secret_empty_or_overlong_name_is_false(secrets_cap: SecretsCapability) -> None:
    """Names longer than the store's 64 characters are false even when allowed and "stored"."""
    assert secrets_cap.exists("") is False
    assert secrets_cap.exists("x" * 65) is False


@pytest.mark.parametrize("name", ["hostile_BAD-Name!", "hostile_" + "A" * 70, "hostile_x\n", "hostile_é",
                                  "hostile_\x00", "hostile_" + "a" * 57])
def test_malformed_names_never_reach_the_store_even_when_a_glob_admits_them(name: str, tmp_path: Path) -> None:
    """``hostile_*`` admits any name with that prefix; the store's name rule is checked first."""
    store = SecretStore(tmp_path / "secrets.json", bytes(32))

    def lookup(asked: str) -> str | None:
        return store.get(asked)  # raises SecretStoreError on a malformed name

    cap = SecretsCapability(lambda n: n.startswith("hostile_"), lookup)
    assert cap.allows(name) is False
    assert cap.exists(name) is False
    assert guest_safe_lookup(lookup)(name) is None
    store.set("hostile_" + "a" * 56, "v")
    assert cap.exists("hostile_" + "a" * 56) is True  # 64 characters: the longest name


def test_secret_lookup_not_consulted_for_disallowed_names() -> None:
    looked_up: list[str] = []

    def lookup(name: str) -> str | None:
        looked_up.append(name)
        return "value"

    cap = SecretsCapability(lambda name: name == "ok", lookup)
    assert cap.exists("nope") is False
    assert cap.exists("") is False
    assert looked_up == []
    assert cap.exists("ok") is True
    assert looked_up == ["ok"]
