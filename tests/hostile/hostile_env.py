"""The stage for the hostile guest: a real ``AirlockHost`` (real aiohttp server, real SQLite, the encrypted secret
store) with the hostile channel, a benign channel whose webhook is probed during every attack, fake platforms on
127.0.0.1, a resolver stub, and the checks every attack ends with (``Stage.finish``).

- ``api.allowed.test`` is the hostile channel's platform (an upstream override to ``Reflector`` on 127.0.0.1): it
  answers ``/reflect...`` with everything it received, in every encoding a reflector could use, ``/redirect`` with
  a 3xx to ``?to=`` and anything else with ``{"ok": true}``. The host injects ``hostile_token`` there.
- ``exfil.hostile.test`` is allow-listed but bound to no credential; it is an upstream override to a second
  ``Reflector``, the sink, which must never receive a secret.
- Every other name resolves through ``ResolverStub`` (the ``resolve`` parameter ``Egress`` documents for tests):
  names under ``.hostile.test`` to loopback, private, link-local, metadata and translated IPv6 forms, numeric
  spellings through ``getaddrinfo(AI_NUMERICHOST)`` (what the system resolver makes of ``2130706433``), and
  nothing else: no DNS query leaves the machine.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import aiohttp
import hostile_guest
import pytest
import watguest
from aiohttp import web

from airlock import host as host_mod
from airlock.capabilities.egress import Egress
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.stores import SecretStore

MIB = 1024 * 1024
HOSTILE = "hostile"
BENIGN = "benign"
CALLBACK_TIMEOUT_S = 2
"""The hostile channel's ``callback_timeout_secs``: how long the loop attack runs."""
HOSTILE_TOKEN = "73915:Hx-" + secrets.token_urlsafe(18) + "/+=&?%é"
"""The hostile channel's own credential (injected for ``api.allowed.test``); '/', '+', '=', '&', '?', '%' and a
non-ASCII letter make every encoding of it differ from the raw value."""
BENIGN_TOKEN = "xoxb-" + secrets.token_urlsafe(24)
"""A secret of another channel, which the hostile one may not name."""
BENIGN_PROBE_INTERVAL_S = 0.02
BENIGN_MIN_PROBES = 10
BENIGN_PROBE_BOUND_S = 10.0
"""Generous bound on any benign webhook's latency (a shared 2-core machine; the point is "answered")."""

RESOLVES: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "loopback.hostile.test": ["127.0.0.1"],
    "loopback2.hostile.test": ["127.53.0.9"],
    "v6loop.hostile.test": ["::1"],
    "mapped.hostile.test": ["::ffff:127.0.0.1"],
    "nat64.hostile.test": ["64:ff9b::7f00:1"],
    "sixtofour.hostile.test": ["2002:7f00:1::1"],
    "zero.hostile.test": ["0.0.0.0"],
    "metadata.hostile.test": ["169.254.169.254"],
    "metadata6.hostile.test": ["fd00:ec2::254"],
    "private.hostile.test": ["10.0.0.1"],
    "cgnat.hostile.test": ["100.64.0.1"],
    "linklocal6.hostile.test": ["fe80::1"],
    "twofaced.hostile.test": ["10.1.2.3", "127.0.0.1"],
}


class ResolverStub:
    """``(host, port) -> [ip]`` for ``Egress(resolve=...)``; records every name asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host in RESOLVES:
            return RESOLVES[host]
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        return [str(info[4][0]) for info in infos]


def _lower_pct(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def encodings(value: str) -> dict[str, str]:
    """``value`` as a reflector may present it: raw, percent-encoded (both cases, ``+`` for space), once
    decoded, JSON with escaped slashes, ``\\uXXXX`` for every character, HTML entities, base64 (std, url)."""
    raw = value.encode("utf-8", "surrogateescape")
    return {
        "raw": value, "pct": quote(value, safe=""), "pct_lower": _lower_pct(quote(value, safe="")),
        "plus": quote_plus(value), "decoded": unquote(value), "json_slash": json.dumps(value)[1:-1].replace("/", "\\/"),
        "uescape": "".join(f"\\u{ord(c):04x}" for c in value), "html": "".join(f"&#{ord(c)};" for c in value),
        "html_named": html.escape(value), "b64": base64.b64encode(raw).decode(),
        "b64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def secret_forms(secret: str) -> dict[str, str]:
    """Substrings that give ``secret`` away, each with the name of its encoding: its ``encodings`` and, for
    base64, the part of the encoding that does not depend on what surrounds the secret, at each of the three
    byte alignments."""
    forms = {text: how for how, text in encodings(secret).items()}
    raw = secret.encode()
    for shift in range(3):
        for how, enc in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            text = enc(b"\0" * shift + raw).decode()
            forms.setdefault(text[(4 * shift + 2) // 3:(shift + len(raw)) // 3 * 4], f"{how}+{shift}")
    return {text: how for text, how in forms.items() if len(text) >= 8}


@dataclass
class Reflector:
    """A fake platform on 127.0.0.1 (see the module docstring); ``seen`` holds every request as raw text."""

    seen: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(f"{request.method} {request.raw_path}\n"
                         + "".join(f"{k}: {v}\n" for k, v in request.headers.items())
                         + body.decode("utf-8", "replace"))
        if request.path == "/redirect":
            status = int(request.query.get("status", "302"))
            return web.Response(status=status, headers={"Location": request.query.get("to", "/")})
        if not request.path.startswith("/reflect"):
            return web.json_response({"ok": True})
        received = {"path": request.raw_path, "body": body.decode("utf-8", "replace"), **dict(request.headers)}
        shown = {f"{key}.{how}": text for key, value in received.items() for how, text in encodings(value).items()}
        text = json.dumps(shown, ensure_ascii=False)
        return web.Response(text=text, content_type="application/json",
                            headers={"X-Reflect-Path": quote(request.raw_path, safe="/%?=&")})

    async def __aenter__(self) -> Reflector:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def hostile_caps(name: str = HOSTILE, *, requests_per_minute: int = 200, **channel: Any) -> dict[str, Any]:
    """The hostile channel's capabilities: an allow-list that admits every spelling the SSRF attack uses (so the
    address check, not the allow-list, must stop them), one credential bound to ``api.allowed.test``."""
    hosts = ["api.allowed.test", "*.hostile.test", "localhost", "127.0.0.1", "127.1", "2130706433",
             "0x7f000001", "0177.0.0.1", "0x7f.0.0.1", "0", "10.0.0.1", "169.254.169.254", "100.64.0.1"]
    chan: dict[str, Any] = {"allowed_paths": [f"/webhook/{name}"], "callback_timeout_secs": CALLBACK_TIMEOUT_S,
                            "durable_workspace_paths": ["rec/"]}
    chan.update(channel)
    return {
        "name": name, "version": "0.1.0", "wit_version": "0.1.0", "config": {"dm_policy": "open"},
        "capabilities": {
            "channel": chan, "secrets": {"allowed_names": ["hostile_*"]},
            "http": {"allowlist": [{"host": h} for h in hosts],
                     "rate_limit": {"requests_per_minute": requests_per_minute, "requests_per_hour": 10_000},
                     "credentials": {"api": {"secret_name": "hostile_token", "host_patterns": ["api.allowed.test"],
                                             "location": {"type": "header", "name": "X-Api-Key"}}}},
        },
    }


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Stage:
    """A running host with the hostile and benign channels; ``post`` records every answer for the final scan."""

    host: AirlockHost
    home: Path
    platform: Reflector
    sink: Reflector
    resolver: ResolverStub
    answers: list[Answer] = field(default_factory=list)
    messages: dict[str, list[str]] = field(default_factory=dict)
    benign: list[tuple[int, float]] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, channel: str = HOSTILE, method: str = "POST") -> Answer:
        assert self.session is not None
        async with self.session.request(method, f"{self.host.base_url}/webhook/{channel}", data=body) as r:
            answer = Answer(r.status, dict(r.headers), await r.read())
        self.answers.append(answer)
        return answer

    async def order(self, op: str, *fields: bytes | str | int, channel: str = HOSTILE) -> Answer:
        return await self.post(hostile_guest.order(op, *fields), channel)

    async def http(self, url: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                   method: str = "GET") -> tuple[int, str, bytes] | str:
        """The hostile guest's http-request: (status, headers-json, body), or the WIT error text. A webhook that
        did not answer 200 (the guest failed: a host bug behind the host function) is ``webhook answered N``."""
        fields: list[bytes | str] = [method, url, json.dumps(headers or {})]
        if body is not None:
            fields.append(body)
        answer = await self.order("h", *fields)
        if answer.status != 200:
            return f"webhook answered {answer.status}"
        return hostile_guest.decode_http(answer.body)

    async def settled(self) -> None:
        """Wait until the drain task has taken everything off the bus."""
        while self.host.bus.qsize():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.005)

    async def _drain(self) -> None:
        while True:
            msg = await self.host.next_message()
            self.messages.setdefault(msg.channel, []).append(msg.content)

    async def _probe_benign(self) -> None:
        assert self.session is not None
        while True:
            started = time.monotonic()
            try:
                async with self.session.post(f"{self.host.base_url}/webhook/{BENIGN}", data=b"ping") as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError:
                status = 0
            self.benign.append((status, time.monotonic() - started))
            await asyncio.sleep(BENIGN_PROBE_INTERVAL_S)

    async def finish(self, attack: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        """The checks every attack ends with: the benign channel answered every probe, and no secret value (in
        any encoding) is in a log record, an answer, a SQLite file under the home or a request the sink saw.
        A quick attack is followed until the probe has made ``BENIGN_MIN_PROBES`` requests."""
        deadline = time.monotonic() + BENIGN_PROBE_BOUND_S
        while len(self.benign) < BENIGN_MIN_PROBES and time.monotonic() < deadline:
            await asyncio.sleep(BENIGN_PROBE_INTERVAL_S)
        latencies = sorted(t for _, t in self.benign)
        failed = sorted({s for s, _ in self.benign if s != 200})
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
        with capsys.disabled():
            sys.stdout.write(f"\n[hostile] {attack}: benign webhook p99 {p99 * 1000:.1f} ms over {len(latencies)} "
                             f"requests ({sum(1 for s, _ in self.benign if s != 200)} failed)\n")
        assert len(latencies) >= BENIGN_MIN_PROBES, f"the benign probe barely ran: {len(latencies)} requests"
        assert not failed, f"benign webhook failed during {attack}: statuses {failed}"
        assert latencies[-1] < BENIGN_PROBE_BOUND_S, f"a benign webhook took {latencies[-1]:.1f} s during {attack}"
        assert_no_secret(self._places(caplog))

    def _places(self, caplog: pytest.LogCaptureFixture) -> Iterable[tuple[str, str]]:
        yield "the log", caplog.text  # every record, formatted, with tracebacks
        for i, a in enumerate(self.answers):
            yield f"answer {i}", a.body.decode("utf-8", "replace") + json.dumps(a.headers)
        for path in sorted(self.home.rglob("*")):
            if path.is_file() and ".db" in path.name:
                yield f"file {path.name}", path.read_bytes().decode("utf-8", "replace")
        for i, request in enumerate(self.sink.seen):
            yield f"sink request {i}", request


def assert_no_secret(places: Iterable[tuple[str, str]]) -> None:
    """Fail, listing every leak (where, which secret, which encoding), if any form of a secret is in a place."""
    forms = {name: secret_forms(value) for name, value in
             (("hostile_token", HOSTILE_TOKEN), ("benign_token", BENIGN_TOKEN))}
    leaks: list[str] = []
    for where, text in places:
        for name, variants in forms.items():
            leaks += [f"{name} in {where} ({how}): ...{_around(text, form)}..."
                      for form, how in variants.items() if form in text]
    assert not leaks, f"{len(leaks)} secret leak(s):\n" + "\n".join(leaks[:40])


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 60):at + len(needle) + 60]


@asynccontextmanager
async def stage(home: Path, guests: Path, monkeypatch: pytest.MonkeyPatch, *, caps: dict[str, Any] | None = None,
                extra: Iterable[tuple[Path, dict[str, Any]]] = (), **config: Any) -> AsyncIterator[Stage]:
    """Install the hostile channel (``caps``, default ``hostile_caps()``), the benign one and ``extra`` (wasm,
    caps) pairs into ``home``, store the secrets, start the host with the resolver stub, and yield the running
    ``Stage`` with its drain and benign-probe tasks going."""
    caps = caps or hostile_caps()
    install(home, hostile_guest.build_component(guests, caps["name"]), caps)
    install(home, watguest.build_component(guests, BENIGN),
            {"name": BENIGN, "version": "0.1.0", "wit_version": "0.1.0", "config": {"dm_policy": "open"},
             "capabilities": {"channel": {"allowed_paths": [f"/webhook/{BENIGN}"],  # one message per probe
                                          "emit_rate_limit": {"messages_per_minute": 100_000,
                                                              "messages_per_hour": 1_000_000}}}})
    for wasm, doc in extra:
        install(home, wasm, doc)
    store = SecretStore.open(home)
    store.set("hostile_token", HOSTILE_TOKEN)
    store.set("benign_token", BENIGN_TOKEN)
    resolver = ResolverStub()
    monkeypatch.setattr(host_mod, "Egress", partial(Egress, resolve=resolver))
    async with Reflector() as platform, Reflector() as sink:
        overrides = {"api.allowed.test": platform.url, "exfil.hostile.test": sink.url}
        cfg = HostConfig.build(home=home, listen_port=0, upstream_overrides=overrides, **config)
        async with AirlockHost(cfg, secrets=store) as host, aiohttp.ClientSession() as session:
            st = Stage(host, home, platform, sink, resolver, session=session)
            tasks = [asyncio.create_task(st._drain()), asyncio.create_task(st._probe_benign())]
            try:
                yield st
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


def rss() -> int:
    """This process's resident set size, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def install(home: Path, wasm: Path, caps: dict[str, Any]) -> None:
    channels = home / "channels"
    channels.mkdir(parents=True, exist_ok=True)
    (channels / f"{caps['name']}.wasm").write_bytes(wasm.read_bytes())
    (channels / f"{caps['name']}.capabilities.json").write_text(json.dumps(caps))
