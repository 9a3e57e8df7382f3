"""``airlock status``: is the gateway up, and is every channel working?

Where to look: ``--url``, else the runtime file the running gateway keeps in its home
(``HOME/run/gateway.json``, ``cli/runfile.py``), else the configured default address
(``http://127.0.0.1:8080``). The gateway's ``/health`` gives each channel's state, counters and websocket;
the runtime file adds versions, uptime and each channel's last errors; this home's install records add who
published each channel (``provenance``; not for a gateway named by ``--url``).

Something is failing (exit status 2, each problem on its own line) when the gateway does not answer, the
runtime file names a process that is gone, a channel is not active, a channel's websocket stopped for good,
or a channel's callback failed within the last :data:`RECENT_ERROR_S` seconds. Otherwise exit status 0.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console

from ..channels.catalog import list_installed, provenance_file
from ..errors import ConfigError
from ..host_config import HostConfig
from ..packages import provenance_doc
from .about import version_doc
from .app import app, config_from, friendly_errors
from .output import Column, JsonOption, console, print_json, show_rows
from .report import safe
from .runfile import pid_running, read_runfile, runfile_path

__all__ = ["PROBE_TIMEOUT_S", "RECENT_ERROR_S", "status"]

#: How long ``status`` waits for ``/health`` (seconds).
PROBE_TIMEOUT_S = 3.0
#: A callback error this recent (seconds) counts as failing.
RECENT_ERROR_S = 300
#: Largest ``/health`` answer read (bytes).
MAX_HEALTH_BYTES = 1024 * 1024
_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _local_url(url: str) -> str:
    """A URL a local client can connect to: a wildcard listen address becomes loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in _WILDCARD:
        target = _WILDCARD[host]
        netloc = f"[{target}]" if ":" in target else target
        return parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc).geturl()
    return url


def _probe(url: str, timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    """GET ``url/health``: (document, None) or (None, why it failed)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            body = resp.read(MAX_HEALTH_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return None, f"/health answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(getattr(reason, "strerror", None) or reason)
    if len(body) > MAX_HEALTH_BYTES:
        return None, f"/health answered more than {MAX_HEALTH_BYTES} bytes (is this an Airlock gateway?)"
    try:
        doc = json.loads(body)
    except ValueError:
        return None, "/health did not answer JSON (is this an Airlock gateway?)"
    if not isinstance(doc, dict) or not isinstance(doc.get("channels"), dict):
        return None, "/health answered without a channel list (is this an Airlock gateway?)"
    return doc, None


def _channel_rows(health: dict[str, Any], last_errors: dict[str, Any], now: float) -> list[dict[str, Any]]:
    rows = []
    for name, ch in sorted(health["channels"].items()):
        errors = last_errors.get(name) or []
        last = errors[-1] if errors and isinstance(errors[-1], dict) else None
        socket = ch.get("websocket") if isinstance(ch.get("websocket"), dict) else None
        rows.append({
            "name": name, "active": bool(ch.get("active")), "status": str(ch.get("status", "")),
            "world": ch.get("world"), "failures": ch.get("failures", 0), "polls": ch.get("polls", 0),
            "websocket": socket, "last_error": last,
            "warnings": [str(w) for w in ch.get("warnings") or [] if isinstance(w, str)],
            "last_error_age_s": None if last is None else max(0, round(now - float(last.get("at", now)))),
        })
    return rows


def _problems(gateway: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    problems = [] if gateway["up"] else [f"gateway not reachable at {gateway['url']}: {gateway['error']}"]
    if gateway.get("stale_pid") is not None:
        problems.append(f"the runtime file names pid {gateway['stale_pid']}, which is not running "
                        "(the gateway stopped without cleaning up)")
    for row in rows:
        if not row["active"]:
            problems.append(f"channel {row['name']}: {row['status']}")
        socket = row["websocket"]
        if row["active"] and socket is not None and socket.get("state") == "stopped":
            problems.append(f"channel {row['name']}: websocket stopped: {socket.get('reason')}")
        err, age = row["last_error"], row["last_error_age_s"]
        if err is not None and age is not None and age <= RECENT_ERROR_S:
            problems.append(f"channel {row['name']}: {err.get('callback')} failed {age} s ago "
                            f"({err.get('class')}): {err.get('message')}")
    return problems


def _worker_problems(workers: list[dict[str, Any]]) -> list[str]:
    return [f"worker {w['index']}: crash loop (last exit {w['last_exit']}), not restarted" for w in workers
            if w.get("state") == "crash-loop"]


def status_doc(config: HostConfig, url: str | None, timeout: float) -> dict[str, Any]:
    """Everything ``status`` reports (its ``--json`` document); ``workers`` is the supervisor's list under
    ``airlock serve --workers N`` (``workers.supervisor``: index, pid, state, restarts, last_exit), else null."""
    from ..workers.supervisor import read_status

    info = read_runfile(config.home)
    supervised = read_status(config.home) if url is None else None
    workers: list[dict[str, Any]] | None = supervised["workers"] if supervised is not None else None
    stale = info is not None and not pid_running(int(info["pid"]))
    if url is not None:
        source, target = "--url", url
    elif info is not None:  # a stale file still says where the gateway last listened
        source, target = "runtime file", _local_url(str(info["url"]))
    else:
        source, target = "default address", _local_url(f"http://{config.listen_host}:{config.listen_port}")
    health, error = _probe(target, timeout)
    now = time.time()
    gateway: dict[str, Any] = {"up": health is not None, "url": target, "source": source, "error": error,
                               "runtime_file": str(runfile_path(config.home)) if info is not None else None,
                               "stale_pid": info["pid"] if stale and info is not None else None}
    if info is not None and not stale and url is None:
        started = float(info.get("started_at", now))
        gateway.update(pid=info["pid"], started_at=started, uptime_s=round(now - started),
                       versions=info.get("versions"))
        for key in ("admin_url", "agent_api_url"):  # the other listeners, as the gateway wrote them at start
            value = info.get(key)
            gateway[key] = _local_url(value) if isinstance(value, str) else None
    last_errors = info.get("last_errors", {}) if info is not None and not stale else {}
    rows = _channel_rows(health, last_errors if isinstance(last_errors, dict) else {}, now) if health else []
    installed = {e.name: e for e in list_installed(config.channels_dir)} if url is None else {}
    for row in rows:  # who published each channel: this home's install records (not known for a --url gateway)
        entry = installed.get(row["name"])
        row["provenance"] = provenance_doc(provenance_file(entry.component, entry.name)) if entry else None
    nodes = _nodes(health)
    problems = _problems(gateway, rows) + _worker_problems(workers or [])
    # a lost node is shown, not failing: this node is fine, and a container healthcheck (the Dockerfile's runs
    # `airlock status`) must not mark every node unhealthy because one is gone
    node_warnings = [f"node {n['id']} on {n['host']}: no heartbeat for {n['heartbeat_age_s']} s (lost)"
                     for n in nodes if n["state"] == "lost"]
    return {"healthy": not problems, "problems": problems, "gateway": gateway, "channels": rows,
            "workers": workers, "nodes": nodes, "node_warnings": node_warnings, "cli": dict(version_doc())}


def _nodes(health: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The cluster's nodes as ``/health`` lists them (``state.nodes``); none on SQLite state."""
    found = health.get("nodes") if health is not None else None
    if not isinstance(found, list):
        return []
    keys = ("id", "host", "state", "self", "version", "started_at", "heartbeat_at", "heartbeat_age_s")
    return [{k: n.get(k) for k in keys} for n in found if isinstance(n, dict)]


def _uptime(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return (f"{days}d " if days else "") + f"{hours}h {rest // 60:02d}m"


def _last_error_text(row: Any) -> str:
    err = row["last_error"]
    if err is None:
        return ""
    return f"{err.get('callback')} {row['last_error_age_s']} s ago ({err.get('class')}): {err.get('message')}"


STATUS_COLUMNS = (
    Column("channel", "name"),
    Column("status", "status", style=lambda r: "green" if r["active"] else "yellow"),
    Column("publisher", "provenance", text=lambda r: r["provenance"]["publisher"] if r["provenance"] else "?"),
    Column("failures", "failures"),
    Column("websocket", "websocket", text=lambda r: r["websocket"]["state"] if r["websocket"] else ""),
    Column("last error", "last_error", text=_last_error_text, limit=120),
)


NODE_COLUMNS = (
    Column("node", "id", text=lambda r: f"{r['id']} (this one)" if r["self"] else str(r["id"])),
    Column("host", "host"),
    Column("state", "state", style=lambda r: "green" if r["state"] == "alive" else "yellow"),
    Column("last heartbeat", "heartbeat_age_s", text=lambda r: f"{r['heartbeat_age_s']} s ago"),
    Column("version", "version"),
)


def _render(out: Console, doc: dict[str, Any]) -> None:
    gw = doc["gateway"]
    if gw["up"]:
        extra = []
        if "pid" in gw:
            versions = gw.get("versions") or {}
            extra = [f"pid {gw['pid']}", f"up {_uptime(int(gw['uptime_s']))}",
                     f"airlock {versions.get('airlock', '?')}", f"wasmtime {versions.get('wasmtime', '?')}"]
        note = f" ({', '.join(extra)})" if extra else f" (found through the {gw['source']})"
        out.print(f"gateway: up at {safe(gw['url'])}{note}", highlight=False)
        active = sum(1 for r in doc["channels"] if r["active"])
        listeners = [f"{what} {safe(gw[key])}" for what, key in (("admin console", "admin_url"),
                                                                   ("agent API", "agent_api_url")) if gw.get(key)]
        if listeners:
            out.print(f"listeners: {', '.join(listeners)}", highlight=False)
        out.print(f"channels: {active} of {len(doc['channels'])} active", highlight=False)
        if doc.get("workers"):
            out.print("workers: " + ", ".join(
                f"{w['index']} {w['state']} (pid {w['pid']}, {w['restarts']} restarts)" for w in doc["workers"]),
                highlight=False)
    else:
        out.print(f"gateway: DOWN ({safe(gw['url'])}, {gw['source']})", style="red", highlight=False)
    if doc["nodes"]:
        alive = sum(1 for n in doc["nodes"] if n["state"] == "alive")
        out.print(f"cluster: {alive} of {len(doc['nodes'])} node(s) alive", highlight=False)
        show_rows(doc["nodes"], NODE_COLUMNS, as_json=False, empty="")
    if doc["channels"]:
        show_rows(doc["channels"], STATUS_COLUMNS, as_json=False, empty="")
    for row in doc["channels"]:  # the capabilities file's weak spots: shown, not failing (e.g. unsigned POSTs)
        for warning in row["warnings"]:
            out.print(f"warning: channel {row['name']}: {safe(warning)}", style="yellow", highlight=False,
                      soft_wrap=True)
    for warning in doc["node_warnings"]:
        out.print(f"warning: {safe(warning)}", style="yellow", highlight=False, soft_wrap=True)
    for problem in doc["problems"]:
        out.print(f"problem: {safe(problem)}", style="red", highlight=False, soft_wrap=True)
    if doc["healthy"]:
        out.print("all good", style="green")


@app.command()
@friendly_errors
def status(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        metavar="URL", help="The gateway's base URL. (default: from the home's runtime file, else the "
        "configured address)")] = None,
    timeout: Annotated[float, typer.Option(metavar="S", help="Seconds to wait for /health.")] = PROBE_TIMEOUT_S,
    as_json: JsonOption = False,
) -> None:
    """Is the gateway up, and is every channel working? Exit status 2 when something is failing.

    Shows every node of a cluster (PostgreSQL state: alive, stopped or lost, last heartbeat; a lost node is a
    warning), each channel's status, failure count, websocket, last error and warnings about its capabilities
    file, the gateway's pid,
    uptime, versions and its admin console and agent API addresses. Failing: the gateway does not answer, a
    channel is inactive, a websocket stopped for good, or a callback failed in the last 5
    minutes (warnings do not fail).
    """
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"--url {url!r}: expected http://HOST:PORT or https://...")
    if not 0 < timeout <= 60:
        raise ConfigError("--timeout: expected seconds between 0 and 60")
    doc = status_doc(config_from(ctx), url, timeout)
    if as_json:
        print_json(doc)
    else:
        _render(console(), doc)
    if not doc["healthy"]:
        raise typer.Exit(2)
