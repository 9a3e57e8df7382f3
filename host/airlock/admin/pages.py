"""The console's pages: each turns an ``admin.views`` document into the <main> of its page (``render``)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .auth import Session
from .render import Html, ago, esc, join, render
from .views import AdminState

__all__ = ["calls", "channels", "pairing", "secrets_page"]

_SHOWN_CHARS = 160
"""Longest status reason, error message or metadata shown in a table cell (the rest is cut with "…")."""


def _state_of(doc: dict[str, Any]) -> str:
    if doc["disabled"]:
        return "disabled"
    return "active" if doc["active"] else "inactive"


def _health(doc: dict[str, Any]) -> Html:
    h = doc["health"]
    parts = [f"{len(h['endpoints'])} webhook{'s' if len(h['endpoints']) != 1 else ''}"]
    if h["polling"]:
        parts.append("polling")
    if h["websocket"] is not None:
        parts.append(f"websocket {h['websocket']['state']}")
    return esc(", ".join(parts))


def _counters(doc: dict[str, Any]) -> Html:
    counts: dict[str, int] = doc["counters"]["callbacks"]
    ok = counts.get("ok", 0)
    failed = sum(n for k, n in counts.items() if k != "ok")
    return esc(f"{ok} ok, {failed} failed")


def _last_error(doc: dict[str, Any]) -> Html:
    if not doc["last_errors"]:
        return esc("none")
    e = doc["last_errors"][0]
    return Html(f'<span class="when">{esc(ago(e["at"]))}</span> <span class="trap">{esc(e["trap"])}</span> '
                f'{esc(e["callback"])}: <span class="message">{esc(e["message"], _SHOWN_CHARS)}</span>')


def _publisher(provenance: dict[str, Any]) -> Html:
    """``acme`` with the key id as a tooltip for a signed channel, ``unsigned`` otherwise."""
    if not provenance.get("signed"):
        return esc("unsigned")
    return Html(f'<span title="key {esc(provenance["key_id"])}">{esc(provenance["publisher"])}</span>')


def channels(state: AdminState, session: Session, request: web.Request) -> Html:
    rows = []
    for doc in state.channels_doc()["channels"]:
        st = _state_of(doc)
        action = "disable" if st == "active" else "enable"
        rows.append(render("channel_row.html", name=doc["name"], version=doc["version"], world=doc["world"],
                           publisher=_publisher(doc["provenance"]), state=st,
                           reason=esc(doc["status"], _SHOWN_CHARS) if st != "active" else "",
                           health=_health(doc), counters=_counters(doc), last_error=_last_error(doc),
                           action=action, action_label=action.capitalize(), csrf=session.csrf))
    if not rows:
        rows.append(Html('<tr><td colspan="9">No channels are installed.</td></tr>'))
    return render("channels.html", rows=join(rows, "\n"))


def pairing(state: AdminState, session: Session, request: web.Request) -> Html:
    doc = state.pairing_doc()["channels"]
    options = join(Html(f'<option value="{esc(n)}">{esc(n)}</option>') for n in doc)
    sections = []
    for name, entry in doc.items():
        pending = [render("pending_row.html", channel=name, code=r["code"], external_id=r["external_id"],
                          meta=esc(json.dumps(r["meta"], ensure_ascii=False), _SHOWN_CHARS),
                          expires=f"{r['expires_in_s'] // 60} min {r['expires_in_s'] % 60:02d} s", csrf=session.csrf)
                   for r in entry["pending"]]
        paired = [render("paired_row.html", channel=name, external_id=p["external_id"], owner_id=p["owner_id"],
                         since=ago(p["paired_at"]), csrf=session.csrf) for p in entry["paired"]]
        sections.append(render(
            "pairing_channel.html", name=name,
            pending=join(pending) or Html('<tr><td colspan="5">none</td></tr>'),
            paired=join(paired) or Html('<tr><td colspan="4">none</td></tr>')))
    return render("pairing.html", csrf=session.csrf, channel_options=options, sections=join(sections, "\n"))


def secrets_page(state: AdminState, session: Session, request: web.Request) -> Html:
    rows = []
    for s in state.secrets_doc()["secrets"]:
        remove = render("secret_remove.html", name=s["name"], csrf=session.csrf) if s["set"] else Html("")
        rows.append(render("secret_row.html", name=s["name"], set="yes" if s["set"] else "no",
                           set_label="set" if s["set"] else "not set", used_by=", ".join(s["used_by"]) or "-",
                           remove=remove))
    if not rows:
        rows.append(Html('<tr><td colspan="4">No secrets are stored or needed.</td></tr>'))
    return render("secrets.html", rows=join(rows, "\n"), csrf=session.csrf)


def calls(state: AdminState, session: Session, request: web.Request) -> Html:
    names = sorted(state.manager.slots)
    channel = request.query.get("channel") or (names[0] if names else "")
    tabs = join(Html(f'<a href="/calls?channel={esc(n)}"{" aria-current=page" if n == channel else ""}>'
                     f'{esc(n)}</a>') for n in names)
    if not channel:
        return render("calls.html", tabs=tabs, note="No channels are installed.", channel="", rows=Html(""))
    doc = state.calls_doc(channel)
    rows = []
    now = time.time()
    for call in doc["calls"]:
        fuel = call["fuel_used"]
        rows.append(render(
            "call_row.html", when=ago(call["at"], now), callback=call["callback"], outcome=call["outcome"],
            elapsed=f"{call['elapsed_ms']:.1f}", fuel="-" if fuel is None else f"{fuel:,}",
            host_calls=f"{len(call['host_calls'])} host call{'s' if len(call['host_calls']) != 1 else ''}",
            doc=json.dumps(call, indent=2, ensure_ascii=False), trace_id=call["trace_id"] or "-"))
    note = (f"The last {len(rows)} callbacks of {channel}, newest first (failures always; successes while "
            f"this page is open, since {time.strftime('%H:%M:%S', time.localtime(doc['successes_since']))}); "
            "secret values are redacted."
            if doc["recording"] else "Recording is off (HostConfig.metrics is false).")
    if not rows:
        rows.append(Html('<tr><td colspan="7">No callbacks yet.</td></tr>'))
    return render("calls.html", tabs=tabs, note=note, channel=channel, rows=join(rows, "\n"))
