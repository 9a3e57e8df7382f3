"""Callback-level benchmark: the same Telegram webhook work through every variant, single-threaded.

Variants (bench/work.py defines the work):
- ``a_fresh``: Airlock, the small Rust guest (build/bench/telegram-min.wasm), a fresh store per callback,
  through ``Channel.http_request`` (the host's real callback path: capability state, commit, emit limiter),
  pooling allocator on (the host default); ``a_fresh_nopool`` the same with on-demand allocation;
- ``a_reused``: the same, but every callback on one long-lived instance (``ReusingSandbox``, built on
  ``Sandbox.reused_instance``);
- ``b_fresh``: the CPython Telegram guest (build/channels/telegram.wasm), fresh store per callback;
- ``c_jsonrpc``: a persistent subprocess plugin over JSON-RPC 2.0 on stdio (bench/plugin_peer.py);
- ``d_inproc``: the work as an in-process Python function (the physical limit);
- ``minimal_fresh``: the hand-written WAT guest (tests/guests/watguest.py), for issue 3's "within 2x" target;
- ``slack_fresh``: the Rust Slack guest (build/channels/slack.wasm) when it is built.

Rounds alternate the variants so that noise from a shared machine spreads over all of them. Before timing,
(a), (c) and (d) must emit the identical message for every payload (same work, checked).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import work
from common import (
    BENCH_GUEST,
    BUILT_CHANNELS,
    MIB,
    Summary,
    bench_guest_caps,
    minimal_caps,
    summarize,
    telegram_caps,
    wat_guest,
)
from plugin_client import SyncPlugin

from airlock.channels.channel import Channel, HostServices
from airlock.errors import EmitRateLimited
from airlock.manifest import parse_capabilities
from airlock.runtime import linker as host_linker
from airlock.runtime.engine import LoadedComponent, Runtime
from airlock.runtime.instance import CallStats, Limits, ReusedCall, Sandbox
from airlock.runtime.pooling import PoolingSettings, slots_for
from airlock.runtime.values import EmittedMessage, IncomingHttpRequest
from airlock.stores import PairingStore

HEADERS = {"content-type": "application/json", "host": "127.0.0.1:8080", "user-agent": "bench"}
MEMORY_LIMIT = 50 * MIB
FUEL = 5_000_000_000

# A Slack Events API message event (shape from api.slack.com/events/message, values made up).
SLACK_EVENT: dict[str, Any] = {
    "token": "XXYYZZ", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
    "event_id": "Ev0001", "event_time": 1700000000,
    "event": {"type": "message", "channel": "D0001", "channel_type": "im", "user": "U0001",
              "text": "hello bot", "ts": "1700000000.000100", "event_ts": "1700000000.000100"},
}


@dataclass(frozen=True)
class Plan:
    """Calls per variant (spread over ``rounds`` alternating rounds)."""

    rounds: int = 5
    fast: int = 5000  # (a), (c), minimal, slack
    inproc: int = 20000  # (d)
    cpython: int = 500  # (b): ~2 ms each


@dataclass
class Variant:
    name: str
    calls: int
    fn: Callable[[], None]
    samples: list[float] = field(default_factory=list)


def runtime_for(cache: Path, pooled: bool) -> Runtime:
    pool = PoolingSettings(slots=slots_for(0), max_memory_bytes=MEMORY_LIMIT) if pooled else None
    return Runtime(cache, pooling=pool)


def make_channel(runtime: Runtime, wasm: Path, caps: dict[str, Any], tmp: Path,
                 sandbox: Sandbox | None = None) -> Channel:
    """A ``Channel`` as the host builds it (no egress: the benchmark's work makes no outbound call)."""
    services = HostServices(sandbox=sandbox or Sandbox(runtime), secret_lookup=lambda _n: "bench-secret",
                            pairing=PairingStore(tmp / f"{caps['name']}-{id(runtime)}-pairing.db"), durable=None,
                            egress=None, memory_limit_bytes=MEMORY_LIMIT, fuel_per_callback=FUEL)
    channel = Channel(parse_capabilities(json.dumps(caps), caps["name"]), runtime.load(wasm), services)
    started = channel.start(json.dumps(caps.get("config", {})))
    if not started.ok:
        raise RuntimeError(f"{caps['name']}: on-start failed: {started.error}")
    return channel


def request(path: str, body: bytes) -> IncomingHttpRequest:
    return IncomingHttpRequest("POST", path, json.dumps(HEADERS), "{}", body, True)


def fresh_messages(channel: Channel, req: IncomingHttpRequest) -> list[EmittedMessage]:
    """One webhook callback; its messages. A callback refused by the emit rate limit (nothing applied, the webhook
    would answer 429) returns none: the RSS run measures with the default limit on purpose."""
    out = channel.http_request(req)
    if isinstance(out.error, EmitRateLimited):
        return []
    if not out.ok:
        raise RuntimeError(f"{channel.name}: callback failed: {out.error}")
    return [m.message for m in out.messages]


REUSED_LIMITS = Limits(memory_bytes=MEMORY_LIMIT, fuel=2**62, timeout_s=10.0**6)
"""The reused instance's limits cover its whole life (thousands of callbacks), so they are far larger."""


class ReusingSandbox(Sandbox):
    """A ``Sandbox`` whose ``call`` serves every callback of a component from one long-lived instance, through
    ``Sandbox.reused_instance`` (the same call route, converters and blame rules as a fresh callback).

    Given to a ``Channel`` in place of the real sandbox, it makes "reused" go through exactly the same host
    path as "fresh" (``Channel.http_request``: call state, conversions, commit, emit limiter), each call with
    its own host state, and differ only in the store: the fresh/reused ratio is then the price of a fresh
    store + instantiation.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._stack = contextlib.ExitStack()
        self._live: dict[str, ReusedCall] = {}

    def call(self, loaded: LoadedComponent, callback: str, args: tuple[Any, ...], api: host_linker.HostApi,
             limits: Limits) -> tuple[Any, CallStats]:
        start = time.perf_counter()
        live = self._live.get(loaded.sha256)
        if live is None:
            live = self._stack.enter_context(self.reused_instance(loaded, api, REUSED_LIMITS))
            self._live[loaded.sha256] = live
        result = live(callback, args, api)
        return result, CallStats(fuel_used=0, elapsed_s=time.perf_counter() - start)

    def close(self) -> None:
        self._live.clear()
        self._stack.close()


def fuel_of(channel: Channel, req: IncomingHttpRequest) -> int:
    """Fuel (about one unit per wasm instruction) one callback burns: a figure machine load cannot skew."""
    out = channel.http_request(req)
    if not out.ok or out.stats is None:
        raise RuntimeError(f"{channel.name}: callback failed: {out.error}")
    return out.stats.fuel_used


def _normal(messages: list[EmittedMessage]) -> list[tuple[Any, ...]]:
    """Messages compared by value (metadata parsed: key order is not part of the work)."""
    return [(m.user_id, m.user_name, m.content, m.thread_id, json.loads(m.metadata_json), m.attachments)
            for m in messages]


def check_same_work(rust: Channel, plugin: SyncPlugin) -> None:
    """(a), (c) and (d) must emit the identical message for every payload."""
    for body in work.BODIES:
        a = fresh_messages(rust, request("/webhook/telegram-min", body))
        _, _, c = plugin.call(body, "/webhook/plugin", HEADERS)
        _, _, emission = work.handle(body)
        assert emission is not None
        d = [EmittedMessage(user_id=emission.user_id, user_name=emission.user_name, content=emission.content,
                            thread_id=emission.thread_id, metadata_json=emission.metadata_json)]
        if not _normal(a) == _normal(c) == _normal(d):
            raise AssertionError(f"variants disagree on {body[:60]!r}: a={a} c={c} d={d}")


def inproc_call(body: bytes) -> list[EmittedMessage]:
    """(d): the work plus building the host's message object, as a host with in-process plugins would."""
    _, _, emission = work.handle(body)
    if emission is None:
        return []
    return [EmittedMessage(user_id=emission.user_id, user_name=emission.user_name, content=emission.content,
                           thread_id=emission.thread_id, metadata_json=emission.metadata_json)]


def _cycle(fn: Callable[[Any], object], path: str | None = None) -> Callable[[], None]:
    """A zero-argument call that alternates the two payloads."""
    reqs = [request(path, b) for b in work.BODIES] if path is not None else None
    state = {"i": 0}

    def call() -> None:
        state["i"] ^= 1
        fn(reqs[state["i"]] if reqs is not None else work.BODIES[state["i"]])

    return call


def run_rounds(variants: list[Variant], rounds: int) -> None:
    for v in variants:  # warm-up: caches, pool slots, the plugin's interpreter
        for _ in range(min(50, max(1, v.calls // 10))):
            v.fn()
    for _ in range(rounds):
        for v in variants:
            per_round = max(1, v.calls // rounds)
            samples = v.samples
            fn = v.fn
            for _ in range(per_round):
                t = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t)


def run(plan: Plan, cache: Path, tmp: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the callback-level benchmark; returns {variant: Summary dict} plus notes and ratios' inputs."""
    results: dict[str, Any] = {"notes": [], "fuel": {}}
    pooled, plain = runtime_for(cache, True), runtime_for(cache, False)
    plugin = SyncPlugin()
    reusing = ReusingSandbox(pooled)
    try:
        variants: list[Variant] = []
        if BENCH_GUEST.exists():
            rust = make_channel(pooled, BENCH_GUEST, bench_guest_caps(), tmp)
            rust_nopool = make_channel(plain, BENCH_GUEST, bench_guest_caps(), tmp)
            check_same_work(rust, plugin)
            rust_reused = make_channel(pooled, BENCH_GUEST, bench_guest_caps(), tmp, sandbox=reusing)
            variants += [
                Variant("a_fresh", plan.fast, _cycle(lambda r: fresh_messages(rust, r), "/webhook/telegram-min")),
                Variant("a_fresh_nopool", plan.fast,
                        _cycle(lambda r: fresh_messages(rust_nopool, r), "/webhook/telegram-min")),
                Variant("a_reused", plan.fast,
                        _cycle(lambda r: fresh_messages(rust_reused, r), "/webhook/telegram-min")),
            ]
            results["component_bytes_a"] = BENCH_GUEST.stat().st_size
            results["fuel"]["a"] = fuel_of(rust, request("/webhook/telegram-min", work.BODIES[1]))
        else:
            results["notes"].append(f"(a) skipped: {BENCH_GUEST.relative_to(BENCH_GUEST.parents[2])} not built")
        tg_wasm = BUILT_CHANNELS / "telegram.wasm"
        if tg_wasm.exists():
            telegram = make_channel(pooled, tg_wasm, telegram_caps(), tmp)
            probe = fresh_messages(telegram, request("/webhook/telegram", work.BODIES[0]))
            assert [m.content for m in probe] == ["hello bot"], probe
            results["fuel"]["b"] = fuel_of(telegram, request("/webhook/telegram", work.BODIES[1]))
            variants.append(Variant("b_fresh", plan.cpython,
                                    _cycle(lambda r: fresh_messages(telegram, r), "/webhook/telegram")))
        else:
            results["notes"].append("(b) skipped: build/channels/telegram.wasm not built")
        variants.append(Variant("c_jsonrpc", plan.fast,
                                _cycle(lambda b: plugin.call(b, "/webhook/plugin", HEADERS))))
        variants.append(Variant("d_inproc", plan.inproc, _cycle(inproc_call)))
        minimal = make_channel(pooled, wat_guest(tmp / "wat"), minimal_caps(), tmp)
        results["fuel"]["minimal"] = fuel_of(minimal, request("/webhook/minimal", work.BODIES[1]))
        variants.append(Variant("minimal_fresh", plan.fast,
                                _cycle(lambda r: fresh_messages(minimal, r), "/webhook/minimal")))
        variants += _slack_variant(pooled, tmp, plan, results)
        log(f"callbacks: {', '.join(v.name for v in variants)} in {plan.rounds} alternating rounds")
        run_rounds(variants, plan.rounds)
        for v in variants:
            s: Summary = summarize(v.samples)
            results[v.name] = s.as_dict()
            log(f"  {v.name:15s} p50 {s.p50_us:8.1f} us  p99 {s.p99_us:8.1f} us  {s.per_s:9.0f} calls/s")
    finally:
        reusing.close()
        plugin.close()
        pooled.close()
        plain.close()
    return results


def slack_request_body() -> bytes:
    return json.dumps(SLACK_EVENT).encode()


def slack_caps() -> dict[str, Any] | None:
    path = BUILT_CHANNELS / "slack.capabilities.json"
    if not path.exists():
        return None
    caps: dict[str, Any] = json.loads(path.read_text())
    caps.setdefault("config", {})["dm_policy"] = "open"
    caps["capabilities"]["channel"]["emit_rate_limit"] = {"messages_per_minute": 10**8, "messages_per_hour": 10**9}
    return caps


def _slack_variant(runtime: Runtime, tmp: Path, plan: Plan, results: dict[str, Any]) -> list[Variant]:
    wasm, caps = BUILT_CHANNELS / "slack.wasm", slack_caps()
    if not wasm.exists() or caps is None:
        results["notes"].append("slack guest not built")
        return []
    try:
        slack = make_channel(runtime, wasm, caps, tmp)
        path = slack.config.http_endpoints[0].path if slack.config and slack.config.http_endpoints else "/webhook/slack"
        req = request(path, slack_request_body())
        emitted = fresh_messages(slack, req)
    except (RuntimeError, OSError) as exc:
        results["notes"].append(f"slack guest not measured: {exc}")
        return []
    results["fuel"]["slack"] = fuel_of(slack, req)
    if [m.content for m in emitted] != ["hello bot"]:
        results["notes"].append(f"slack guest emitted {emitted!r} for a DM; measured anyway")

    def call() -> None:
        fresh_messages(slack, req)

    return [Variant("slack_fresh", plan.fast, call)]
