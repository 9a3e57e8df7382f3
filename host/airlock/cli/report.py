"""Reports for ``airlock inspect`` and ``airlock invoke``: JSON-able documents and their rich rendering.

The documents are plain dicts (``json.dumps`` ready); the text renderers only read them, so ``--json`` and
the human output always say the same thing. Every string that came from a guest or a capabilities file
is printed as plain ``rich.text.Text`` (never parsed as markup) with control characters escaped, so a
guest cannot restyle or spoof the operator's terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..manifest import CapabilitiesFile
from ..observability.docs import json_or_text, jsonable, redact, safe, trap_class
from ..runtime.engine import OPTIONAL_EXPORTS

if TYPE_CHECKING:
    from ..channels.channel import CallOutcome, Channel
    from ..runtime.engine import LoadedComponent

__all__ = [
    "caps_summary",
    "component_doc",
    "human_size",
    "invoke_doc",
    "json_or_text",
    "jsonable",
    "redact",
    "render_inspect",
    "render_invoke",
    "safe",
    "trap_class",
    "unsupported_doc",
]

#: Longest workspace value / message content shown in a report, in characters.
MAX_SHOWN = 2000


def human_size(n: int) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024)."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def caps_summary(caps: CapabilitiesFile) -> str:
    """One line describing what a capabilities file grants."""
    cap = caps.capabilities
    paths = ", ".join(cap.channel.allowed_paths) or "none"
    hosts = sorted({a.host for a in cap.http.allowlist}) if cap.http else []
    http = f"{len(hosts)} host{'s' if len(hosts) != 1 else ''} ({', '.join(hosts)})" if hosts else "none"
    required = [s.name for s in caps.setup.required_secrets if not s.optional] if caps.setup else []
    polling = (f"allowed (min {cap.channel.min_poll_interval_ms / 1000:g} s)" if cap.channel.allow_polling
               else "off")
    return (f"{caps.name} {caps.version} (wit {caps.wit_version}): webhook paths {paths}; http {http}; "
            f"required secrets {', '.join(required) or 'none'}; polling {polling}")


# ---- inspect -------------------------------------------------------------------------------------


def component_doc(loaded: LoadedComponent) -> dict[str, Any]:
    """The ``inspect`` document of a component Airlock can run."""
    return {
        "path": str(loaded.path),
        "supported": True,
        "reason": None,
        "world": loaded.world.name,
        "host_interface": loaded.world.host_interface,
        "channel_interface": loaded.world.channel_interface,
        "imports": list(loaded.imports),
        "imports_wasi": loaded.imports_wasi,
        "exports": _exports_doc(loaded),
        "optional_exports": {name: loaded.exports_optional(name)
                             for name in OPTIONAL_EXPORTS.get(loaded.world.channel_interface, {})},
        "size_bytes": loaded.size_bytes,
        "sha256": loaded.sha256,
        "load_ms": round(loaded.load_ms, 2),
        "from_cache": loaded.from_cache,
    }


def _exports_doc(loaded: LoadedComponent) -> dict[str, list[str]]:
    """Exported interface -> its callbacks: the channel interface, then each optional interface the component has
    (world 0.2.0: ``airlock:channel/delivery@0.2.0``: on-respond, on-broadcast; ``edits``; ``reactions``)."""
    channel = loaded.world.channel_interface
    doc: dict[str, list[str]] = {channel: [n for n in loaded.exports if "." not in n]}
    package, version = channel.split("/", 1)[0], channel.rsplit("@", 1)[1]
    for name in loaded.optional_exports:
        doc[f"{package}/{name}@{version}"] = [n.split(".", 1)[1] for n in loaded.exports if n.startswith(f"{name}.")]
    return doc


def unsupported_doc(
    path: str, reason: str, *, size_bytes: int | None, sha256: str | None, load_ms: float,
    imports: list[str] | None, exports: list[str] | None,
) -> dict[str, Any]:
    """The ``inspect`` document of a file Airlock cannot run; ``imports``/``exports`` when known."""
    return {
        "path": path,
        "supported": False,
        "reason": reason,
        "world": None,
        "host_interface": None,
        "channel_interface": None,
        "imports": imports or [],
        "imports_wasi": any(i.startswith("wasi:") for i in imports or []),
        "exports": {name: [] for name in exports or []},
        "optional_exports": {},
        "size_bytes": size_bytes,
        "sha256": sha256,
        "load_ms": round(load_ms, 2),
        "from_cache": False,
    }


def _kv_grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    return grid


def render_inspect(console: Console, doc: Mapping[str, Any]) -> None:
    """Print an ``inspect`` document as a key/value list."""
    grid = _kv_grid()
    size = doc.get("size_bytes")
    grid.add_row("component", Text(safe(str(doc["path"]))))
    if size is not None:
        exact = f" ({size} bytes)" if size >= 1024 else ""
        grid.add_row("size", Text(f"{human_size(size)}{exact}, sha256 {str(doc['sha256'])[:16]}…"))
    if doc["supported"]:
        grid.add_row("world", Text(str(doc["world"])))
        grid.add_row("supported", Text("yes", style="green"))
    else:
        grid.add_row("supported", Text("no", style="red"))
    imports = list(doc["imports"])
    grid.add_row("imports", Text("\n".join(safe(i) for i in imports) or "none"))
    exports = dict(doc["exports"])
    lines = [f"{safe(k)}: {', '.join(v)}" if v else safe(k) for k, v in exports.items()]
    grid.add_row("exports", Text("\n".join(lines) or "none"))
    optional = dict(doc.get("optional_exports") or {})
    if optional:  # world 0.2.0: which optional interfaces the component implements
        grid.add_row("optional", Text(", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in optional.items())))
    how = "from the compile cache" if doc["from_cache"] else "compiled (now cached)"
    if not doc["supported"]:
        how = "compile attempt"
    grid.add_row("load", Text(f"{doc['load_ms']:.1f} ms, {how}"))
    console.print(grid)


# ---- invoke --------------------------------------------------------------------------------------


def _value_doc(value: Any) -> Any:
    doc = jsonable(value)
    if isinstance(doc, dict) and "headers_json" in doc and "body" in doc:  # outgoing-http-response
        doc = {"status": doc.get("status"), "headers": json_or_text(str(doc["headers_json"])),
               "body": doc["body"]}
    return doc


def _message_doc(msg: Any, admitted: bool) -> dict[str, Any]:
    return {
        "user_id": msg.user_id,
        "user_name": msg.user_name,
        "content": safe(msg.content, MAX_SHOWN),
        "thread_id": msg.thread_id,
        "metadata": json_or_text(msg.metadata_json),
        "attachments": [jsonable(a) for a in msg.attachments],
        "admitted": admitted,
    }


def invoke_doc(channel: Channel, out: CallOutcome, request: Any) -> dict[str, Any]:
    """Everything one callback did, as a JSON-able document (see ``airlock invoke --help``)."""
    state = out.state
    trace = [{"function": c.function, "ok": c.ok, "error": c.error, "detail": jsonable(c.detail)}
             for c in (state.trace if state is not None else [])]
    logs = [{"level": lvl, "message": msg} for lvl, msg in (state.logs.entries if state is not None else [])]
    http = [jsonable(a) for a in (state.http_audit if state is not None else [])]
    admitted = {id(m.message) for m in out.messages}
    buffered = state.emits.messages if state is not None else []
    emitted = [_message_doc(m, id(m) in admitted) for m in buffered]
    writes = dict(state.workspace.writes) if state is not None else {}
    reads = sorted(state.workspace.reads) if state is not None else []
    trap = trap_class(out.error)
    fuel_limit = channel.limits.fuel
    fuel_used: int | None = out.stats.fuel_used if out.stats is not None else None
    if fuel_used is None and trap == "fuel":
        fuel_used = fuel_limit
    loaded = channel.loaded
    return {
        "callback": out.callback,
        "channel": channel.name,
        "version": channel.caps.version,
        "world": loaded.world.name,
        "component": {"path": str(loaded.path), "size_bytes": loaded.size_bytes,
                      "load_ms": round(loaded.load_ms, 2), "from_cache": loaded.from_cache},
        "input": jsonable(request),
        "ok": out.ok,
        "error": None if out.error is None else {"class": trap, "message": str(out.error)},
        "value": _value_doc(out.value) if out.ok else None,
        "host_calls": trace,
        "logs": logs,
        "http": http,
        "emitted": emitted,
        "workspace": {"reads": reads,
                      "writes": {k: safe(v, MAX_SHOWN) for k, v in writes.items()},
                      "applied": out.ok},
        "fuel_used": fuel_used,
        "fuel_limit": fuel_limit,
        "elapsed_ms": round(out.elapsed_s * 1000, 3),
        "attempts": out.attempts,
        "limits": {"memory_bytes": channel.limits.memory_bytes, "fuel": fuel_limit,
                   "timeout_s": channel.limits.timeout_s},
    }


def _call_summary(call: Mapping[str, Any]) -> str:
    fn = call["function"]
    d: dict[str, Any] = call["detail"]
    if fn == "log":
        return f"{d.get('level', '')}: {d.get('message', '')}"
    if fn == "emit-message":
        return f"to {d.get('user_id', '?')}: {d.get('content', '')}"
    if fn == "workspace-read":
        found = d.get("found")
        return f"{d.get('path', '')}" + ("" if found is None else " (found)" if found else " (absent)")
    if fn == "workspace-write":
        return f"{d.get('path', '')}" + (f" ({d['bytes']} bytes)" if "bytes" in d else "")
    if fn == "http-request":
        target = f"{d.get('method', '')} {d.get('url', '')}".strip()
        notes = []
        if "allowed" in d:
            notes.append("allowed" if d["allowed"] else "refused by policy")
        if d.get("status") is not None:
            notes.append(f"status {d['status']}")
        if "elapsed_ms" in d:
            notes.append(f"{d['elapsed_ms']} ms")
        return f"{target} -> {', '.join(notes)}" if notes else target
    if fn == "secret-exists":
        return f"{d.get('name', '')} -> {'yes' if d.get('exists') else 'no'}"
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _line(console: Console, *parts: tuple[str, str]) -> None:
    text = Text()
    for chunk, style in parts:
        text.append(chunk, style=style)
    console.print(text, soft_wrap=True)


def _render_calls(console: Console, calls: list[Mapping[str, Any]]) -> None:
    _line(console, (f"host calls ({len(calls)})", "bold"), (":" if calls else ": none", ""))
    width = max((len(c["function"]) for c in calls), default=0)
    for i, call in enumerate(calls, 1):
        mark, style = ("ok", "green") if call["ok"] else ("REFUSED" if call["function"] == "http-request"
                                                           else "FAILED", "red")
        parts = [(f"  {i:>3}. ", "dim"), (call["function"].ljust(width), "cyan"),
                 (f"  {safe(_call_summary(call), MAX_SHOWN)}  ", ""), (mark, style)]
        if call["error"]:
            parts.append((f": {safe(call['error'])}", style))
        _line(console, *parts)


def _render_result(console: Console, doc: Mapping[str, Any]) -> None:
    if doc["ok"]:
        _line(console, ("result: ", "bold"), ("ok", "bold green"))
        if doc["value"] is not None:
            shown = safe(json.dumps(doc["value"], ensure_ascii=False), MAX_SHOWN)
            _line(console, ("  value: ", "bold"), (shown, ""))
    else:
        err = doc["error"]
        _line(console, ("result: ", "bold"), (f"FAILED ({err['class']})", "bold red"),
              (f": {safe(err['message'])}", "red"))
    if doc.get("not_run"):
        _line(console, (f"{doc['not_run']} not run: on-start failed (--after-start)", "bold red"))


def _render_effects(console: Console, doc: Mapping[str, Any]) -> None:
    emitted = list(doc["emitted"])
    if emitted:
        _line(console, (f"emitted messages ({len(emitted)}):", "bold"))
        for m in emitted:
            fate = ("would go to the agent" if m["admitted"]
                    else "discarded" if not doc["ok"] else "dropped by the emit rate limit")
            _line(console, (f"  - {safe(str(m['user_id']))}: {m['content']}", ""), (f"  ({fate})", "dim"))
    ws = doc["workspace"]
    if ws["writes"]:
        fate = "committed to the temporary workspace" if ws["applied"] else "discarded (callback failed)"
        _line(console, (f"workspace writes ({len(ws['writes'])}, {fate}):", "bold"))
        for key, value in ws["writes"].items():
            _line(console, (f"  {safe(key)} = ", "cyan"), (json.dumps(value, ensure_ascii=False), ""))
    offline = doc.get("offline")
    if offline is not None:
        _line(console, (f"offline requests ({len(offline['requests'])}):", "bold"))
        for r in offline["requests"]:
            answer = "no canned response" if r["answered_by"] is None else f"canned response #{r['answered_by']}"
            _line(console, (f"  {safe(r['method'])} {safe(r['url'], MAX_SHOWN)}", ""), (f"  -> {answer}", "dim"))


def render_invoke(console: Console, doc: Mapping[str, Any]) -> None:
    """Print an ``invoke`` document as a readable list."""
    started = doc.get("after_start")
    if started is not None:
        keys = ", ".join(safe(k) for k in started["workspace"]["writes"]) or "none"
        _line(console, ("after on-start: ", "bold"), ("ok", "green"),
              (f" ({len(started['host_calls'])} host calls; workspace writes: {keys})", ""))
    seeded = doc["workspace"].get("seeded")
    if seeded:
        _line(console, ("workspace seeded: ", "bold"), (", ".join(safe(k) for k in seeded), ""))
    _line(console, (f"{doc['callback']}", "bold"),
          (f"  channel {safe(doc['channel'])} {safe(doc['version'])} · {doc['world']}", ""))
    _line(console, ("input: ", "bold"), (safe(json.dumps(doc["input"], ensure_ascii=False), MAX_SHOWN), ""))
    _render_calls(console, list(doc["host_calls"]))
    _render_result(console, doc)
    _render_effects(console, doc)
    fuel = doc["fuel_used"]
    fuel_text = "unknown" if fuel is None else f"{fuel:,}"
    _line(console, ("fuel used: ", "bold"), (f"{fuel_text} of {doc['fuel_limit']:,}", ""),
          ("   time: ", "bold"), (f"{doc['elapsed_ms']:.1f} ms", ""),
          ("   attempts: ", "bold"), (str(doc["attempts"]), ""))
