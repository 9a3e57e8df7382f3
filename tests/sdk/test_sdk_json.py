"""The SDK's json fast paths (airlock_sdk._json) give the stdlib's values, text and exceptions."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "python"))

from airlock_sdk import _json


def _outcome(fn: Callable[[Any], Any], arg: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(arg)
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize(
    "text",
    ['{"a": 1, "b": [1, 2.5, null, true], "c": "\\u00e9"}', ' {"a": 1}', '{"a": 1}\n', "", "   ", "[1, 2",
     "\ufeff{}", "NaN", "1e5", '"x"', "{}x", '{"a": }', "{}"],
)
def test_loads_matches_stdlib(text: str) -> None:
    assert _outcome(_json.loads, text) == _outcome(json.loads, text)


@pytest.mark.parametrize(
    "value",
    [{"ok": True}, {"a": [1, 2.5, None, "é\n\""], "b": {}}, {1: 2, None: 3}, {"x": float("nan")}, [set()],
     {(1, 2): 3}, "plain", 1e300],
)
def test_dumps_matches_stdlib(value: Any) -> None:
    assert _outcome(_json.dumps, value) == _outcome(json.dumps, value)


def test_dumps_fast_path_is_used_on_cpython_and_detects_cycles() -> None:
    assert _json._FAST_DUMPS
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        _json.dumps(loop)
    assert _json.dumps({"after": "a failure"}) == '{"after": "a failure"}'
