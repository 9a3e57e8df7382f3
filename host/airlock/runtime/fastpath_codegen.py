"""A tiny code generator: straight-line Python functions compiled once per WIT type.

The fast path turns each record, list, option... type into a Python function whose body is the exact
sequence of checks, reads and writes for that type (field names, offsets, struct formats and kind bytes
are literals), so a call does no type dispatch and reads no type information. Generated functions live
in one namespace per ``Module``; identical types share one function.

Names taken from a component (record fields, cases: untrusted input) only ever enter generated source
through ``repr()`` of a ``str`` or as integers, so they cannot change the code's meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

INDENT = "    "


class Module:
    """A namespace of generated functions and the constants they use."""

    def __init__(self, label: str, namespace: dict[str, Any]) -> None:
        self.label = label
        self.ns: dict[str, Any] = dict(namespace)
        self._count = 0
        self._const_ids: dict[int, str] = {}
        self._pending: list[str] = []
        self.cache: dict[Any, str] = {}
        self.sources: list[str] = []  # everything defined, for reading what was generated

    def fresh(self, prefix: str) -> str:
        """A new unique identifier."""
        self._count += 1
        return f"{prefix}{self._count}"

    def const(self, value: Any, prefix: str = "C") -> str:
        """A name bound to ``value`` in the namespace (the same object always gets the same name)."""
        key = id(value)
        name = self._const_ids.get(key)
        if name is None:
            name = self.fresh(prefix)
            self.ns[name] = value
            self._const_ids[key] = name
        return name

    def define(self, source: str) -> None:
        """Queue one function's source; it is compiled by ``build``."""
        self._pending.append(source)
        self.sources.append(source)

    def build(self) -> None:
        """Compile every queued function into the namespace."""
        if not self._pending:
            return
        source = "\n\n".join(self._pending)
        self._pending = []
        code = compile(source, f"<airlock fastpath {self.label}>", "exec")
        exec(code, self.ns)

    def get(self, name: str) -> Callable[..., Any]:
        fn: Callable[..., Any] = self.ns[name]
        return fn


def function(name: str, params: str, body: list[str]) -> str:
    """Source of ``def name(params):`` with ``body`` (lines already indented by one level or more). A
    ``kp = ...`` binding that nothing uses is dropped."""
    if body and body[0].strip().startswith("kp = ") and not any("kp(" in line for line in body[1:]):
        body = body[1:]
    lines = [f"def {name}({params}):", *(body or [f"{INDENT}pass"])]
    return "\n".join(lines)


def unpack_targets(names: list[str]) -> str:
    """Assignment targets for a struct unpack (a trailing comma for a single value)."""
    return ", ".join(names) + ("," if len(names) == 1 else "")
