"""The websocket runtime and the Discord gateway driver against the fake Discord, with a list standing in for
the guest (the end-to-end tests with a real component are in test_websocket_e2e.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from fake_discord import DEFAULT_TOKEN, FakeDiscord
from ws_support import DISCORD_WS, HarnessFactory, Sleeps, discord, fast_settings, harness, sleeps

from airlock.channels.socket_runtime import GUEST_FRAMES_PER_MINUTE, MAX_PENDING_FRAMES
from airlock.runtime.linker import GuestFault

__all__ = ["discord", "harness", "sleeps"]  # fixtures used below

GW = "gateway.discord.gg"
NO_ZOMBIES = {**DISCORD_WS, "max_missed_heartbeat_acks": 1000}
"""For tests of heartbeat timing whose timer is injected (5 ms real): a late ACK must not end the connection."""


def events(frames: list[str]) -> list[tuple[str, Any]]:
    out = []
    for f in frames:
        frame = json.loads(f)
        assert frame["op"] == 0  # only dispatches reach the guest
        out.append((frame["t"], frame["s"]))
    return out


async def ready(discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps, **kw: Any) -> Any:
    h = harness(kw.pop("spec", DISCORD_WS), fast_settings({GW: discord.base_url}, sleeps, **kw))
    assert await h.runtime.start()
    await h.wait_frames(1)
    return h


async def test_identify_ready_and_dispatches_reach_the_guest_in_order(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    conn = discord.connections[0]
    assert conn.path == "/?v=10&encoding=json"
    assert conn.identify is not None and conn.identify["token"] == DEFAULT_TOKEN
    assert conn.identify["intents"] == 4609 and "_intents_doc" not in conn.identify
    assert conn.identify["properties"] == {"os": "linux", "browser": "airlock-test", "device": "airlock-test"}
    for i in range(30):
        await discord.dispatch("MESSAGE_CREATE", discord.message_create(f"m{i}"))
    await h.wait_frames(31)
    assert events(h.frames)[0] == ("READY", 1)
    assert [json.loads(f)["d"]["content"] for f in h.frames[1:]] == [f"m{i}" for i in range(30)]
    assert h.runtime.status.state == "connected" and h.runtime.status.frames_in == 31
    assert DEFAULT_TOKEN not in "".join(h.frames)


async def test_heartbeats_carry_the_last_sequence(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    await discord.dispatch("MESSAGE_CREATE", discord.message_create("x"))
    await h.wait_frames(2)
    conn = discord.connections[0]
    await discord.wait_for(lambda: len(conn.heartbeats) >= 2, "two heartbeats")
    assert conn.heartbeats[-1] == 2 and discord.heartbeat_seq_errors == []


async def test_op1_gets_a_heartbeat_at_once(harness: HarnessFactory, sleeps: Sleeps) -> None:
    async with FakeDiscord(heartbeat_interval_ms=60_000) as fake:
        h = harness(DISCORD_WS, fast_settings({GW: fake.base_url}, sleeps, rand=lambda: 0.9))
        await h.runtime.start()
        await h.wait_frames(1)
        conn = fake.connections[0]
        assert conn.heartbeats == []  # the first scheduled one is 54 s away
        await fake.send_op(1)
        await fake.wait_for(lambda: len(conn.heartbeats) == 1, "heartbeat after op 1", timeout=5)
        assert conn.heartbeats == [1]
        await h.runtime.stop()


async def test_first_heartbeat_waits_interval_times_jitter(
        harness: HarnessFactory, sleeps: Sleeps) -> None:
    """The heartbeat waits go through the injected timer (recorded; really at most 5 ms), so the test reads what
    the gateway asked to wait instead of timing it on a shared machine."""
    timer = Sleeps()
    async with FakeDiscord(heartbeat_interval_ms=1000) as slow:
        h = harness(NO_ZOMBIES, fast_settings({GW: slow.base_url}, sleeps, rand=lambda: 0.3, timer=timer))
        await h.runtime.start()
        await slow.wait_for(lambda: len(slow.connections[0].heartbeats) >= 3 if slow.connections else False,
                            "three heartbeats")
        await h.runtime.stop()
    assert timer.delays[:3] == [pytest.approx(0.3), 1.0, 1.0]  # 1 s * jitter 0.3 first, then the interval
    assert sleeps.delays == []  # no reconnect backoff was involved


async def test_resumable_close_reconnects_with_backoff_to_the_resume_url_and_resumes(
        harness: HarnessFactory, sleeps: Sleeps) -> None:
    resume_host = "gateway-resume.discord.gg"
    async with FakeDiscord(heartbeat_interval_ms=200, resume_gateway_url=f"wss://{resume_host}") as fake:
        overrides = {GW: fake.base_url, resume_host: fake.base_url + "/resume"}
        h = harness(DISCORD_WS, fast_settings(overrides, sleeps))
        await h.runtime.start()
        await h.wait_frames(1)
        await fake.dispatch("MESSAGE_CREATE", fake.message_create("before"))
        await h.wait_frames(2)
        await fake.close_current(4000)
        # While the client is away, a dispatch is stored; RESUME must replay it.
        await fake.dispatch_to_latest_session("MESSAGE_CREATE", fake.message_create("while away"))
        await h.wait_frames(4)
        assert len(fake.connections) == 2 and fake.identify_count == 1 and fake.resume_count == 1
        second = fake.connections[1]
        assert second.path == "/resume/?v=10&encoding=json"
        assert second.resume == {"token": DEFAULT_TOKEN, "session_id": next(iter(fake.sessions)), "seq": 2}
        assert [t for t, _ in events(h.frames)] == ["READY", "MESSAGE_CREATE", "MESSAGE_CREATE", "RESUMED"]
        assert json.loads(h.frames[2])["d"]["content"] == "while away"
        assert sleeps.delays == [0.5]  # backoff attempt 0: rand 0.5 * 1 s
        assert "4000" in (h.runtime.status.last_close or "")


async def test_repeated_failures_back_off_exponentially_and_reset_after_a_healthy_connection(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    now = [1000.0]
    discord.close_after_session.extend([4000] * 5)
    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps, rand=lambda: 1.0,
                                          clock=lambda: now[0]))
    await h.runtime.start()
    await discord.wait_for(lambda: len(discord.connections) == 6 and discord.current is not None, "sixth session")
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    now[0] += 61  # the sixth connection stays up past healthy_after_s
    await discord.close_current(4000)
    await discord.wait_for(lambda: len(discord.connections) == 7 and discord.current is not None, "seventh")
    assert sleeps.delays[-1] == 1.0  # attempt count was reset


@pytest.mark.parametrize("code", [4004, 4010, 4011, 4012, 4013, 4014])
async def test_terminal_close_codes_stop_without_reconnecting(
        code: int, discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps,
        caplog: pytest.LogCaptureFixture) -> None:
    discord.fail_identify_with = code
    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps))
    await h.runtime.start()
    await h.wait_state("stopped")
    await asyncio.sleep(0.3)  # would be many reconnects with the 5 ms test backoff
    assert len(discord.connections) == 1 and sleeps.delays == []
    assert f"close {code}" in h.runtime.status.reason and "not retried" in h.runtime.status.reason
    assert any(r.levelno == logging.ERROR and f"close {code}" in r.getMessage() for r in caplog.records)


async def test_wrong_token_is_4004_and_stops(harness: HarnessFactory, sleeps: Sleeps, discord: FakeDiscord) -> None:
    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps), secrets={"discord_bot_token": "wrong"})
    await h.runtime.start()
    await h.wait_state("stopped")
    assert "authentication failed" in h.runtime.status.reason and len(discord.connections) == 1


@pytest.mark.parametrize("code", [4007, 4009])
async def test_invalid_seq_and_session_timeout_identify_again(
        code: int, discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    await discord.close_current(code)
    await discord.wait_for(lambda: discord.ready_count == 2, "a second READY")
    assert discord.identify_count == 2 and discord.resume_count == 0
    await h.wait_frames(2)


async def test_op7_reconnect_resumes(discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    await discord.send_op(7)
    await h.wait_frames(2)
    assert events(h.frames)[1][0] == "RESUMED" and discord.resume_count == 1
    assert discord.connections[0].client_close_code not in (1000, 1001)  # the session stays resumable


async def test_op9_false_identifies_afresh_after_one_to_five_seconds(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps, rand=lambda: 0.25)
    await discord.send_op(9, False)
    await discord.wait_for(lambda: discord.ready_count == 2, "fresh READY")
    assert sleeps.delays == [2.0]  # 1 + 4 * 0.25
    assert discord.identify_count == 2 and discord.resume_count == 0
    await h.wait_frames(2)


async def test_op9_true_resumes(discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    await discord.send_op(9, True)
    await h.wait_frames(2)
    assert discord.resume_count == 1 and events(h.frames)[1][0] == "RESUMED"


async def test_unacknowledged_heartbeats_make_a_zombie_that_is_resumed(
        harness: HarnessFactory, sleeps: Sleeps) -> None:
    async with FakeDiscord(heartbeat_interval_ms=100, ack_heartbeats=False) as fake:
        spec = {**DISCORD_WS, "max_missed_heartbeat_acks": 2}
        h = harness(spec, fast_settings({GW: fake.base_url}, sleeps))
        await h.runtime.start()
        await fake.wait_for(lambda: len(fake.connections) >= 2 and fake.resume_count >= 1, "zombie reconnect")
        first = fake.connections[0]
        assert len(first.heartbeats) == 2  # max_missed_heartbeat_acks unanswered, then closed
        assert first.client_close_code == 4000
        assert "zombie" in (h.runtime.status.last_close or "")


async def test_heartbeat_interval_has_a_floor(harness: HarnessFactory, sleeps: Sleeps) -> None:
    timer = Sleeps()
    async with FakeDiscord(heartbeat_interval_ms=1) as fake:
        h = harness(NO_ZOMBIES, fast_settings({GW: fake.base_url}, sleeps, timer=timer))
        await h.runtime.start()
        await fake.wait_for(lambda: len(fake.connections[0].heartbeats) >= 3 if fake.connections else False,
                            "three heartbeats")
        await h.runtime.stop()
    assert timer.delays[:3] == [pytest.approx(0.025), 0.05, 0.05]  # the 50 ms floor (x jitter 0.5), not 1 ms


async def test_guest_send_goes_out_checked_and_rate_limited(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    presence = '{"op":3,"d":{"since":null,"activities":[],"status":"online","afk":false}}'
    await asyncio.to_thread(h.capability.send_text, presence)
    await discord.wait_for(lambda: bool(discord.connections[0].commands), "op 3")
    assert discord.connections[0].commands[0]["op"] == 3
    with pytest.raises(GuestFault, match="sent by the host"):
        await asyncio.to_thread(h.capability.send_text, '{"op":2,"d":{"token":"stolen?"}}')
    with pytest.raises(GuestFault, match="only available inside a callback"):
        h.capability.send_text(presence)  # called on the event loop itself: refused instead of deadlocking

    def burst() -> int:
        sent = 1
        try:
            while True:
                h.capability.send_text(presence)
                sent += 1
        except GuestFault as exc:
            assert "rate limit" in str(exc)
        return sent

    assert await asyncio.to_thread(burst) == GUEST_FRAMES_PER_MINUTE
    await discord.wait_for(lambda: len(discord.connections[0].commands) == GUEST_FRAMES_PER_MINUTE, "all sent")
    assert not discord.connections[0].closed


async def test_guest_send_without_an_open_socket_fails(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    discord.fail_identify_with = 4004
    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps))
    await h.runtime.start()
    await h.wait_state("stopped")
    with pytest.raises(GuestFault, match="no websocket is open"):
        await asyncio.to_thread(h.capability.send_text, '{"op":3,"d":{}}')
    await h.runtime.stop()
    with pytest.raises(GuestFault, match="no websocket is open"):
        await asyncio.to_thread(h.capability.send_text, '{"op":3,"d":{}}')


async def test_slow_guest_pauses_reading_but_loses_nothing(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    gate = asyncio.Event()
    high_water = [0]

    async def slow(text: str) -> None:
        await gate.wait()

    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps), deliver=slow)
    await h.runtime.start()
    await discord.wait_for(lambda: discord.current is not None, "session")
    total = MAX_PENDING_FRAMES + 50
    for i in range(total):
        await discord.dispatch("MESSAGE_CREATE", discord.message_create(f"m{i}"))
    for _ in range(50):
        high_water[0] = max(high_water[0], h.runtime._frames.qsize())
        await asyncio.sleep(0.005)
    assert high_water[0] <= MAX_PENDING_FRAMES
    await asyncio.sleep(0.6)  # three heartbeat intervals with the reader blocked on the guest
    gate.set()
    await h.wait_frames(total + 1)
    assert [json.loads(f)["d"]["content"] for f in h.frames[1:]] == [f"m{i}" for i in range(total)]
    assert len(discord.connections) == 1  # unread ACKs behind the backlog did not look like a zombie


async def test_stop_leaves_no_task_and_closes_with_1000(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    h = await ready(discord, harness, sleeps)
    await h.runtime.stop()
    await discord.wait_for(lambda: discord.connections[0].closed, "server saw the close")
    assert discord.connections[0].client_close_code == 1000
    leftovers = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("ws-")]
    assert leftovers == [] and h.runtime.status.state == "stopped"
    await h.runtime.stop()  # idempotent


async def test_upgrade_refused_with_401_is_terminal(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    discord.refuse_upgrade = 401
    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps))
    await h.runtime.start()
    await h.wait_state("stopped")
    assert discord.refused_upgrades == 1 and "HTTP 401" in h.runtime.status.reason


async def test_upgrade_refused_with_503_is_retried(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps) -> None:
    discord.refuse_upgrade = 503
    h = harness(DISCORD_WS, fast_settings({GW: discord.base_url}, sleeps))
    await h.runtime.start()
    await discord.wait_for(lambda: discord.refused_upgrades >= 3, "retries")
    discord.refuse_upgrade = None
    await h.wait_frames(1)
    assert len(sleeps.delays) >= 3 and sleeps.delays[:3] == [0.5, 1.0, 2.0]


async def test_no_override_and_a_loopback_name_is_refused_before_connecting(
        harness: HarnessFactory, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airlock.websocket")
    h = harness({**DISCORD_WS, "url": "wss://localhost:1/?v=10", "protocol": "discord"}, fast_settings({}, sleeps))
    await h.runtime.start()
    for _ in range(200):
        if sleeps.delays:
            break
        await asyncio.sleep(0.01)
    assert h.runtime.status.connections == 0
    assert "non-public" in caplog.text


async def test_override_downgrade_is_logged(
        discord: FakeDiscord, harness: HarnessFactory, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    await ready(discord, harness, sleeps)
    assert any("upstream override" in r.getMessage() and "ws://127.0.0.1" in r.getMessage()
               and r.levelno == logging.WARNING for r in caplog.records)
    assert DEFAULT_TOKEN not in caplog.text
