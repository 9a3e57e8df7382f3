"""The agents registry (stores/agents.py) on a real SQLite file and on a real PostgreSQL (the cluster's registry):
names, URLs, tokens, answers, grants; on PostgreSQL, two pools (two nodes) see one registry."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.errors import ConfigError
from airlock.state.postgres import PgDb
from airlock.stores import SecretStore
from airlock.stores._sql import PgQmarkDb
from airlock.stores.agents import (
    IDEMPOTENCY_TTL_S,
    MAX_PUSH_URL_CHARS,
    AgentRegistry,
    StoredAnswer,
    check_name,
    check_push_url,
    push_secret_name,
)
from airlock.stores.secrets import is_valid_secret_name


@pytest.mark.parametrize("name", ["main", "a", "0agent", "my-agent_2", "x" * 64])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name
    assert is_valid_secret_name(push_secret_name(name))  # whatever the agent name, its secret name is valid


@pytest.mark.parametrize("name", ["", "-a", "_a", "A", "a b", "x" * 65, "a\n", "é", "a/b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid agent name"):
        check_name(name)


@pytest.mark.parametrize("url", ["ftp://x/hook", "http://user:pw@127.0.0.1/hook", "not a url", "http://[::1/",
                                 "http://h:99999/", "https:///path", "http://x/" + "a" * MAX_PUSH_URL_CHARS])
def test_invalid_push_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_push_url(url)


OpenRegistry = Callable[[], AgentRegistry]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenRegistry]:
    """``open_registry()``: one more handle on the same registry (on PostgreSQL a pool of its own: another node)."""
    opened: list[AgentRegistry] = []

    def make() -> AgentRegistry:
        if request.param == "sqlite":
            opened.append(AgentRegistry(tmp_path / "agents.db"))
        else:
            opened.append(AgentRegistry(PgQmarkDb(PgDb(request.getfixturevalue("pg_url"), max_size=4),
                                                  owns_db=True)))
        return opened[-1]

    yield make
    for registry in opened:
        registry.close()


def test_tokens_answers_and_grants(tmp_path: Path, open_registry: OpenRegistry) -> None:
    registry = open_registry()
    store = SecretStore.open(tmp_path)
    try:
        token, secret = registry.add("a", store)
        assert secret is None and registry.authenticate(token) == "a" and registry.authenticate("") is None
        with pytest.raises(ConfigError, match="secret store"):
            registry.add("b", None, "http://127.0.0.1/x")
        assert registry.get("b") is None
        first = registry.remember("a", "k", StoredAnswer("fp1", 202, '{"x": 1}'), now=1000.0)
        second = registry.remember("a", "k", StoredAnswer("fp2", 409, "{}"), now=1001.0)
        assert first == second == StoredAnswer("fp1", 202, '{"x": 1}')  # the first answer wins
        assert registry.answer("a", "k", now=1000.0 + IDEMPOTENCY_TTL_S - 1) == first
        assert registry.answer("a", "k", now=1000.0 + IDEMPOTENCY_TTL_S + 1) is None  # expired
        assert registry.answer("b", "k", now=1000.0) is None  # keys are per agent
        registry.grant("a", ["f" * 64], now=1000.0)
        assert registry.granted("a", "f" * 64) and not registry.granted("b", "f" * 64)
        assert registry.compact(now=1000.0 + 10, retention_s=5) == 1
        assert not registry.granted("a", "f" * 64)
        assert registry.remove("a", store) and not registry.remove("a", store)
        assert registry.authenticate(token) is None
    finally:
        registry.close()


def test_one_registry_for_every_node(tmp_path: Path, open_registry: OpenRegistry) -> None:
    """What one node (or the CLI of one home) writes, another reads: tokens, answers, grants, push agents."""
    a, b = open_registry(), open_registry()
    store = SecretStore.open(tmp_path)
    token, _ = a.add("bot", None, now=1000.0)
    assert b.authenticate(token) == "bot" and b.get("bot") is not None
    with pytest.raises(ConfigError, match="exists already"):
        b.add("bot", None)
    assert a.authenticate(token) == "bot"  # the refused add changed nothing
    assert a.remember("bot", "k1", StoredAnswer("fp", 202, '{"id": "x"}'), now=1000.0).status == 202
    assert b.remember("bot", "k1", StoredAnswer("fp", 500, "{}"), now=1001.0) == StoredAnswer("fp", 202,
                                                                                              '{"id": "x"}')
    assert b.answer("bot", "k1", now=1002.0) == StoredAnswer("fp", 202, '{"id": "x"}')
    a.grant("bot", ["e" * 64, "e" * 64], now=1000.0)  # a digest twice in one message: one grant
    assert b.granted("bot", "e" * 64)
    _, secret = b.add("pusher", store, "http://127.0.0.1:9/hook")
    record = a.get("pusher")
    assert record is not None and record.mode == "push" and record.push_secret_name is not None
    assert store.get(record.push_secret_name) == secret
    assert [r.name for r in a.all()] == ["bot", "pusher"]
    assert b.remove("bot", store)
    assert a.authenticate(token) is None and not a.granted("bot", "e" * 64) and a.answer("bot", "k1") is None


def test_one_name_added_at_once_by_two_nodes(open_registry: OpenRegistry) -> None:
    """Two nodes add one name at the same moment: exactly one gets a token; the other is told it exists."""
    a, b = open_registry(), open_registry()
    results: list[str] = []
    barrier = threading.Barrier(2)

    def add(registry: AgentRegistry) -> None:
        barrier.wait()
        try:
            results.append(registry.add("twin", None)[0])
        except ConfigError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=add, args=(r,)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum("exists already" in r for r in results) == 1
    (token,) = [r for r in results if "exists already" not in r]
    assert a.authenticate(token) == b.authenticate(token) == "twin"
