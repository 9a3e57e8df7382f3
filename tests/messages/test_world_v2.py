"""World airlock:channel@0.2.0 through the real host: a 0.1.0 component still runs; a 0.2.0 component's typed send
errors take precedence over the host's reading of the platform's HTTP answers; platform message ids are kept and
used by edits and reactions; ``airlock inspect`` lists the optional exports.

The 0.2.0 guest is ``tests/guests/sender`` (Rust SDK with the ``edit`` and ``react`` features: delivery, edits and
reactions; ``make test-guests``); its platform is :class:`FakePlatform` on 127.0.0.1 (``localhost.test`` in the
guest's URLs). The Python SDK's side of world 0.2.0 runs in a real component in the Telegram channel's tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import REPO, InstallFn
from fake_base import FakeServer
from typer.testing import CliRunner
from watguest import build_component

from airlock import cli
from airlock.agents.delivery import Delivery
from airlock.host import AirlockHost
from airlock.host_config import HostConfig
from airlock.messages.model import NewEntry, Route
from airlock.messages.streaming import StreamError

SENDER = REPO / "build" / "test-guests" / "sender.wasm"
SENDER_CAPS = REPO / "tests" / "guests" / "sender" / "sender.capabilities.json"

pytestmark = pytest.mark.skipif(not SENDER.exists(), reason="build/test-guests/sender.wasm: run make test-guests")


@dataclass
class FakePlatform(FakeServer):
    """``POST /send`` (answers ``{"id": "m<n>"}``), ``/edit``, ``/react``; each answers the next status queued in
    ``statuses[path]`` (default 200). ``calls``: ``(path, time.monotonic(), JSON body, status answered)``."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    calls: list[tuple[str, float, dict[str, Any], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{what}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["what"]
        queued = self.statuses.get(path) or []
        status = queued.pop(0) if queued else 200
        self.calls.append((path, time.monotonic(), await request.json(), status))
        self.notify()
        body = {"id": f"m{len(self.calls)}"} if path == "/send" and status == 200 else {"error": "nope"}
        return web.json_response(body, status=status)

    def sent(self, path: str) -> list[tuple[float, dict[str, Any], int]]:
        return [(at, doc, status) for p, at, doc, status in self.calls if p == path]


@asynccontextmanager
async def sender_host(home: Path, install: InstallFn, fake: FakePlatform) -> AsyncIterator[AirlockHost]:
    install(SENDER, SENDER_CAPS)
    config = HostConfig.build(home=home, listen_port=0, upstream_overrides={"localhost.test": fake.base_url})
    async with AirlockHost(config) as host:
        assert host.manager.slots["sender"].active, host.manager.slots["sender"].reason
        yield host


async def inbound(host: AirlockHost, chat: str = "c1") -> Delivery:
    """A message from ``chat`` committed as the channel's callback would, then leased."""
    entry = NewEntry(instance="sender", user_id=chat, user_name=None, thread_id=None, content="hello",
                     metadata_json=json.dumps({"chat": chat}),
                     route=Route(agent=host.config.default_agent, session_key=f"sender:{chat}",
                                 conversation=f"sender:{chat}"))
    await asyncio.to_thread(host.log.commit, "sender", {}, [entry], time.time())
    host.bus.appended(1)
    return await asyncio.wait_for(host.next_message(), 10)


async def settled(host: AirlockHost, outbox_id: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while (entry := await asyncio.to_thread(host.log.get_outbox, outbox_id)) is None or entry.state == "pending":
        assert time.monotonic() < deadline, f"outbox entry {outbox_id} still pending: {entry}"
        await asyncio.sleep(0.05)
    return entry


@pytest.fixture
async def fake() -> AsyncIterator[FakePlatform]:
    async with FakePlatform() as f:
        yield f


# ---- 0.1.0 keeps working ------------------------------------------------------------------------------------------


async def test_a_0_1_0_component_still_loads_and_replies(airlock_home: Path, install_channel: InstallFn,
                                                         wat_dir: Path) -> None:
    wasm = build_component(wat_dir, "legacy")  # a hand-written component of the frozen 0.1.0 world
    install_channel(wasm, {"name": "legacy", "version": "0.1.0", "wit_version": "0.1.0",
                           "capabilities": {"channel": {"allowed_paths": ["/webhook/legacy"]}},
                           "config": {"dm_policy": "open"}})
    async with AirlockHost(HostConfig.build(home=airlock_home, listen_port=0)) as host:
        channel = host.manager.slots["legacy"].channel
        assert channel.loaded.world.name == "airlock:channel/sandboxed-channel@0.1.0"
        assert channel.loaded.optional_exports == () and not channel.can_edit
        out = await host.respond(await _again(host, "legacy"), "echo: hi")
        assert out.ok and out.value is None, out.error  # channel.on-respond: no platform id
        assert channel.workspace.snapshot()[0]["last-reply"] == "echo: hi"
        # a stream on a channel without on-edit is one message, with the final text
        stream = await host.reply(await _again(host, "legacy"), "par", stream=True)
        await stream.update("partial")
        assert (await stream.finish("the whole reply")).ok
        assert channel.workspace.snapshot()[0]["last-reply"] == "the whole reply"
        # no on-react: a reaction is refused before anything is queued
        replies = await asyncio.to_thread(host.log.list_outbox)
        with pytest.raises(StreamError, match="cannot react"):
            await host.react(replies[0].id, "👍")
        assert len(await asyncio.to_thread(host.log.list_outbox)) == len(replies)


async def _again(host: AirlockHost, instance: str) -> Delivery:
    entry = NewEntry(instance=instance, user_id="u1", user_name=None, thread_id=None, content="more",
                     metadata_json="{}", route=Route(agent=host.config.default_agent, session_key="s",
                                                     conversation=f"{instance}:u1"))
    await asyncio.to_thread(host.log.commit, instance, {}, [entry], time.time())
    host.bus.appended(1)
    return await asyncio.wait_for(host.next_message(), 10)


# ---- typed send errors take precedence --------------------------------------------------------------------------


async def test_typed_temporary_error_is_retried_although_the_platform_said_400(
        airlock_home: Path, install_channel: InstallFn, fake: FakePlatform) -> None:
    fake.statuses["/send"] = [400]  # by the HTTP answer alone: permanent, a dead letter after one try
    async with sender_host(airlock_home, install_channel, fake) as host:
        msg = await inbound(host)
        first = await host.respond(msg, "typed:temporary hello")
        assert not first.ok and getattr(first.error, "send_class", None) == "temporary"
        [reply] = await asyncio.to_thread(host.log.list_outbox)
        done = await settled(host, reply.id)
        assert (done.state, done.attempts, done.platform_message_id) == ("sent", 2, "m2")
    assert [status for _at, _doc, status in fake.sent("/send")] == [400, 200]


async def test_typed_permanent_error_is_not_retried_although_the_platform_said_500(
        airlock_home: Path, install_channel: InstallFn, fake: FakePlatform) -> None:
    fake.statuses["/send"] = [500, 500, 500]  # by the HTTP answer alone: retried with backoff
    async with sender_host(airlock_home, install_channel, fake) as host:
        msg = await inbound(host)
        await host.respond(msg, "typed:permanent hello")
        [reply] = await asyncio.to_thread(host.log.list_outbox)
        done = await settled(host, reply.id)
        assert (done.state, done.attempts) == ("failed", 1)
        assert done.last_error == "platform answered 500"
        await asyncio.sleep(1.0)
    assert len(fake.sent("/send")) == 1


async def test_typed_rate_limit_waits_the_guests_seconds(
        airlock_home: Path, install_channel: InstallFn, fake: FakePlatform) -> None:
    fake.statuses["/send"] = [400]
    async with sender_host(airlock_home, install_channel, fake) as host:
        msg = await inbound(host)
        await host.respond(msg, "typed:rate:2 hello")
        [reply] = await asyncio.to_thread(host.log.list_outbox)
        assert (await settled(host, reply.id)).state == "sent"
    (t1, _, s1), (t2, _, s2) = fake.sent("/send")
    assert (s1, s2) == (400, 200) and t2 - t1 >= 2.0


async def test_unclassified_errors_are_still_read_from_the_http_answers(
        airlock_home: Path, install_channel: InstallFn, fake: FakePlatform) -> None:
    fake.statuses["/send"] = [400]
    async with sender_host(airlock_home, install_channel, fake) as host:
        msg = await inbound(host)
        await host.respond(msg, "plain hello")
        [reply] = await asyncio.to_thread(host.log.list_outbox)
        assert ((await settled(host, reply.id)).state, len(fake.sent("/send"))) == ("failed", 1)


# ---- ids, edits, reactions, inspect --------------------------------------------------------------------------------


async def test_the_platform_id_is_kept_and_used_by_edits_and_reactions(
        airlock_home: Path, install_channel: InstallFn, fake: FakePlatform) -> None:
    async with sender_host(airlock_home, install_channel, fake) as host:
        msg = await inbound(host)
        out = await host.respond(msg, "first")
        assert out.ok and out.value == "m1"
        [reply] = await asyncio.to_thread(host.log.list_outbox)
        assert (await settled(host, reply.id)).platform_message_id == "m1"
        assert (await host.edit(reply.id, "second")).ok
        assert (await host.react(reply.id, "👍")).ok
        assert (await host.react(reply.id, "👍", remove=True)).ok
    assert [doc for _at, doc, _s in fake.sent("/edit")] == [{"id": "m1", "text": "second"}]
    assert [doc for _at, doc, _s in fake.sent("/react")] == [{"id": "m1", "emoji": "👍", "remove": False},
                                                            {"id": "m1", "emoji": "👍", "remove": True}]


async def test_the_agent_api_reacts_on_a_sent_reply(airlock_home: Path, install_channel: InstallFn,
                                                     fake: FakePlatform) -> None:
    async with sender_host(airlock_home, install_channel, fake) as host, aiohttp.ClientSession() as s:
        token = host.agents.add("reactor", None)[0]
        other = host.agents.add("other", None)[0]
        api, hdrs = f"http://127.0.0.1:{host.agent_api_port}/v1", {"Authorization": f"Bearer {token}"}
        entry = NewEntry(instance="sender", user_id="c1", user_name=None, thread_id=None, content="hi",
                         metadata_json=json.dumps({"chat": "c1"}),
                         route=Route(agent="reactor", session_key="sender:c1", conversation="sender:c1"))
        await asyncio.to_thread(host.log.commit, "sender", {}, [entry], time.time())
        host.bus.appended(1, ["reactor"])
        r = await s.post(f"{api}/messages/{entry.id}/reply", json={"text": "first"}, headers=hdrs)
        assert r.status == 202, await r.text()
        reply_id = (await r.json())["outbox_id"]
        assert (await settled(host, reply_id)).platform_message_id == "m1"
        react = f"{api}/outbox/{reply_id}/react"
        r = await s.post(react, json={"emoji": "👍"}, headers={**hdrs, "Idempotency-Key": "r1"})
        assert r.status == 202, await r.text()
        assert (await settled(host, (await r.json())["outbox_id"])).state == "sent"
        again = await s.post(react, json={"emoji": "👍"}, headers={**hdrs, "Idempotency-Key": "r1"})
        assert again.status == 202 and again.headers.get("Idempotent-Replayed") == "true"  # not sent twice
        r = await s.post(react, json={"emoji": "👍", "remove": True}, headers=hdrs)
        assert (await settled(host, (await r.json())["outbox_id"])).state == "sent"
        # another agent's reply does not exist for it; an empty or over-long emoji is refused
        assert (await s.post(react, json={"emoji": "👍"}, headers={"Authorization": f"Bearer {other}"})).status == 404
        for bad in ("", "x" * 101):
            assert (await s.post(react, json={"emoji": bad}, headers=hdrs)).status == 422
    assert [doc for _at, doc, _s in fake.sent("/react")] == [{"id": "m1", "emoji": "👍", "remove": False},
                                                            {"id": "m1", "emoji": "👍", "remove": True}]


def test_inspect_lists_the_optional_exports(airlock_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_HOME", str(airlock_home))
    r = CliRunner().invoke(cli.app, ["inspect", str(SENDER), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["world"] == "airlock:channel/sandboxed-channel@0.2.0"
    assert doc["optional_exports"] == {"delivery": True, "edits": True, "reactions": True}
    assert doc["exports"]["airlock:channel/delivery@0.2.0"] == ["on-respond", "on-broadcast"]
    assert doc["exports"]["airlock:channel/edits@0.2.0"] == ["on-edit"]
    text = CliRunner().invoke(cli.app, ["inspect", str(SENDER)])
    assert "delivery: yes, edits: yes, reactions: yes" in text.stdout
