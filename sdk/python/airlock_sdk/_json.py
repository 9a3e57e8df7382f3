"""``json.loads``/``json.dumps`` with the stdlib's defaults, minus the stdlib's Python wrapper layers.

Why: inside a component CPython runs as WebAssembly, where every bytecode costs ~100 wasm instructions;
``json.loads``/``json.dumps`` spend ~20-30k instructions in their Python wrappers (argument checks,
two whitespace regex matches, encoder set-up) around the C scanner/encoder, and a webhook callback makes
about six such calls. These call the same C functions the stdlib calls, with the same settings, so the
results and the exceptions are the stdlib's. Anything unusual (leading/trailing whitespace, a non-str
input, no C accelerator) goes through ``json.loads``/``json.dumps`` themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

# the scanner json.loads uses (json/decoder.py: JSONDecoder.__init__ sets scan_once = make_scanner(self))
_scan_once: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009
_default = json.JSONEncoder().default
_encode_str: Any = getattr(json.encoder, "c_encode_basestring_ascii", None)
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator


def loads(s: str) -> Any:
    """``json.loads(s)`` for a str (same value, same ``JSONDecodeError``)."""
    if type(s) is str:
        try:
            value, end = _scan_once(s, 0)
        except StopIteration:  # empty, whitespace first, or not JSON: the stdlib raises its own error
            return json.loads(s)
        if end == len(s):
            return value
    return json.loads(s)  # trailing whitespace or extra data: the stdlib decides


def _fast_dumps(obj: Any) -> str:
    # json.dumps(obj) with default arguments builds exactly this encoder (json/encoder.py, iterencode)
    encoder = _make_encoder({}, _default, _encode_str, None, ": ", ", ", False, False, True)
    return "".join(encoder(obj, 0))


def _self_check() -> bool:
    sample: Any = {"a": [1, 2.5, None, True, "é\n\"", {"b": -3}], "c": "x" * 3, "d": 1e300, "e": {}}
    try:
        return _make_encoder is not None and _encode_str is not None and _fast_dumps(sample) == json.dumps(sample)
    except Exception:  # a different C encoder signature: use the stdlib
        return False


_FAST_DUMPS = _self_check()


def dumps(obj: Any) -> str:
    """``json.dumps(obj)`` with default arguments (same text, same ``TypeError``/``ValueError``)."""
    if _FAST_DUMPS:
        return _fast_dumps(obj)
    return json.dumps(obj)
