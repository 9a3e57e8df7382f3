"""Routing: which agent gets a message, and which of that agent's sessions (conversations) it belongs to.

Pure functions over :class:`~airlock.messages.routing_models.RoutingConfig` (no I/O), after OpenClaw's
bindings (docs.openclaw.ai, "Multi-Agent Routing", "Session Management"):

* :func:`route_input_from` reads where a message comes from out of what a bundled channel emits;
* :func:`route` picks the agent: every binding is checked; the most specific match wins, in the order
  peer > parent (a thread's parent conversation) > group > team > account > channel > ``default_agent``;
  between matches of the same tier the one listed first wins;
* :func:`session_key` names the conversation: DMs by the ``dm_scope`` rule (identity links put a person's ids
  into one session), groups and threads per conversation;
* :func:`explain` says in plain lines why (``airlock route explain``).

Session keys (each variable part percent-encoded so it holds no ``:``; see :func:`session_key`)::

    dm, main                       agent:<agent>:main
    dm, per-peer                   agent:<agent>:direct:<channel>:<peer>   | agent:<agent>:person:<person>
    dm, per-channel-peer           agent:<agent>:<channel>:direct:<peer>   | agent:<agent>:<channel>:person:<person>
    dm, per-account-channel-peer   agent:<agent>:<channel>:<account>:direct:<peer>   (| ...:person:<person>)
    group                          agent:<agent>:<channel>:<account>:group:<peer>
    thread                         agent:<agent>:<channel>:<account>:group:<parent>:thread:<peer>

Two deliberate differences from OpenClaw: an unlinked DM peer keeps its channel under ``per-peer`` (ids of two
platforms can coincide, a WhatsApp number and a Telegram user id are both digits, and merging two people's
DMs shows one the other's conversation; only an identity link merges ids across channels), and group keys
carry the account (two bot accounts in one group each see only what is addressed to them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .routing_models import (
    MAX_ID_CHARS,
    TIERS,
    BindingMatch,
    PeerKind,
    RouteInput,
    RouteResult,
    RoutingConfig,
    Tier,
)

__all__ = ["explain", "route", "route_input_from", "session_key"]


# ---- where a message comes from ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    kind: PeerKind
    peer_id: str
    parent_peer_id: str | None = None
    group_id: str | None = None
    team_id: str | None = None


_Derive = Callable[[str, str | None, Mapping[str, Any]], _Where | None]


def _id(meta: Mapping[str, Any], key: str) -> str | None:
    """A metadata value usable as an id: a non-empty string, or an integer (Telegram's ids are numbers)."""
    value = meta.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _telegram(user_id: str, thread_id: str | None, meta: Mapping[str, Any]) -> _Where | None:
    """guest-plugins/telegram (``telegram_logic.to_message``): ``chat_type`` (Bot API: private, group,
    supergroup), ``chat_id``, ``thread_id`` (``message_thread_id``: a forum topic, or the reply thread of a
    supergroup message; the guest does not say which, so both are threads)."""
    chat = _id(meta, "chat_id")
    if meta.get("chat_type") not in ("group", "supergroup") or chat is None:
        return None
    topic = _id(meta, "thread_id") or thread_id
    return _Where("thread", topic, parent_peer_id=chat) if topic else _Where("group", chat)


def _slack(user_id: str, thread_id: str | None, meta: Mapping[str, Any]) -> _Where | None:
    """guest-plugins/slack (``channel.rs::to_outgoing``): ``channel_type`` (``im`` for a DM), ``channel``,
    ``team``, ``reply_thread_ts``. The reply thread, not ``thread_ts``: with ``reply_in_thread`` a top-level
    @mention opens a thread under itself, and the follow-ups in that thread must land in the same session."""
    team = _id(meta, "team")
    channel = _id(meta, "channel")
    if meta.get("channel_type") == "im" or channel is None:
        return _Where("dm", user_id, team_id=team)
    thread = _id(meta, "reply_thread_ts") or thread_id
    if thread:
        return _Where("thread", thread, parent_peer_id=channel, team_id=team)
    return _Where("group", channel, team_id=team)


def _discord(user_id: str, thread_id: str | None, meta: Mapping[str, Any]) -> _Where | None:
    """guest-plugins/discord (``gateway.rs``, ``interaction.rs``): ``guild_id`` (absent in DMs), ``channel_id``.
    A Discord thread is a channel of its own and the guest does not report its parent, so it routes as a
    group conversation of the guild."""
    guild = _id(meta, "guild_id")
    channel = _id(meta, "channel_id")
    if guild is None or channel is None:
        return None
    return _Where("group", channel, group_id=guild)


def _feishu(user_id: str, thread_id: str | None, meta: Mapping[str, Any]) -> _Where | None:
    """guest-plugins/feishu (``event.rs``): ``chat_type`` (``p2p`` or ``group``), ``chat_id``, ``thread_id``
    (a topic thread; ``root_id``, a plain reply chain, is not a thread)."""
    chat = _id(meta, "chat_id")
    if meta.get("chat_type") != "group" or chat is None:
        return None
    thread = _id(meta, "thread_id") or thread_id
    return _Where("thread", thread, parent_peer_id=chat) if thread else _Where("group", chat)


def _wecom(user_id: str, thread_id: str | None, meta: Mapping[str, Any]) -> _Where | None:
    """guest-plugins/wecom (``bot.rs``): ``chat_type`` (``single`` or ``group``) and ``chat_id`` of the AI bot's
    group chats; app callbacks are 1:1 (no ``chat_type``)."""
    chat = _id(meta, "chat_id")
    if meta.get("chat_type") != "group" or chat is None:
        return None
    return _Where("group", chat)


def _dm_only(user_id: str, thread_id: str | None, meta: Mapping[str, Any]) -> _Where | None:
    """guest-plugins/whatsapp and guest-plugins/wechat: the guest relays 1:1 chats only (the sender is the user
    id); nothing to read."""
    return None


_DERIVE: dict[str, _Derive] = {
    "telegram": _telegram, "slack": _slack, "discord": _discord, "feishu": _feishu, "whatsapp": _dm_only,
    "wecom": _wecom, "wechat": _dm_only,
}


def route_input_from(channel_type: str, instance: str, user_id: str, thread_id: str | None,
                     metadata: Mapping[str, Any]) -> RouteInput:
    """Where a message comes from, from what its channel emitted.

    ``channel_type`` is the platform (``telegram``, ``slack``, ``discord``, ``feishu``, ``whatsapp``, ``wecom``,
    ``wechat``), which
    picks the metadata keys read (each reader's docstring above names them); ``instance`` is the channel
    instance (the route's account). Any other channel type, or metadata that lacks what a group needs (or
    whose values are neither non-empty strings nor integers), gives a DM from ``user_id``: a message is never
    put into a shared conversation on a guess.

    Raises:
        ValueError: ``user_id`` or ``instance`` is empty (the message has no sender or no channel).
    """
    if not user_id:
        raise ValueError("a message without a user id cannot be routed")
    derive = _DERIVE.get(channel_type)
    where = (derive(user_id, thread_id, metadata) if derive else None) or _Where("dm", user_id)
    return RouteInput(channel=channel_type, account=instance, peer_kind=where.kind, peer_id=where.peer_id,
                      parent_peer_id=where.parent_peer_id, group_id=where.group_id, team_id=where.team_id)


# ---- which binding wins -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    tier: Tier | None  # None: no match
    reason: str


def _kind_ok(want: PeerKind | None, have: PeerKind) -> bool:
    # A group binding covers the group's threads too: they are part of the group's conversation.
    return want is None or want == have or (want == "group" and have == "thread")


def _constraint_miss(m: BindingMatch, inp: RouteInput) -> str | None:
    """Why a field other than the peer rules the binding out, or None if they all hold."""
    for field, have in (("channel", inp.channel), ("account", inp.account), ("team_id", inp.team_id),
                        ("group_id", inp.group_id), ("parent_peer_id", inp.parent_peer_id)):
        want = getattr(m, field)
        if want is not None and want != have:
            return f"wants {field} {want}, the message has {have or 'none'}"
    return None


def _evaluate(m: BindingMatch, inp: RouteInput) -> _Verdict:
    """Does the binding match, at which tier, and why (in words for :func:`explain`)."""
    miss = _constraint_miss(m, inp)
    if miss:
        return _Verdict(None, miss)
    if m.peer_id is None:
        if not _kind_ok(m.peer_kind, inp.peer_kind):
            return _Verdict(None, f"wants a {m.peer_kind}, the message is in a {inp.peer_kind}")
        return _Verdict(m.tier, _match_words(m))
    if m.peer_id == inp.peer_id and m.peer_kind in (None, inp.peer_kind):
        return _Verdict("peer", f"{inp.peer_kind} {inp.peer_id} is the message's conversation")
    if inp.peer_kind == "thread" and m.peer_id == inp.parent_peer_id and m.peer_kind in (None, "group"):
        return _Verdict("parent", f"the thread {inp.peer_id} is under {m.peer_id}")
    want = f"{m.peer_kind} {m.peer_id}" if m.peer_kind else m.peer_id
    return _Verdict(None, f"wants peer {want}, the message is in {inp.peer_kind} {inp.peer_id}")


def _match_words(m: BindingMatch) -> str:
    """What a binding without a peer id matched on, in words."""
    kind = f" ({m.peer_kind} messages)" if m.peer_kind else ""
    words = {"parent": f"the thread's parent is {m.parent_peer_id}", "group": f"group_id {m.group_id}",
             "team": f"team_id {m.team_id}", "account": f"account {m.account}",
             "channel": f"channel {m.channel}" if m.channel else "any channel"}
    return words.get(m.tier, m.tier) + kind


def _winner(verdicts: list[_Verdict]) -> tuple[int, Tier] | None:
    """The most specific match and its tier (the first listed of its tier), or None."""
    matches = [(TIERS.index(v.tier), i, v.tier) for i, v in enumerate(verdicts) if v.tier is not None]
    return min(matches)[1:] if matches else None


def route(cfg: RoutingConfig, inp: RouteInput) -> RouteResult:
    """The agent and session for a message from ``inp`` (the rules: module docstring)."""
    won = _winner([_evaluate(b.match, inp) for b in cfg.bindings])
    index: int | None = None
    tier: Tier = "default"
    if won:
        index, tier = won
    agent = cfg.default_agent if index is None else cfg.bindings[index].agent
    return RouteResult(agent=agent, session_key=session_key(cfg, agent, inp), binding_index=index,
                       matched_on=tier)


# ---- session keys -------------------------------------------------------------------------------------------


def _seg(text: str) -> str:
    """One session-key segment: percent-encoded (no ``:`` left, so segments never run together); an id longer
    than :data:`MAX_ID_CHARS` becomes ``sha256-<hex>`` so a key stays short whatever a guest sends."""
    if len(text) > MAX_ID_CHARS:
        return "sha256-" + hashlib.sha256(text.encode()).hexdigest()
    return quote(text, safe="@+")


def session_key(cfg: RoutingConfig, agent: str, inp: RouteInput) -> str:
    """The key of the conversation ``inp`` belongs to, for ``agent`` (shapes: module docstring).

    DMs follow ``cfg.dm_scope``; under any scope but ``main``, a sender listed in ``cfg.identity_links``
    (as ``"<channel>:<peer id>"``) is replaced by the person. Groups and threads have a key per conversation.
    """
    head, where = f"agent:{_seg(agent)}", f"{_seg(inp.channel)}:{_seg(inp.account)}"
    if inp.peer_kind == "group":
        return f"{head}:{where}:group:{_seg(inp.peer_id)}"
    if inp.peer_kind == "thread":
        return f"{head}:{where}:group:{_seg(inp.parent_peer_id or '')}:thread:{_seg(inp.peer_id)}"
    if cfg.dm_scope == "main":
        return f"{head}:main"
    person = cfg.person_of(inp.channel, inp.peer_id)
    who = f"person:{_seg(person)}" if person else f"direct:{_seg(inp.peer_id)}"
    if cfg.dm_scope == "per-peer":
        return f"{head}:{who}" if person else f"{head}:direct:{_seg(inp.channel)}:{_seg(inp.peer_id)}"
    if cfg.dm_scope == "per-channel-peer":
        return f"{head}:{_seg(inp.channel)}:{who}"
    return f"{head}:{where}:{who}"


# ---- explain ------------------------------------------------------------------------------------------------

_SCOPE_WORDS = {
    "main": "every DM of the agent shares one session",
    "per-peer": "one session per person across channels",
    "per-channel-peer": "one session per person per channel",
    "per-account-channel-peer": "one session per person per channel instance",
}


def _describe(inp: RouteInput) -> str:
    where = f"{inp.peer_kind} {inp.peer_id}"
    if inp.parent_peer_id:
        where += f" under {inp.parent_peer_id}"
    extra = "".join(f", {name} {value}" for name, value in (("group_id", inp.group_id), ("team_id", inp.team_id))
                    if value)
    return f"message from {inp.channel} (account {inp.account}): {where}{extra}"


def _loss(tier: Tier, best: int, best_tier: Tier) -> str:
    if tier == best_tier:
        return f"same tier as binding #{best}, which is listed first"
    return f"{tier} is less specific than {best_tier}"


def explain(cfg: RoutingConfig, inp: RouteInput) -> list[str]:
    """Plain lines: the message, the winning binding (or the default agent) and why, then every other binding
    in list order with why it lost or did not match, then the session key and the rule that built it."""
    verdicts = [_evaluate(b.match, inp) for b in cfg.bindings]
    result = route(cfg, inp)
    best = result.binding_index
    lines = [_describe(inp)]
    if best is None:
        lines.append(f"no binding matches: default agent {cfg.default_agent}")
    else:
        lines.append(f"binding #{best} -> {result.agent} wins at tier {result.matched_on}: {verdicts[best].reason}")
    for i, (binding, verdict) in enumerate(zip(cfg.bindings, verdicts, strict=True)):
        if i == best:
            continue
        if verdict.tier is None or best is None:  # (a match always has a winner: best is set then)
            lines.append(f"binding #{i} -> {binding.agent} does not match: {verdict.reason}")
        else:
            lines.append(f"binding #{i} -> {binding.agent} matches at tier {verdict.tier} ({verdict.reason}) "
                         f"but loses: {_loss(verdict.tier, best, result.matched_on)}")
    lines.extend(_session_lines(cfg, inp, result.session_key))
    return lines


def _session_lines(cfg: RoutingConfig, inp: RouteInput, key: str) -> list[str]:
    if inp.peer_kind != "dm":
        return [f"session {key} (one session per {inp.peer_kind})"]
    lines = [f"session {key} (dm_scope {cfg.dm_scope}: {_SCOPE_WORDS[cfg.dm_scope]})"]
    person = cfg.person_of(inp.channel, inp.peer_id)
    if person and cfg.dm_scope != "main":
        lines.append(f"identity link: {inp.channel}:{inp.peer_id} is {person}")
    elif person:
        lines.append(f"identity link: {inp.channel}:{inp.peer_id} is {person} (unused: dm_scope main)")
    return lines
