"""A push agent on a cluster (``agentapi.push_lease``): two real ``airlock serve`` processes on one PostgreSQL both
know the push agent (the registry is the cluster's), but only the holder of its lease pushes, so one conversation's
messages reach the receiver one after another, in order, never two at once; when one node stops, the other pushes."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import minimal_caps
from nodeproc import Node, cli, make_home
from watguest import build_component

PUSH_ANSWER_S = 0.6
"""How long the receiver takes to answer a push: long enough for a second pusher to push alongside."""
PUSHED_S = 30.0
"""Seconds within which every message is pushed (answers of PUSH_ANSWER_S each, lease rounds of 2 s)."""


class Receiver:
    """A push receiver on 127.0.0.1: records each message's text in arrival order and the most pushes of one
    conversation it saw at once."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.open: dict[str, int] = {}
        self.most_at_once = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                conv = str(doc["conversation"])
                with lock:
                    outer.open[conv] = outer.open.get(conv, 0) + 1
                    outer.most_at_once = max(outer.most_at_once, outer.open[conv])
                time.sleep(PUSH_ANSWER_S)
                with lock:
                    outer.open[conv] -= 1
                    outer.texts.append(str(doc["content"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[str]:
        deadline = time.monotonic() + PUSHED_S
        while len(self.texts) < count:
            assert time.monotonic() < deadline, self.texts
            time.sleep(0.05)
        return list(self.texts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def webhook(node: Node, text: str) -> None:
    req = urllib.request.Request(f"{node.url}/webhook/alpha", data=text.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def test_one_node_pushes_to_a_push_agent(tmp_path: Path, pg_url: str, compile_cache: Path,
                                         receiver: Receiver) -> None:
    home_a, home_b = (make_home(tmp_path, n, pg_url, compile_cache) for n in ("a", "b"))
    for home in (home_a, home_b):
        with (home / "airlock.toml").open("a") as f:
            f.write('default_agent = "pusher"\n')
    caps = tmp_path / "alpha.capabilities.json"
    caps.write_text(json.dumps(minimal_caps("alpha")))
    installed = cli(home_a, "channels", "install", str(build_component(tmp_path / "wat", "alpha")), str(caps))
    assert installed.returncode == 0, installed.stderr
    added = cli(home_a, "agents", "add", "pusher", "--push-url", receiver.url)
    assert added.returncode == 0, added.stderr
    a, b = Node(home_a), Node(home_b)
    try:
        time.sleep(2.5)  # both nodes have looked at the registry (every 2 s): one of them holds the lease
        texts = [f"m{i}" for i in range(4)]
        for i, text in enumerate(texts):
            webhook((a, b)[i % 2], text)  # one conversation (the guest's user u1), through both nodes
        assert receiver.wait_for(len(texts)) == texts
        assert receiver.most_at_once == 1
        a.stop()  # gives its leases back: B, alone now, pushes (A's holder or not)
        webhook(b, "after")
        assert receiver.wait_for(len(texts) + 1)[-1] == "after"
    finally:
        a.stop()
        b.stop()
