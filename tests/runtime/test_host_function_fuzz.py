"""Every host function answers a guest's input with a result or a WIT error, never a host bug (issue 13, defect 3).

The fuzz guest (``tests/guests/fuzzguest.py``) calls the host function its webhook body selects with the
body's strings, through the real canonical ABI, on both call paths (fast and plain), into a real ``Channel``:
the encrypted secret store, SQLite pairing and workspace stores, the http capability and its egress (the one
allow-listed host is overridden to a closed port on 127.0.0.1). First the hostile inputs the hostile test run
found, then hypothesis with random strings, lengths and binary (non-UTF-8) arguments.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import fuzzguest
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from airlock.capabilities.egress import Egress
from airlock.channels.channel import CallOutcome, Channel, HostServices
from airlock.errors import GuestTrap, HostBug
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.manifest import parse_capabilities
from airlock.messages.sqlite import SqliteMessageLog
from airlock.runtime.engine import Runtime
from airlock.runtime.instance import Sandbox
from airlock.runtime.values import IncomingHttpRequest
from airlock.stores import PairingStore, SecretStore

SEL = {name: i for i, name in enumerate(fuzzguest.FUNCTIONS)}
LONG_OK = "hostile_" + "a" * 56  # 64 characters: the longest valid secret name
CAPS = {
    "name": "fuzz", "version": "0.1.0", "wit_version": "0.1.0",
    "capabilities": {
        "channel": {"allowed_paths": ["/webhook/fuzz"], "durable_workspace_paths": ["durable/"],
                    "emit_rate_limit": {"messages_per_minute": 100000, "messages_per_hour": 1000000}},
        # A prefix glob admits "hostile_BAD-Name!" by prefix: only the name rule keeps it from the store.
        "secrets": {"allowed_names": ["bot_token", "hostile_*"]},
        "http": {"allowlist": [{"host": "api.example.com"}],
                 "rate_limit": {"requests_per_minute": 100000, "requests_per_hour": 1000000}},
    },
    "config": {"dm_policy": "open"},
}


class Recorder:
    """The secret store's ``get``, recording every name that reached the store."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store
        self.names: list[str] = []

    def __call__(self, name: str) -> str | None:
        self.names.append(name)
        return self.store.get(name)


@pytest.fixture(scope="module")
def fuzz_wasm(wat_dir: Path) -> Path:
    return fuzzguest.build_component(wat_dir)


@pytest.fixture(scope="module", params=[True, False], ids=["fast", "plain"])
def channel(request: pytest.FixtureRequest, runtime: Runtime, fuzz_wasm: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channel]:
    home = tmp_path_factory.mktemp("fuzz-home")
    with pytest.MonkeyPatch.context() as mp:  # the autouse master_key fixture is function-scoped
        mp.setenv("AIRLOCK_MASTER_KEY", "7a" * 32)
        store = SecretStore.open(home)
    for name in ("bot_token", "hostile_ok", LONG_OK):
        store.set(name, f"value-of-{name}")
    pairing, durable = PairingStore(home / "pairing.db"), SqliteMessageLog(home / "state.db")
    egress = Egress(upstream_overrides={"api.example.com": "http://127.0.0.1:9"})
    sandbox = Sandbox(runtime, fastpath=request.param)
    services = HostServices(sandbox=sandbox, secret_lookup=Recorder(store), pairing=pairing, durable=durable,
                            egress=egress, memory_limit_bytes=16 * 1024 * 1024, fuel_per_callback=50_000_000)
    chan = Channel(parse_capabilities(json.dumps(CAPS), "fuzz"), runtime.load(fuzz_wasm), services)
    assert (sandbox.prepared(chan.loaded) is not None) is request.param  # each path really is taken
    yield chan
    egress.close()
    pairing.close()
    durable.close()


def call(channel: Channel, function: str, *args: str | bytes, n: int = 0) -> CallOutcome:
    raw = [a.encode() if isinstance(a, str) else a for a in args]
    body = fuzzguest.encode(SEL[function], n, *raw)
    return channel.http_request(IncomingHttpRequest("POST", "/webhook/fuzz", "{}", "{}", body, False))


def reached_store(channel: Channel) -> list[str]:
    recorder = channel.services.secret_lookup
    assert isinstance(recorder, Recorder)
    return recorder.names


def assert_no_host_bug(out: CallOutcome) -> None:
    assert not isinstance(out.error, HostBug), out.error
    assert out.state is not None and out.state.host_bug is None
    for host_call in out.state.trace:  # what a guest is told is safe: no traceback, no host path
        assert host_call.error is None or ("Traceback" not in host_call.error and "/tmp" not in host_call.error)


def returned(out: CallOutcome) -> tuple[int, int, int]:
    """The guest's echo of the import's return area: (discriminant or value, word 1, word 2)."""
    assert out.ok, out.error
    body: bytes = out.value.body
    return struct.unpack_from("<I4xII", body) if len(body) == 16 else (-1, 0, 0)


def error_of(out: CallOutcome, function: str) -> str | None:
    [host_call] = [c for c in out.state.trace if c.function == function] if out.state else []
    return host_call.error


# ---- the hostile inputs the test run found ------------------------------------------------------------


@pytest.mark.parametrize("name", ["hostile_BAD-Name!", "hostile_" + "a" * 57, "hostile_ok\n", "HOSTILE_OK",
                                  "hostile_ok\x00", "hostile_é", ""])
def test_secret_exists_with_a_malformed_name_is_false_and_never_reaches_the_store(
    channel: Channel, name: str
) -> None:
    before = len(reached_store(channel))
    out = call(channel, "secret-exists", name)
    assert_no_host_bug(out)
    assert returned(out)[0] == 0
    assert reached_store(channel)[before:] == []


def test_secret_exists_is_true_for_a_well_formed_allowed_stored_name(channel: Channel) -> None:
    for name in ("bot_token", "hostile_ok", LONG_OK):
        out = call(channel, "secret-exists", name)
        assert returned(out)[0] == 1, name
    assert returned(call(channel, "secret-exists", "hostile_missing"))[0] == 0


@pytest.mark.parametrize("url", [
    "https://api.example.com/send?key={HOSTILE_" + "A" * 70 + "}",
    "https://api.example.com/{HOSTILE_BAD}/x",  # well-formed, allowed, not stored
    "https://api.example.com/x?k={BOT_TOKEN_" + "X" * 5000 + "}",
])
def test_http_placeholder_with_a_hostile_name_is_a_wit_error(channel: Channel, url: str) -> None:
    before = len(reached_store(channel))
    out = call(channel, "http-request", "GET", url, "{}", n=1000)
    assert_no_host_bug(out)
    assert returned(out)[0] == 1  # err(...)
    assert "may not use secret placeholder" in (error_of(out, "http-request") or "")
    assert all(len(name) <= 64 for name in reached_store(channel)[before:])


def test_pairing_meta_nested_past_the_recursion_limit_is_a_wit_error(channel: Channel) -> None:
    out = call(channel, "pairing-upsert-request", "fuzz", "user-1", "[" * 4000)
    assert_no_host_bug(out)
    assert returned(out)[0] == 1
    assert error_of(out, "pairing-upsert-request") == "pairing meta-json is not valid JSON"


# ---- fuzz -----------------------------------------------------------------------------------------------

HOSTILE = ["hostile_BAD-Name!", "hostile_" + "a" * 70, "{HOSTILE_" + "A" * 70 + "}", "../../etc/passwd", "/abs",
           "\x00", "a\\b", "fuzz", "[" * 3000, '{"a":' * 2000, "{}", "é" * 1000, "\U0001f600" * 300, ""]
placeholder = st.from_regex(r"[A-Z][A-Z0-9_]{0,90}", fullmatch=True).map(lambda name: f"{{{name}}}")
text_arg = st.one_of(
    st.just("fuzz"),  # the channel's own name: the pairing functions go past their first check
    st.text(max_size=200),
    st.text(alphabet="{}[]\"\\:/._-%?=&#aAzZ09 \n\x00", max_size=120),
    st.sampled_from(HOSTILE),
    st.integers(0, 70_000).map(lambda k: "x" * k),
    placeholder.map(lambda p: f"https://api.example.com/p/{p}"),
    st.builds(lambda tail: f"https://api.example.com/{tail}", st.text(max_size=80)),
)
any_arg = st.one_of(text_arg.map(str.encode), st.binary(max_size=200))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(function=st.sampled_from(fuzzguest.FUNCTIONS), n=st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)),
       args=st.lists(any_arg, max_size=3))
@example(function="pairing-upsert-request", n=0, args=[b"fuzz", b"id", b"{" * 4000])
@example(function="secret-exists", n=0, args=[b"hostile_BAD-Name!"])
def test_random_arguments_never_cause_a_host_bug(channel: Channel, function: str, n: int, args: list[bytes]) -> None:
    before = len(reached_store(channel))
    out = call(channel, function, *args, n=n)
    assert_no_host_bug(out)
    # A guest trap is fine (non-UTF-8 string, an out-of-range log level); anything else is a result.
    assert out.error is None or isinstance(out.error, GuestTrap), out.error
    assert all(len(name) <= 64 and name.isascii() for name in reached_store(channel)[before:])
    calls = [c for c in out.state.trace if c.function == function] if out.state else []
    # --hypothesis-show-statistics: how often each function was reached, refused, or trapped in the ABI.
    event(f"{function}: " + ("guest trap" if out.error else "refused" if calls and calls[0].error else "called"))


url_part = st.one_of(st.text(max_size=40), placeholder, st.sampled_from(["{BOT_TOKEN}", "{HOSTILE_OK}", "%2e%2e", "?"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "get", "DELETE", "CONNECT", "G\x00T"]),
       parts=st.lists(url_part, max_size=4),
       headers=st.one_of(st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=40), placeholder),
                                         max_size=4).map(json.dumps), text_arg))
def test_random_http_requests_never_cause_a_host_bug(channel: Channel, method: str, parts: list[str],
                                                     headers: str) -> None:
    """Requests that pass the allow-list more often: placeholders in the path, query and headers (the
    allow-listed host is overridden to a closed port, so nothing leaves 127.0.0.1)."""
    before = len(reached_store(channel))
    url = "https://api.example.com/" + "/".join(parts[:2]) + ("?q=" + "".join(parts[2:]) if parts[2:] else "")
    out = call(channel, "http-request", method, url, headers, n=2000)
    assert_no_host_bug(out)
    assert out.ok and returned(out)[0] == 1  # every attempt is refused or fails to connect: a WIT error
    assert all(len(name) <= 64 and name.isascii() for name in reached_store(channel)[before:])
    event((error_of(out, "http-request") or "")[:30])


def test_lengths_past_the_guest_memory_are_a_guest_trap(channel: Channel) -> None:
    """A (pointer, length) pair beyond the guest's memory: the canonical ABI refuses it (the guest's fault)."""
    body = struct.pack("<5I", SEL["workspace-write"], 0, 0x7FFF_FFFF, 3, 0) + b"abc"
    out = channel.http_request(IncomingHttpRequest("POST", "/webhook/fuzz", "{}", "{}", body, False))
    assert isinstance(out.error, GuestTrap), out.error
    assert_no_host_bug(out)


async def test_emitted_metadata_nested_past_the_recursion_limit_is_refused_not_a_500(
    airlock_home: Path, install_channel: Any, fuzz_wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The host re-checks dm_policy on every emitted message and reads the guest's metadata-json to do so
    (``channels.manager``): JSON nested deeper than the parser's recursion limit is a refused message, not an
    exception in the webhook handler."""
    caps = json.loads(json.dumps(CAPS))
    del caps["capabilities"]["http"]
    install_channel(fuzz_wasm, caps, dm_policy="pairing")
    body = fuzzguest.encode(SEL["emit-message"], 0, b"stranger", b"hello", b"[" * 5000)
    async with AirlockHost(HostConfig.build(home=airlock_home, listen_port=0)) as host, \
            aiohttp.ClientSession() as http:
        async with http.post(f"{host.base_url}/webhook/fuzz", data=body) as resp:
            assert resp.status == 200, await resp.text()
        assert host.bus.qsize() == 0
    assert any("refused by the host" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)
