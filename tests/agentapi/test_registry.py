"""The agents registry (stores/agents.py) on a real SQLite file: names, URLs, tokens, answers, grants."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlock.errors import ConfigError
from airlock.stores import SecretStore
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


def test_tokens_answers_and_grants(tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path / "agents.db")
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
