"""End-to-end HTTP benchmark: (a)-(d) (and Slack's signed webhooks) behind ONE aiohttp server, with the load
generator in a separate process (bench/loadgen.py: wrk when installed, else the aiohttp client script).

The server is the real host's: ``AirlockHost`` started without its own listener, its app from
``inbound.server.build_app`` (so Airlock's routes are the real webhook path: routing, size checks, host-side
signature/secret verification, backpressure, a worker thread, a fresh sandbox, the durable message log), plus two
routes for the comparison, each doing what a host with that plugin model would do per request:
- ``POST /bench/jsonrpc``: the body to the persistent JSON-RPC plugin process (bench/plugin_peer.py), the
  response validated, the emitted messages put on the same bus;
- ``POST /bench/inproc``: the work (bench/work.py) as a Python function in the handler, messages on the bus.
The peers' bus is in memory (``MemoryBus``: what Airlock had before its message log); Airlock's messages go to
its log. An agent task drains both throughout (leasing and acknowledging Airlock's), so every variant pays for
delivering its messages.

Two diagnostics (labelled as such in the report, never used for a target) split Airlock's gap to (d):
- ``d_thread``: the in-process work run the way Airlock runs a callback, on a worker thread behind a per-channel
  lock (the cost of the hand-off alone);
- ``a_inline``: (a)'s real ``Channel.http_request`` called on the event loop itself, no worker thread (what the
  sandbox costs without the hand-off; not something the host may do, since a guest can run for seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import work
from aiohttp import web
from callbacks import SLACK_EVENT, slack_caps
from common import BENCH, BENCH_GUEST, BUILT_CHANNELS, bench_guest_caps, install, telegram_caps
from plugin_client import AsyncPlugin, PluginError

from airlock.channels.channel import InboundMessage
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.inbound.server import MAX_BODY_BYTES, build_app
from airlock.runtime.values import EmittedMessage, IncomingHttpRequest, OutgoingHttpResponse
from airlock.stores import SecretStore

TELEGRAM_SECRET = "bench-telegram-webhook-secret"
SLACK_SIGNING_SECRET = "bench-slack-signing-secret"


@dataclass(frozen=True)
class Target:
    """One thing to load: its label, URL path and request headers (Slack: signed per request instead)."""

    key: str
    path: str
    headers: dict[str, str]
    slack: bool = False


@dataclass
class Server:
    host: AirlockHost
    port: int
    targets: list[Target]
    notes: list[str]
    bus: MemoryBus

    def url(self, target: Target) -> str:
        return f"http://127.0.0.1:{self.port}{target.path}"


class MemoryBus:
    """The comparison peers' bus: an in-memory queue (what Airlock used before its durable message log). Counts what
    every drain delivered, Airlock's log included (``delivered``)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.delivered = 0

    def has_room(self) -> bool:
        return self.queue.qsize() < 10**6

    def put(self, message: InboundMessage) -> None:
        self.queue.put_nowait(message)


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def prepare_home(home: Path, cache: Path, notes: list[str]) -> list[Target]:
    """Install (a), (b) and Slack into ``home`` (compile cache shared with ``cache``) and store secrets."""
    channels = home / "channels"
    channels.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(cache.resolve(), target_is_directory=True)
    store = SecretStore.open(home)
    targets: list[Target] = []
    if BENCH_GUEST.exists():
        install(channels, "telegram-min", BENCH_GUEST, bench_guest_caps())
        targets.append(Target("a", "/webhook/telegram-min", _json_headers()))
    else:
        notes.append("(a) skipped in e2e: bench guest not built")
    if (BUILT_CHANNELS / "telegram.wasm").exists():
        install(channels, "telegram", BUILT_CHANNELS / "telegram.wasm", telegram_caps())
        store.set("telegram_bot_token", "123456:bench-token")
        store.set("telegram_webhook_secret", TELEGRAM_SECRET)
        targets.append(Target("b", "/webhook/telegram",
                              {**_json_headers(), "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}))
    targets.append(Target("c", "/bench/jsonrpc", _json_headers()))
    targets.append(Target("d", "/bench/inproc", _json_headers()))
    targets.append(Target("d_thread", "/bench/inproc-thread", _json_headers()))
    if BENCH_GUEST.exists():
        targets.append(Target("a_inline", "/bench/airlock-inline", _json_headers()))
    caps = slack_caps()
    if caps is not None and (BUILT_CHANNELS / "slack.wasm").exists():
        install(channels, "slack", BUILT_CHANNELS / "slack.wasm", caps)
        webhook = caps["capabilities"]["channel"].get("webhook") or {}
        for spec in (caps.get("setup") or {}).get("required_secrets", []):
            store.set(spec["name"], "xoxb-bench-token")
        signing = webhook.get("hmac_secret_name")
        if signing:
            store.set(signing, SLACK_SIGNING_SECRET)
            path = caps["capabilities"]["channel"]["allowed_paths"][0]
            targets.append(Target("slack", path, {}, slack=True))
        else:
            notes.append("slack capabilities name no hmac_secret_name: signed webhooks not measured")
    else:
        notes.append("slack guest not built")
    return targets


def _message(emission: work.Emission) -> EmittedMessage:
    return EmittedMessage(user_id=emission.user_id, user_name=emission.user_name, content=emission.content,
                          thread_id=emission.thread_id, metadata_json=emission.metadata_json)


def comparison_routes(app: web.Application, host: AirlockHost, plugin: AsyncPlugin, bus: MemoryBus) -> None:

    async def read_body(request: web.Request) -> bytes | web.Response:
        if not bus.has_room():
            return web.json_response({"error": "busy"}, status=503)
        body = await request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return web.json_response({"error": "payload too large"}, status=413)
        return body

    async def jsonrpc(request: web.Request) -> web.Response:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            status, out, messages = await plugin.call(body, request.path, headers)
        except PluginError:
            return web.json_response({"error": "internal error"}, status=500)
        for m in messages:
            bus.put(InboundMessage(channel="jsonrpc", message=m))
        return web.Response(status=status, body=out, content_type="application/json")

    async def inproc(request: web.Request) -> web.Response:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        status, out, emission = work.handle(body)
        if emission is not None:
            bus.put(InboundMessage(channel="inproc", message=_message(emission)))
        return web.Response(status=status, body=out, content_type="application/json")

    lane = asyncio.Lock()
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bench-inproc")

    async def inproc_thread(request: web.Request) -> web.Response:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        async with lane:
            status, out, emission = await asyncio.get_running_loop().run_in_executor(executor, work.handle, body)
        if emission is not None:
            bus.put(InboundMessage(channel="inproc", message=_message(emission)))
        return web.Response(status=status, body=out, content_type="application/json")

    async def airlock_inline(request: web.Request) -> web.Response:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        found = host.manager.route("/webhook/telegram-min")
        assert found is not None
        slot, _ = found
        req = IncomingHttpRequest(method=request.method, path=request.path,
                                  headers_json=json.dumps({k.lower(): v for k, v in request.headers.items()}),
                                  query_json=json.dumps(dict(request.query)), body=body, secret_validated=False)
        out = slot.channel.http_request(req)
        host.manager.dispatch(slot, out)
        if not out.ok or not isinstance(out.value, OutgoingHttpResponse):
            return web.json_response({"error": "internal error"}, status=500)
        return web.Response(status=out.value.status, body=out.value.body, content_type="application/json")

    app.router.add_post("/bench/jsonrpc", jsonrpc)
    app.router.add_post("/bench/inproc", inproc)
    app.router.add_post("/bench/inproc-thread", inproc_thread)
    app.router.add_post("/bench/airlock-inline", airlock_inline)


async def _drain(host: AirlockHost, bus: MemoryBus) -> None:
    """The agent: acknowledges every message of Airlock's log, and empties the peers' in-memory bus."""
    async def log() -> None:
        while True:
            await host.ack(await host.next_message())
            bus.delivered += 1

    async def memory() -> None:
        while True:
            await bus.queue.get()
            bus.delivered += 1

    await asyncio.gather(log(), memory())


@asynccontextmanager
async def serving(cache: Path) -> AsyncIterator[Server]:
    """Start the host, the plugin and the server on 127.0.0.1; yield it; stop everything."""
    notes: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="airlock-bench-e2e-"))
    os.environ.setdefault("AIRLOCK_MASTER_KEY", secrets.token_hex(32))
    targets = prepare_home(home, cache, notes)
    # Slack's on-start asks slack.com for the bot's id: pointed at a closed loopback port, so a bench run sends
    # nothing off the machine (the guest then takes the id from events)
    host = AirlockHost(HostConfig.build(home=home, listen_port=0, bus_capacity=10**6,
                                        upstream_overrides={"slack.com": "http://127.0.0.1:9"}))
    plugin = await AsyncPlugin.start()
    runner: web.AppRunner | None = None
    drain: asyncio.Task[None] | None = None
    try:
        await host.start(serve_http=False)
        for name, slot in host.manager.slots.items():
            if not slot.active:
                notes.append(f"channel {name} not active: {slot.reason}")
        active_paths = {p for slot in host.manager.slots.values() for p in slot.endpoints}
        targets = [t for t in targets if t.path in active_paths or t.path.startswith("/bench/")]
        app = build_app(host.manager)
        bus = MemoryBus()
        comparison_routes(app, host, plugin, bus)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        drain = asyncio.create_task(_drain(host, bus))
        yield Server(host=host, port=port, targets=targets, notes=notes, bus=bus)
    finally:
        if drain is not None:
            drain.cancel()
        if runner is not None:
            await runner.cleanup()
        await plugin.close()
        await host.stop()
        shutil.rmtree(home, ignore_errors=True)


async def load(server: Server, target: Target, concurrency: int, duration_s: float, tmp: Path) -> dict[str, Any]:
    """Run the load generator process against ``target``; returns its summary plus which generator ran."""
    wrk = shutil.which("wrk")
    url = server.url(target)
    if wrk is not None and not target.slack:
        script = tmp / f"{target.key}.lua"
        script.write_text(loadgen.wrk_script(list(work.BODIES), target.headers))
        cmd = loadgen.wrk_command(wrk, url, script, concurrency, duration_s)
        out = await _run(cmd)
        result: dict[str, Any] = loadgen.parse_wrk(out)
        result["loadgen"] = "wrk"
        return result
    bodies = tmp / f"{target.key}.json"
    bodies.write_text(json.dumps(SLACK_EVENT if target.slack else [b.decode() for b in work.BODIES]))
    cmd = [sys.executable, str(BENCH / "loadgen.py"), url, "--concurrency", str(concurrency),
           "--duration", str(duration_s), "--body-file", str(bodies)]
    cmd += [f"--header={k}:{v}" for k, v in target.headers.items()]
    if target.slack:
        cmd += ["--slack-signing-secret", SLACK_SIGNING_SECRET]
    result = json.loads((await _run(cmd)).strip().splitlines()[-1])
    assert isinstance(result, dict)
    result["loadgen"] = "aiohttp-client"
    return result


async def _run(cmd: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {err.decode()[-500:]}")
    return out.decode()


async def run(cache: Path, concurrency: int, duration_s: float, warmup_s: float,
              log: Any = print) -> dict[str, Any]:
    """Load every target in turn (warm-up run first); returns {key: summary} and notes."""
    results: dict[str, Any] = {"concurrency": concurrency, "duration_s": duration_s}
    tmp = Path(tempfile.mkdtemp(prefix="airlock-bench-load-"))
    try:
        async with serving(cache) as server:
            log(f"e2e: server on 127.0.0.1:{server.port}, targets {[t.key for t in server.targets]}, "
                f"concurrency {concurrency}, {duration_s:.0f} s each")
            for target in server.targets:
                if warmup_s > 0:
                    await load(server, target, concurrency, warmup_s, tmp)
                before = server.bus.delivered
                summary = await load(server, target, concurrency, duration_s, tmp)
                await asyncio.sleep(0.2)  # let the drain catch up before counting
                summary["delivered"] = server.bus.delivered - before
                results[target.key] = summary
                log(f"  {target.key:6s} {summary['rps']:8.0f} req/s  p50 {summary['p50_ms']:7.2f} ms  "
                    f"p99 {summary['p99_ms']:7.2f} ms  non-2xx {summary['non2xx']}  ({summary['loadgen']})")
            results["notes"] = server.notes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def ensure_wrk() -> bool:
    """Whether wrk is on PATH (the Makefile's bench target installs it with apt-get when it can)."""
    return shutil.which("wrk") is not None
