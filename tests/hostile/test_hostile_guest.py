"""The hostile guest (``hostile_guest``) against the real host: every attack is contained with the right error or
trap class, the benign channel keeps answering while it runs (its p99 is printed), and no secret value reaches a
log, an answer, a SQLite file or the exfiltration sink (``hostile_env.Stage.finish``)."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
from pathlib import Path

import pytest
import wasi_guest
from hostile_env import CALLBACK_TIMEOUT_S, HOSTILE, MIB, Answer, hostile_caps, rss, stage
from hostile_guest import PAGE, decode_counts

from airlock.capabilities.logging import DEFAULT_LOG_BYTES_PER_MINUTE, MAX_ENTRIES, MAX_ENTRY_BYTES
from airlock.capabilities.workspace import MAX_VALUE_BYTES, MAX_WRITES_PER_CALLBACK

pytestmark = pytest.mark.e2e

GUEST_FAILURE = {"error": "internal error"}
"""The documented answer to a webhook whose guest failed (``inbound.server``)."""


@pytest.fixture(autouse=True)
def debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the secret scan reads everything the host logs, debug included


def failures(caplog: pytest.LogCaptureFixture, channel: str = HOSTILE) -> list[str]:
    """The host's one-line reports of the channel's failed callbacks."""
    return [r.getMessage() for r in caplog.records
            if r.name == "airlock.channel" and r.getMessage().startswith(f"[{channel}] on-http-request failed")]


def assert_guest_failure(answer: Answer) -> None:
    assert answer.status == 500, (answer.status, answer.body[:200])
    assert json.loads(answer.body) == GUEST_FAILURE


async def test_loop_recursion_and_abort_trap_with_their_class(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        for op, kind, reason in (("l", "timeout", "interrupt"), ("r", "trap", "call stack exhausted"),
                                 ("M", "panic", "unreachable")):
            assert_guest_failure(await st.order(op, 100_000))
            last = failures(caplog)[-1]
            assert f"guest trap ({kind})" in last and reason in last, last
        assert len(failures(caplog)) == 3  # one line each, no retry storm
        assert (await st.order("e", "still here")).body == struct.pack("<I", 10) + b"still here"
        assert st.host.manager.slots[HOSTILE].active
        await st.finish(f"infinite loop ({CALLBACK_TIMEOUT_S} s deadline), unbounded recursion, abort", caplog, capsys)


@pytest.mark.parametrize(("limit_mib", "pooling"), [(24, True), (40, False)])
async def test_memory_growth_stops_at_the_configured_limit(
    limit_mib: int, pooling: bool, airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    """Two limits, two results; with the pooling allocator (whose slot size is the limit too) and without (the
    store's own limiter alone)."""
    limit = limit_mib * MIB
    async with stage(airlock_home, wat_dir, monkeypatch, memory_limit_bytes=limit, pooling=pooling) as st:
        bomb = await st.order("m", 100_000)  # 6.4 GB at once, then 16 pages at a time until refused
        slow = await st.order("s", 2_000)  # one page at a time, each written, with work in between
        pages_bomb, pages_slow = (struct.unpack("<I", a.body)[0] for a in (bomb, slow))
        assert pages_slow * PAGE == limit, (pages_slow, limit)  # the last page that fits, and not one more
        assert limit - 16 * PAGE < pages_bomb * PAGE <= limit, (pages_bomb, limit)
        again = await st.order("s", 0)  # a fresh instance: nothing of the last callback's memory is left
        assert struct.unpack("<I", again.body)[0] == pages_slow
        await st.finish(f"memory bomb and slow growth to {limit_mib} MiB (pooling {pooling})", caplog, capsys)


async def test_emit_flood_bounded_and_no_dropped_message_acknowledged(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    per_callback = 100  # emit-message: 100 per callback (WIT); emit_rate_limit: 100 per minute by default
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        for round_ in range(3):
            before = len(st.messages.get(HOSTILE, []))
            answer = await st.order("E", 150, f"flood {round_}", "u1")
            await st.settled()
            delivered = len(st.messages.get(HOSTILE, [])) - before
            if 200 <= answer.status < 300:  # an acknowledged webhook: what the guest could emit reached the agent
                assert delivered == per_callback, f"round {round_}: answered {answer.status}, delivered {delivered}"
            else:  # refused for rate: the platform is told to come back later, and nothing was delivered
                assert answer.status == 429 and int(answer.headers["Retry-After"]) > 0, answer
                assert delivered == 0
        assert sum(1 for r in caplog.records if "emitted messages dropped" in r.getMessage()) <= 3
        await st.finish("emit flood (3 x 150 messages)", caplog, capsys)


async def test_log_flood_bounded_per_channel(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        for _ in range(3):
            assert (await st.order("L", MAX_ENTRIES + 50, "x" * (2 * MAX_ENTRY_BYTES))).status == 200
        guest = [r.getMessage() for r in caplog.records
                 if r.name == "airlock.guest" and r.getMessage().startswith(f"[{HOSTILE}]")]
        assert all(len(m.encode()) <= MAX_ENTRY_BYTES + 64 for m in guest)
        logged = sum(len(m.encode()) for m in guest)
        # the budget (issue 13, item 5), the "[hostile] " prefixes and the one "dropped" line of the minute
        assert logged <= DEFAULT_LOG_BYTES_PER_MINUTE + 4 * 1024, f"{logged} bytes of guest log in under a minute"
        await st.finish("log flood (3 x 1050 entries of 8 KiB)", caplog, capsys)


async def test_workspace_write_flood_refused_past_the_limits(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        ok, refused, error = decode_counts((await st.order("W", MAX_WRITES_PER_CALLBACK + 5, "k/", "v")).body)
        assert (ok, refused) == (MAX_WRITES_PER_CALLBACK, 5) and str(MAX_WRITES_PER_CALLBACK) in error
        ok, refused, error = decode_counts((await st.order("V", 1, "big/", MAX_VALUE_BYTES + 1)).body)
        assert (ok, refused) == (0, 1) and "larger than" in error
        assert (await st.order("R", "k/000003e7")).body == b"Sv"  # the 1000th write was committed
        assert (await st.order("R", "k/000003e8")).body == b"N"  # the 1001st was not
        await st.finish("workspace write flood (1005 writes, a value over 1 MiB)", caplog, capsys)


WORKSPACE_FLOOD_RSS_BOUND = 256 * MIB


async def test_workspace_bytes_flood_does_not_grow_host_memory_without_bound(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each write is within the limits (1 MiB, 1000 per callback), but 100 of them per webhook, kept in the
    in-memory workspace, are 100 MiB of host memory per webhook: a channel's workspace needs a total bound."""
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        before = rss()
        for i in range(4):
            await st.order("V", 100, f"m{i}/", MAX_VALUE_BYTES)
        grown = rss() - before
        assert grown < WORKSPACE_FLOOD_RSS_BOUND, f"host RSS grew {grown // MIB} MiB from 4 webhooks"
        await st.finish("workspace bytes flood (4 x 100 x 1 MiB)", caplog, capsys)


async def test_http_flood_stopped_by_the_rate_limit(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    per_minute = 30
    async with stage(airlock_home, wat_dir, monkeypatch, caps=hostile_caps(requests_per_minute=per_minute)) as st:
        answer = await st.order("H", per_minute + 15, "GET", "https://api.allowed.test/ok", "{}")
        ok, refused, error = decode_counts(answer.body)
        assert (ok, refused) == (per_minute, 15) and "rate limit" in error, (ok, refused, error)
        assert len(st.platform.seen) == per_minute
        await st.finish(f"http flood ({per_minute + 15} requests, limit {per_minute}/min)", caplog, capsys)


TRAVERSALS = ["../x", "../../etc/passwd", "/etc/passwd", "a/../../b", "a/./b", ".", "..", "a//b", "a\\b", "..\\x",
              "C:\\x", "c:x", "a\x00b", "x" * 300, "rec/../k", "rec/", "", "./rec/k"]
ODD_BUT_FINE = ["%2e%2e/x", "\u2024\u2024/x", "rec/..x", "rec/ok"]


async def test_workspace_path_traversal_refused(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    before = {p for p in tmp_path.rglob("*")}
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        for path in TRAVERSALS:
            written = await st.order("w", path, "pwned")
            assert written.body.startswith(b"E"), (path, written.body)
            assert (await st.order("R", path)).body == b"N", path
        for path in ODD_BUT_FINE:  # plain keys in a key-value store, never file names
            assert (await st.order("w", path, "fine")).body == b"O", path
            assert (await st.order("R", path)).body == b"Sfine", path
        await st.finish(f"workspace path traversal ({len(TRAVERSALS)} paths)", caplog, capsys)
    created = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")} - {
        p.relative_to(tmp_path).as_posix() for p in before}
    home = airlock_home.relative_to(tmp_path).as_posix()
    # the installed channels' versioned layout (channels.layout) and the home's own files, nothing else
    allowed = re.compile(rf"{home}(/channels(/[a-z]+(/(instance|operator)\.json|/[0-9a-z.+-]+"
                         r"(/(component\.wasm|capabilities\.json|provenance\.json))?)?)?|/(secrets\.json|master\.key|"
                         r"(pairing|state|agents)\.db(-wal|-shm)?|state\.db-writer|admin-token))?")
    unexpected = [p for p in created if not allowed.fullmatch(p)]
    assert unexpected == [], "\n".join(sorted(unexpected))


async def test_wasi_reach_refused_and_unprovided_imports_never_run(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A component that imports WASI gets an empty context: no environment (the master key is in the host's),
    no preopened directory, no socket, no name lookup. One that imports an interface Airlock does not provide,
    or declares more memory than the limit, never runs a callback, and says why in one log line."""
    extra = [(wasi_guest.build_wasi_prober(wat_dir, "wasiprobe"), hostile_caps("wasiprobe")),
             (wasi_guest.build_unprovided_import(wat_dir, "wasihttp"), hostile_caps("wasihttp")),
             (wasi_guest.build_oversized_memory(wat_dir, "fatmem", 4096), hostile_caps("fatmem"))]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        async with stage(airlock_home, wat_dir, monkeypatch, extra=extra) as st:
            answer = await st.post(struct.pack("<H", listener.getsockname()[1]), "wasiprobe")
            assert answer.status == 200, answer
            seen = wasi_guest.decode_wasi(answer.body)
            assert (seen.env_vars, seen.preopens) == (0, 0), seen
            assert "access-denied" in (seen.create_error, seen.connect_error) and not seen.connect_ok, seen
            assert not seen.lookup_ok, seen
            slots = st.host.manager.slots
            assert not slots["wasihttp"].active and slots["wasihttp"].reason.startswith("inactive: on-start failed")
            assert "fatmem" not in slots or not slots["fatmem"].active
            assert (await st.post(b"x", "wasihttp")).status == 404
            assert (await st.post(b"x", "fatmem")).status == 404
            await st.finish("WASI sockets, filesystem, environment; unprovided import; oversized memory",
                            caplog, capsys)
        with pytest.raises(BlockingIOError):
            listener.accept()
    reports = [r.getMessage() for r in caplog.records if "wasihttp" in r.getMessage() or "fatmem" in r.getMessage()]
    assert any("wasihttp inactive" in m for m in reports) and any("fatmem" in m and "not loaded" in m for m in reports)
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"


async def test_oversized_host_call_arguments_contained(
    airlock_home: Path, wat_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Arguments a guest builds in its own memory (up to its 50 MiB) for host functions that take bytes or text:
    each call is refused (a WIT error) or the guest is trapped; the host neither fails nor balloons."""
    async with stage(airlock_home, wat_dir, monkeypatch) as st:
        before = rss()
        for size, target in ((3 * MIB, "http"), (40 * MIB, "http"), (21 * MIB, "attach"), (40 * MIB, "attach"),
                             (2 * MIB, "ws"), (40 * MIB, "ws")):
            answer = await st.order("B", size, target)
            if answer.status == 200:
                assert answer.body.startswith(b"E"), (size, target, answer.body[:100])
            else:
                assert_guest_failure(answer)
        grown = rss() - before
        assert grown < 256 * MIB, f"host RSS grew {grown // MIB} MiB"
        assert not [r for r in caplog.records if "host bug" in r.getMessage()]
        await st.finish("oversized arguments (3-40 MiB) to http-request, store-attachment-data, workspace-write",
                        caplog, capsys)
