"""Unit tests of the websocket runtime's pieces: backoff, URL overrides, start rules, rate window, the frame
request shape, the address check, and the Discord close-code table."""

from __future__ import annotations

import json
import random

import pytest
from ws_support import DISCORD_WS

from airlock.capabilities.websocket import MAX_FRAME_BYTES, WebsocketCapability
from airlock.channels import discord_gateway as dg
from airlock.channels.generic_socket import GenericDriver, placeholder_for, strip_comments, substitute
from airlock.channels.socket_runtime import (
    BACKOFF_CAP_S,
    WEBSOCKET_PATH,
    Backoff,
    CheckedResolver,
    RateWindow,
    frame_request,
    protocol_of,
    resolve_url,
    start_blocker,
)
from airlock.errors import ConfigError
from airlock.manifest import WebsocketCapability as WebsocketSpec
from airlock.runtime.linker import GuestFault


def spec(**kw: object) -> WebsocketSpec:
    data = {**DISCORD_WS, **kw}
    return WebsocketSpec.model_validate({k: v for k, v in data.items() if v is not None})


# ---- backoff -------------------------------------------------------------------------------------------


def test_backoff_doubles_to_a_64_second_cap_with_max_jitter() -> None:
    b = Backoff(rand=lambda: 0.999999)
    delays = [b.next_delay() for _ in range(12)]
    ceilings = [1, 2, 4, 8, 16, 32, 64, 64, 64, 64, 64, 64]
    for d, c in zip(delays, ceilings, strict=True):
        assert c * 0.999 <= d <= c
    assert BACKOFF_CAP_S == 64.0
    assert max(delays) <= 64.0


def test_backoff_full_jitter_spans_zero_to_ceiling() -> None:
    rng = random.Random(7)
    b = Backoff(rand=rng.random)
    for _ in range(8):
        b.next_delay()  # ceiling now 64
    samples = [b.next_delay() for _ in range(2000)]
    assert all(0.0 <= s <= 64.0 for s in samples)
    assert min(samples) < 3.0 and max(samples) > 61.0  # uniform over [0, 64], not a fixed delay
    zero = Backoff(rand=lambda: 0.0)
    assert [zero.next_delay() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_backoff_reset_and_huge_attempt_counts() -> None:
    b = Backoff(rand=lambda: 0.5)
    for _ in range(5000):
        b.next_delay()
    assert b.next_delay() == 32.0  # still capped, no overflow
    b.reset()
    assert b.next_delay() == 0.5
    with pytest.raises(ValueError):
        Backoff(base_s=0)
    with pytest.raises(ValueError):
        Backoff(base_s=2, cap_s=1)


# ---- URLs and start rules ------------------------------------------------------------------------------


def test_override_maps_wss_to_ws_on_the_fake_with_path_and_query() -> None:
    target, overridden = resolve_url("wss://gateway.discord.gg/?v=10&encoding=json",
                                     {"gateway.discord.gg": "http://127.0.0.1:9000"})
    assert (target, overridden) == ("ws://127.0.0.1:9000/?v=10&encoding=json", True)
    target, _ = resolve_url("wss://gateway-x.discord.gg/?v=10", {"gateway-x.discord.gg": "https://fake.test/resume/"})
    assert target == "wss://fake.test/resume/?v=10"


def test_no_override_keeps_wss_and_refuses_plain_ws() -> None:
    assert resolve_url("wss://gateway.discord.gg/", {}) == ("wss://gateway.discord.gg/", False)
    with pytest.raises(ConfigError):
        resolve_url("ws://gateway.discord.gg/", {})
    with pytest.raises(ValueError):
        spec(url="ws://gateway.discord.gg/")  # the capabilities file itself must say wss://


def test_start_blockers() -> None:
    have = {"discord_bot_token"}.__contains__
    assert start_blocker(spec(), have) is None
    assert "missing secret discord_bot_token" in (start_blocker(spec(), lambda n: False) or "")
    assert start_blocker(spec(connect_on_start=False), have) == "connect_on_start is false"
    assert "not supported" in (start_blocker(spec(protocol="slack-socket-mode"), have) or "")
    assert "identify_secret_name" in (start_blocker(spec(protocol="discord", identify_secret_name=None), have) or "")
    wecom = spec(protocol="wecom_aibot", bot_id_secret_name="bid", bot_secret_name="bsec")
    assert "bot_id_secret_name and bot_secret_name" in (start_blocker(spec(protocol="wecom_aibot"), have) or "")
    assert "missing secret bid, bsec" in (start_blocker(wecom, have) or "")
    assert "missing secret bsec" in (start_blocker(wecom, {"bid"}.__contains__) or "")
    assert start_blocker(wecom, {"bid", "bsec"}.__contains__) is None


def test_protocol_selection() -> None:
    assert protocol_of(spec()) == "discord"  # inferred: gateway.discord.gg + identify
    assert protocol_of(spec(protocol="discord", url="wss://example.com/")) == "discord"
    assert protocol_of(spec(identify=None, identify_secret_name=None)) == "generic"
    assert protocol_of(spec(url="wss://example.com/ws")) == "generic"
    assert protocol_of(spec(protocol="wecom_aibot", url="wss://openws.work.weixin.qq.com")) == "wecom_aibot"
    with pytest.raises(ConfigError):
        protocol_of(spec(protocol="slack-socket-mode"))


def test_frame_request_shape() -> None:
    req = frame_request('{"op":0,"t":"MESSAGE_CREATE","s":3,"d":{"content":"héllo"}}')
    assert req.method == "POST" and req.path == WEBSOCKET_PATH == "/__websocket"
    assert json.loads(req.headers_json) == {"content-type": "application/json", "x-airlock-source": "websocket"}
    assert req.query_json == "{}" and req.secret_validated is True
    assert req.body.decode("utf-8").endswith('"héllo"}}')


def test_rate_window_counts_a_rolling_minute() -> None:
    now = [0.0]
    w = RateWindow(3, 60.0, lambda: now[0])
    assert [w.admit() for _ in range(4)] == [True, True, True, False]
    now[0] = 59.9
    assert not w.admit()
    now[0] = 60.0
    assert w.admit()


async def test_resolver_refuses_loopback_unless_exempt() -> None:
    with pytest.raises(OSError, match="non-public"):
        await CheckedResolver(()).resolve("localhost", 443)
    found = await CheckedResolver(["localhost"]).resolve("localhost", 443)
    assert found and all(r["port"] == 443 for r in found)


# ---- capability, drivers -------------------------------------------------------------------------------


def test_capability_frame_limit_and_no_socket() -> None:
    cap = WebsocketCapability("c")
    with pytest.raises(GuestFault, match="no websocket"):
        cap.send_text("{}")
    sent: list[str] = []
    cap.sender = sent.append
    cap.send_text("x" * MAX_FRAME_BYTES)
    with pytest.raises(GuestFault, match="larger than"):
        cap.send_text("x" * (MAX_FRAME_BYTES + 1))
    assert MAX_FRAME_BYTES == 1024 * 1024 and len(sent) == 1


def test_discord_terminal_and_new_session_codes() -> None:
    assert {4004, 4010, 4011, 4012, 4013, 4014} == dg.TERMINAL_CLOSE_CODES
    assert {4007, 4009} == dg.NEW_SESSION_CLOSE_CODES
    assert "authentication failed" in dg.describe_close(4004)
    assert not ({4000, 4001, 4002, 4003, 4005, 4008, 1000, 1001, 1006} & dg.TERMINAL_CLOSE_CODES)


def test_discord_identify_needs_integer_intents_and_drops_comment_keys() -> None:
    driver = dg.DiscordGatewayDriver("d", spec(), "tok")
    assert "_intents_doc" not in driver._identify and driver._identify["intents"] == 4609
    for bad in ({"properties": {}}, {"intents": "4609"}, {"intents": True}, {"intents": -1}):
        with pytest.raises(ConfigError, match="intents"):
            dg.DiscordGatewayDriver("d", spec(identify=bad), "tok")


@pytest.mark.parametrize("frame, ok", [
    ('{"op":3,"d":{"status":"online","since":null,"activities":[],"afk":false}}', True),
    ('{"op":8,"d":{"guild_id":"1","query":"","limit":0}}', True),
    ('{"op":2,"d":{"token":"x"}}', False),
    ('{"op":6,"d":{}}', False),
    ('{"op":1,"d":null}', False),
    ('{"op":true}', False),
    ('[1,2]', False),
    ("not json", False),
    ('{"op":1,"op":3,"d":null}', False),  # a gateway reading the first "op" would see a heartbeat
    ('{"op":3,"d":{"status":"online","status":"idle"}}', False),
    ('{"op":3,"d":' + "[" * 200_000 + "]" * 200_000 + "}", False),  # RecursionError must be a GuestFault
])
def test_discord_guest_frames_are_checked(frame: str, ok: bool) -> None:
    driver = dg.DiscordGatewayDriver("d", spec(), "tok")
    if ok:
        driver.check_guest_frame(frame)
    else:
        with pytest.raises(GuestFault):
            driver.check_guest_frame(frame)


def test_discord_resume_url_must_stay_under_the_gateway_domain() -> None:
    driver = dg.DiscordGatewayDriver("d", spec(), "tok")
    assert driver._checked_resume_url("wss://gateway-us-east1-b.discord.gg") == \
        "wss://gateway-us-east1-b.discord.gg/?v=10&encoding=json"
    for bad in ("wss://evil.example.com", "ws://gateway-us-east1-b.discord.gg", "wss://discord.gg.evil.com",
                "https://gateway.discord.gg", 42, None):
        assert driver._checked_resume_url(bad) is None


def test_generic_identify_placeholder() -> None:
    assert placeholder_for("my_api_key") == "{MY_API_KEY}"
    body, n = substitute({"auth": {"token": "Bearer {MY_API_KEY}"}, "list": ["{MY_API_KEY}", 3], "n": 1},
                         "{MY_API_KEY}", "s3cr3t")
    assert body == {"auth": {"token": "Bearer s3cr3t"}, "list": ["s3cr3t", 3], "n": 1} and n == 2
    assert strip_comments({"_doc": 1, "a": [{"_x": 2, "b": 3}]}) == {"a": [{"b": 3}]}
    s = WebsocketSpec.model_validate({"url": "wss://example.com/ws", "connect_on_start": True,
                                      "identify_secret_name": "my_api_key",
                                      "identify": {"type": "auth", "key": "{MY_API_KEY}", "other": "{OTHER}"}})
    driver = GenericDriver("g", s, "s3cr3t")
    assert json.loads(driver._identify or "") == {"type": "auth", "key": "s3cr3t", "other": "{OTHER}"}
    assert driver.ws_ping_interval_s == 30.0
