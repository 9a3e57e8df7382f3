"""One gateway across nodes for the agents (issue 12): two real ``airlock serve`` processes, each with its own home,
on one real PostgreSQL. An agent added with the CLI of node A's home authenticates on node B's agent API; an
Idempotency-Key answered by A is replayed by B (and refused by B for another body); a message whose attachment node
B's webhook received is downloaded through A's agent API (and through B's: the grant A recorded is B's too); a file
uploaded to A is attached to a reply made on B once A has stopped, so B's outbox sender delivers it to the channel.
The channel is the WAT test guest in mode ``attach`` (``watguest``): it stores the webhook body as an attachment and
writes the first reply attachment's bytes into its workspace, which the test reads from PostgreSQL."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from conftest import minimal_caps
from nodeproc import Node, cli, make_home
from watguest import build_component

from airlock.messages.postgres import PostgresMessageLog

INBOUND = "%PDF-1.4 received by node b, é".encode()  # the guest emits the body as the text too: UTF-8
REPLY_FILE = b"reply file uploaded to node a"
DELIVERED_S = 15.0
"""Seconds within which a reply is delivered (the outbox sender wakes at once; well under one second)."""


def call(url: str, token: str, method: str = "GET", body: bytes | dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    h = {"Authorization": f"Bearer {token}", **({"Content-Type": "application/json"} if isinstance(body, dict)
                                                else {}), **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def webhook(node: Node, body: bytes) -> int:
    req = urllib.request.Request(f"{node.url}/webhook/alpha", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status)


def test_agents_and_blobs_are_the_clusters(tmp_path: Path, pg_url: str, compile_cache: Path) -> None:
    home_a, home_b = (make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b"))
    for home in (home_a, home_b):
        with (home / "airlock.toml").open("a") as f:
            f.write('default_agent = "bot"\n')
    caps = tmp_path / "alpha.capabilities.json"
    caps.write_text(json.dumps(minimal_caps("alpha", durable_workspace_paths=["last-reply"])))  # read from PG
    installed = cli(home_a, "channels", "install", str(build_component(tmp_path / "wat", "alpha", mode="attach")),
                    str(caps))
    assert installed.returncode == 0, installed.stderr
    added = cli(home_a, "agents", "add", "bot", "--json")
    assert added.returncode == 0, added.stderr
    token = json.loads(added.stdout)["token"]
    assert not (home_b / "agents.db").exists() and not (home_a / "agents.db").exists()  # not a home's file
    a, b = Node(home_a), Node(home_b)
    log = PostgresMessageLog.open(pg_url)
    try:
        assert call(f"{b.api_url}/messages?wait=0", token)[0] == 200  # A's agent, known to B
        assert call(f"{b.api_url}/messages?wait=0", token + "x")[0] == 401
        assert webhook(b, b"first") == 200 and webhook(b, INBOUND) == 200  # received by B
        status, raw, _ = call(f"{a.api_url}/messages?wait=10&limit=2", token)
        assert status == 200, raw
        first, second = json.loads(raw)["messages"]
        [att] = second["attachments"]
        status, got, _ = call(f"{a.api_url}{att['url'].removeprefix('/v1')}", token)
        assert (status, got) == (200, INBOUND)  # B's blob, read through A
        assert call(f"{b.api_url}{att['url'].removeprefix('/v1')}", token)[1:2] == (INBOUND,)  # A's grant, on B

        # an Idempotency-Key answered on A is honoured on B
        reply = {"text": "pong", "lease_token": first["lease_token"]}
        key = {"Idempotency-Key": "reply-first"}
        status, raw, _ = call(f"{a.api_url}/messages/{first['id']}/reply", token, "POST", reply, key)
        assert status == 202, raw
        status, again, replay = call(f"{b.api_url}/messages/{first['id']}/reply", token, "POST", reply, key)
        assert (status, json.loads(again)) == (202, json.loads(raw)) and replay.get("Idempotent-Replayed") == "true"
        other = {**reply, "text": "another"}
        assert call(f"{b.api_url}/messages/{first['id']}/reply", token, "POST", other, key)[0] == 422
        outbox_id = json.loads(raw)["outbox_id"]
        wait_sent(log, outbox_id)
        assert len([o for o in log.list_outbox() if o.in_reply_to == first["id"]]) == 1

        # a file uploaded to A, sent by B's outbox sender (A is gone)
        status, raw, _ = call(f"{a.api_url}/attachments", token, "POST", REPLY_FILE)
        assert status == 201, raw
        digest = json.loads(raw)["sha256"]
        a.stop()
        body = {"text": "with a file", "lease_token": second["lease_token"],
                "attachments": [{"sha256": digest, "filename": "notes.txt", "mime_type": "text/plain"}]}
        status, raw, _ = call(f"{b.api_url}/messages/{second['id']}/reply", token, "POST", body)
        assert status == 202, raw
        wait_sent(log, json.loads(raw)["outbox_id"])
        assert log.load_workspace("alpha").get("last-reply") == REPLY_FILE.decode(), log.load_workspace("alpha")
    finally:
        log.close()
        a.stop()
        b.stop()


def wait_sent(log: PostgresMessageLog, outbox_id: str) -> None:
    deadline = time.monotonic() + DELIVERED_S
    while (entry := log.get_outbox(outbox_id)) is None or entry.state != "sent":
        assert time.monotonic() < deadline, entry
        time.sleep(0.1)
