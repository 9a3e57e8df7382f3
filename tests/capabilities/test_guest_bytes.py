"""Big ``list<u8>`` values between guest and host (issue 13, defect 4).

- A guest's ``list<u8>`` argument to a host function is capped by ``HostConfig.max_guest_list_bytes``:
  an ``http-request`` body over it gets a WIT error and nothing is sent. Driven through a WAT channel guest
  (tests/guests/fetchguest.py) that POSTs its own webhook body, on both call paths.
- A response reaches the guest through the http adapter (``runtime.adapter``) byte for byte, on both call paths
  and in both worlds; its body counts against the callback's memory limit (it must fit in the adapter's memory:
  a WIT error otherwise, before anything is handed out), and the adapter's memory holds one call at a time.
- The peak extra RSS of one 9 MiB response to a guest's ``http-request``, measured in a process of its own by
  ``bench/http_memory.py`` (the benchmark line), is at most ``RSS_TARGET`` times the body, for an Airlock-world
  and a near:agent component.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fetchguest
import pytest
from aiohttp import web
from fake_base import serving_on_thread

from airlock.capabilities.egress import Egress
from airlock.channels.channel import Channel, HostServices
from airlock.host import AirlockHost
from airlock.host_config import DEFAULT_MAX_GUEST_LIST_BYTES, HostConfig
from airlock.manifest import parse_capabilities
from airlock.runtime.adapter import CHUNK_BYTES
from airlock.runtime.engine import Runtime
from airlock.runtime.instance import Sandbox
from airlock.runtime.linker import ADAPTER_RESERVE_BYTES
from airlock.runtime.values import IncomingHttpRequest
from airlock.stores.pairing import PairingStore

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
#: The issue's target: peak extra memory at most 3x the response. Measured 2.5x: the host's copy, the adapter's
#: and the guest's (the host's is dropped once the adapter has it all), plus one 64 KiB chunk's conversion
#: (~5 MiB). Without the adapter: 81x.
RSS_TARGET = 3


Reply = bytes | Callable[[web.Request], bytes]
REPLIES: list[Reply] = []
"""What the upstream answers (the last entry, or what it makes of the request; "ok" while empty)."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[int]]]:
    """A 127.0.0.1 server that records the size of every request body it gets and answers ``REPLIES[-1]``."""
    sizes: list[int] = []

    async def body(request: web.Request) -> web.Response:
        sizes.append(len(await request.read()))
        reply = REPLIES[-1] if REPLIES else b"ok"
        return web.Response(body=reply if isinstance(reply, bytes) else reply(request))

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_route("*", "/body", body)
    with serving_on_thread(app) as url:
        yield url, sizes


TOKEN = "tok-9f8e7d6c5b4a"
"""The fetch channel's credential, injected as a bearer token into every request to the upstream."""
CREDENTIALS = {"fetch": {"secret_name": "fetch_token", "location": {"type": "bearer"},
                         "host_patterns": [fetchguest.HOST_NAME]}}


def fetch_channel(
    runtime: Runtime, tmp: Path, base: str, egress_list: list[Egress], *, world: str = "airlock", polls: int = 1,
    memory: int = 50 * MIB, **sandbox: Any,
) -> Channel:
    egress = Egress(upstream_overrides={fetchguest.HOST_NAME: base})
    egress_list.append(egress)
    caps = fetchguest.capabilities("fetch", max_request_bytes=8 * MIB, max_response_bytes=32 * MIB,
                                   credentials=CREDENTIALS)
    secret = {"fetch_token": TOKEN}.get
    services = HostServices(sandbox=Sandbox(runtime, **sandbox), secret_lookup=secret,
                            pairing=PairingStore(tmp / "pairing.db"), durable=None, egress=egress,
                            memory_limit_bytes=memory, fuel_per_callback=5_000_000_000)
    loaded = runtime.load(fetchguest.build_component(tmp, world=world, polls=polls))
    assert loaded.adapted == runtime.adapt
    channel = Channel(parse_capabilities(json.dumps(caps), "fetch"), loaded, services)
    assert channel.start("{}").ok
    return channel


def post(channel: Channel, size: int) -> tuple[int, bytes]:
    out = channel.http_request(IncomingHttpRequest("POST", "/webhook/fetch", "{}", "{}", b"b" * size, True))
    assert out.ok, out.error
    return out.value.status, out.value.body


@pytest.mark.parametrize("fastpath", [True, False])
def test_a_list_over_the_cap_gets_a_wit_error(
    runtime: Runtime, tmp_path: Path, upstream: tuple[str, list[int]], fastpath: bool
) -> None:
    base, sizes = upstream
    egresses: list[Egress] = []
    try:
        channel = fetch_channel(runtime, tmp_path, base, egresses, fastpath=fastpath, max_guest_list_bytes=1000)
        before = len(sizes)
        assert post(channel, 1000) == (200, b"ok")
        assert sizes[before:] == [1000]
        status, error = post(channel, 1001)
        assert status == 502
        assert error == b"http-request: a list<u8> argument of 1001 bytes is over the host's limit of 1000 bytes"
        assert sizes[before:] == [1000]  # nothing was sent for the refused call
    finally:
        for eg in egresses:
            eg.close()


def test_the_default_cap_admits_bodies_up_to_2_mib(
    runtime: Runtime, tmp_path: Path, upstream: tuple[str, list[int]]
) -> None:
    base, sizes = upstream
    egresses: list[Egress] = []
    try:
        channel = fetch_channel(runtime, tmp_path, base, egresses)
        assert post(channel, 2 * MIB) == (200, b"ok") and sizes[-1] == 2 * MIB
        status, error = post(channel, 2 * MIB + 1)
        assert status == 502 and b"over the host's limit of 2097152 bytes" in error
    finally:
        for eg in egresses:
            eg.close()


def test_the_cap_is_a_host_setting(tmp_path: Path) -> None:
    assert DEFAULT_MAX_GUEST_LIST_BYTES == 2 * MIB
    assert HostConfig().max_guest_list_bytes == DEFAULT_MAX_GUEST_LIST_BYTES
    host = AirlockHost(HostConfig.build(home=tmp_path / "home", max_guest_list_bytes=12345))
    try:
        assert host.manager.services.sandbox.max_guest_list_bytes == 12345
    finally:
        host.runtime.close()
    with pytest.raises(Exception, match="max_guest_list_bytes"):
        HostConfig.build(max_guest_list_bytes=0)


# ---- responses through the http adapter ----------------------------------------------------------------------


@pytest.fixture
def replies() -> Iterator[list[Reply]]:
    yield REPLIES
    REPLIES.clear()


@pytest.mark.parametrize(("world", "fastpath"), [("airlock", True), ("airlock", False), ("near-0.3.1", True)])
def test_a_response_arrives_byte_for_byte(
    runtime: Runtime, tmp_path: Path, upstream: tuple[str, list[int]], replies: list[Reply], world: str,
    fastpath: bool,
) -> None:
    egresses: list[Egress] = []
    try:
        channel = fetch_channel(runtime, tmp_path, upstream[0], egresses, world=world, fastpath=fastpath)
        # Not a multiple of the chunk size, every byte value, a different byte at each chunk boundary.
        body = random.Random(7).randbytes(3 * CHUNK_BYTES + 12345)
        replies.append(body)
        assert post(channel, 10) == (200, body)
        replies.append(b"")
        assert post(channel, 10) == (200, b"")
    finally:
        for eg in egresses:
            eg.close()


@pytest.mark.parametrize("fastpath", [True, False])
def test_a_credential_past_the_first_chunks_is_scanned_before_any_is_handed_out(
    runtime: Runtime, tmp_path: Path, upstream: tuple[str, list[int]], replies: list[Reply],
    fastpath: bool,
) -> None:
    """The leak scan runs on the whole body before the adapter reads any of it: a token reflected 5 chunks in is
    redacted in place, and an encoded one withholds everything (the guest gets the WIT error, not the first
    chunks)."""
    padding = b"a" * 5 * CHUNK_BYTES
    egresses: list[Egress] = []
    try:
        channel = fetch_channel(runtime, tmp_path, upstream[0], egresses, fastpath=fastpath)
        replies.append(lambda request: padding + request.headers["Authorization"].encode())
        assert post(channel, 10) == (200, padding + b"Bearer [REDACTED]")
        replies.append(lambda request: padding + base64.b64encode(request.headers["Authorization"].encode()))
        status, error = post(channel, 10)
        assert status == 502
        assert error.startswith(b"response from fetch.example.com withheld: its body contains a credential"), error
        assert TOKEN.encode() not in error
    finally:
        for eg in egresses:
            eg.close()


@pytest.mark.parametrize("fastpath", [True, False])
def test_a_body_over_the_memory_limit_gets_a_wit_error(
    runtime: Runtime, tmp_path: Path, upstream: tuple[str, list[int]], replies: list[Reply], fastpath: bool,
) -> None:
    """The body must fit in the adapter's memory, which the callback's limit bounds like the guest's: a body that
    cannot is refused before any of it is handed out, as a WIT error the guest can answer."""
    limit = MIB  # the guest echoes the body: wasmtime bounds what one call may copy to the host (hostcall fuel)
    egresses: list[Egress] = []
    try:
        channel = fetch_channel(runtime, tmp_path, upstream[0], egresses, memory=limit, fastpath=fastpath)
        fits = b"f" * (limit - 2 * ADAPTER_RESERVE_BYTES)
        replies.append(fits)
        assert post(channel, 10) == (200, fits)
        replies.append(b"t" * (limit - ADAPTER_RESERVE_BYTES))
        status, error = post(channel, 10)
        assert status == 502
        assert error == (f"http-request: the response body of {limit - ADAPTER_RESERVE_BYTES} bytes does not fit in "
                         f"the callback's memory limit of {limit} bytes").encode()
    finally:
        for eg in egresses:
            eg.close()


def test_the_adapter_memory_holds_one_call_at_a_time(
    runtime: Runtime, tmp_path: Path, upstream: tuple[str, list[int]], replies: list[Reply],
) -> None:
    """Three 5 MiB responses in one callback under an 8 MiB limit: the adapter's heap starts again after each call
    (post-return), or the second would not fit in its memory and the guest would trap."""
    egresses: list[Egress] = []
    try:
        channel = fetch_channel(runtime, tmp_path, upstream[0], egresses, polls=3, memory=8 * MIB)
        replies.append(b"p" * 5 * MIB)
        before = len(upstream[1])
        outcome = channel.poll()
        assert outcome.ok, outcome.error
        assert len(upstream[1]) - before == 3
    finally:
        for eg in egresses:
            eg.close()


# ---- memory of one 9 MiB response (the benchmark line, bench/http_memory.py) ----------------------------------


def _measure(compile_cache: Path, world: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "http_memory.py"), "--cache", str(compile_cache), "--size-mib", "9",
         "--world", world], capture_output=True, text=True, timeout=300, cwd=REPO,
        # This checkout's host code, as the tests' own (pyproject's pytest pythonpath), not an installed one.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "host"),
                                                                        os.environ.get("PYTHONPATH")]))},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("world", ["airlock", "near-0.3.1"])
def test_a_9_mib_response_costs_at_most_3x(compile_cache: Path, world: str) -> None:
    result = _measure(compile_cache, world)
    assert result["path"] == "host" and result["world"] == world
    assert result["ratio"] <= RSS_TARGET, result
