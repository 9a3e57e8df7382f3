"""Rust guests are linked with a 128 KiB shadow stack (scripts/build-rust-guest.sh, GUEST_STACK_BYTES) instead of
rust-lld's 1 MiB, so a pooled instance's memory is 3 pages, not 17, and its teardown memset is small. These tests
check that the smaller stack is still safe where a guest recurses on untrusted input: serde_json parsing a body
into ``Value`` (the Slack guest does, ``serde_json::from_slice::<Value>``) nests up to its recursion limit of 128
levels; deeper input must come back as a parse error the guest handles, never a trap (a stack overflow would be
one: the stack sits first in memory, so overflowing it runs below address 0). Components linked elsewhere with the
1 MiB default run as before (their memory is larger than the pool's keep-resident size only with big heaps; the
pooling tests cover that)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BUILT_CHANNELS, REPO

from airlock.channels.channel import Channel, HostServices
from airlock.manifest import parse_capabilities
from airlock.runtime.engine import Runtime
from airlock.runtime.instance import Sandbox
from airlock.runtime.values import IncomingHttpRequest
from airlock.stores import PairingStore

SLACK = BUILT_CHANNELS / "slack.wasm"
pytestmark = pytest.mark.skipif(not SLACK.exists(), reason="make rust-guests builds build/channels/slack.wasm")


def _memory_pages(wasm: Path) -> int:
    tools = REPO / ".venv" / "bin" / "wasm-tools"
    text = subprocess.run([str(tools if tools.exists() else shutil.which("wasm-tools") or "wasm-tools"), "print",
                           str(wasm)], check=True, capture_output=True, text=True).stdout
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("(memory "))
    return int(line.split(")")[-2].split()[-1])


def _channel(runtime: Runtime, wasm: Path, tmp_path: Path) -> Channel:
    caps = json.loads((BUILT_CHANNELS / "slack.capabilities.json").read_text())
    services = HostServices(sandbox=Sandbox(runtime), secret_lookup=lambda _n: "test-secret",
                            pairing=PairingStore(tmp_path / "pairing.db"), durable=None, egress=None,
                            memory_limit_bytes=50 * 1024 * 1024, fuel_per_callback=5_000_000_000)
    channel = Channel(parse_capabilities(json.dumps(caps), caps["name"]), runtime.load(wasm), services)
    assert channel.start(json.dumps(caps.get("config", {}))).ok
    return channel


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return ("[" * depth + "]" * depth).encode()
    if kind == "object":
        return ('{"a":' * depth + "1" + "}" * depth).encode()
    # an event whose unknown field nests: the whole body is still parsed into a Value first
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    return ('{"type":"event_callback","event_id":"E1","team_id":"T1","event":{"type":"message","user":"U1",'
            f'"text":"hi","channel":"C1","ts":"1.2","x":{inner}}}}}').encode()


def test_rust_guest_memory_is_small() -> None:
    # 128 KiB of stack + data: a handful of 64 KiB pages (rust-lld's 1 MiB default gives 17).
    assert _memory_pages(SLACK) <= 4


@pytest.mark.parametrize("depth", [1, 64, 127, 128, 129, 1000, 100_000])
@pytest.mark.parametrize("kind", ["array", "object", "event"])
def test_deeply_nested_json_does_not_crash_the_guest(runtime: Runtime, tmp_path: Path, depth: int,
                                                     kind: str) -> None:
    channel = _channel(runtime, SLACK, tmp_path)
    req = IncomingHttpRequest("POST", "/webhook/slack", json.dumps({"content-type": "application/json"}), "{}",
                              _nested(depth, kind), True)
    out = channel.http_request(req)
    assert out.error is None, out.error
    assert out.ok and out.value.status == 200
