"""The shapes of routing: the ``routing`` section of the host config, a route's input and its result.

The rules that use them are in :mod:`airlock.messages.routing`. The model follows OpenClaw's routing
(``bindings``, ``session.dmScope``, ``session.identityLinks``; docs.openclaw.ai, "Multi-Agent Routing" and
"Session Management"), adapted to Airlock where noted.

Config, as JSON in the host config::

    "routing": {
      "default_agent": "main",
      "dm_scope": "per-channel-peer",
      "bindings": [
        {"agent": "support", "match": {"channel": "telegram", "peer_kind": "dm", "peer_id": 123}},
        {"agent": "eng", "match": {"channel": "slack", "team_id": "T0ENG"}}
      ],
      "identity_links": {"ada": ["telegram:123", "slack:U0ADA"]}
    }

Limits (each a constant below, checked when the config is validated): at most :data:`MAX_BINDINGS`
bindings and :data:`MAX_LINKED_IDS` linked ids; platform ids at most :data:`MAX_ID_CHARS` characters;
agent, channel, account and person names follow :data:`NAME_PATTERN`. A bad value raises
:class:`pydantic.ValidationError` (a :class:`ValueError`) that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

__all__ = [
    "DEFAULT_DM_SCOPE",
    "MAX_BINDINGS",
    "MAX_ID_CHARS",
    "MAX_LINKED_IDS",
    "NAME_PATTERN",
    "PEER_KINDS",
    "TIERS",
    "Binding",
    "BindingMatch",
    "DmScope",
    "PeerKind",
    "RouteInput",
    "RouteResult",
    "RoutingConfig",
    "Tier",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Agent, channel, account (channel instance) and person names: the rule channel names already follow
(``airlock.manifest``). No ``:``, so a name is always one segment of a session key."""

MAX_ID_CHARS = 256
"""Longest platform id (peer, parent, group, team) a binding or identity link may name. Platform ids are far
shorter (a Telegram chat id has at most 14 characters, a Slack ts 17, a Feishu open_id about 40); a longer id
arriving in a message is not refused but shortened to a digest inside its session key (``routing``)."""

MAX_BINDINGS = 1000
"""Most bindings in the config: each message is checked against every binding (a linear scan of at most
this many matches, microseconds each)."""

MAX_LINKED_IDS = 10_000
"""Most ``"<channel>:<peer id>"`` entries across all identity links."""

PeerKind = Literal["dm", "group", "thread"]
"""``dm``: a private chat with one person; ``group``: a conversation with several people (a group chat, a
Slack or Discord channel); ``thread``: a sub-conversation of a group (a Slack thread, a Telegram forum topic,
a Feishu thread). A thread inside a DM stays a ``dm``: the person, not the thread, is the unit of a private
conversation."""

PEER_KINDS: tuple[PeerKind, ...] = get_args(PeerKind)

DmScope = Literal["main", "per-peer", "per-channel-peer", "per-account-channel-peer"]
"""How DMs share sessions (OpenClaw's ``session.dmScope``): ``main``, every DM of an agent in one session;
``per-peer``, one session per person across channels (people are told apart across channels only by identity
links); ``per-channel-peer``, one per person per channel; ``per-account-channel-peer``, one per person per
channel instance."""

DEFAULT_DM_SCOPE: DmScope = "per-channel-peer"
"""``per-channel-peer``: OpenClaw's schema default is ``main``, kept there for single-user continuity, but its
own onboarding writes ``per-channel-peer`` into every new config, and its security audit warns about ``main``
as soon as more than one person can DM the agent, because one shared session shows one person's private
conversation to the next. Airlock admits several people by design (pairing, ``allow_from``), so it starts
from the setting OpenClaw recommends for that case."""

Tier = Literal["peer", "parent", "group", "team", "account", "channel", "default"]
"""How specific a match is, most specific first (the order of :data:`TIERS`)."""

TIERS: tuple[Tier, ...] = get_args(Tier)


def _id_from_json(value: Any) -> Any:
    """A platform id as written in JSON: a string, or an integer (Telegram ids are often written as numbers).
    Floats are refused (``1712345678.000100`` would lose its digits), as are strings with outer whitespace."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value != value.strip():
        raise ValueError("an id must not start or end with whitespace")
    return value


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
PlatformId = Annotated[str, BeforeValidator(_id_from_json), StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


_NAME: TypeAdapter[str] = TypeAdapter(Name)
_ID: TypeAdapter[str] = TypeAdapter(PlatformId)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BindingMatch(_Model):
    """What a binding matches. Every field set must equal the message's (an unset field matches anything);
    the most specific field set gives the binding's tier (``routing``). At least one field must be set.

    Fields:
        channel: the platform, e.g. ``telegram`` (the channel type, not the instance name).
        account: the channel instance name (``airlock channels list``). Unset: any instance (OpenClaw's unset
            ``accountId`` means "the default account"; Airlock has no default instance).
        peer_kind: ``dm``, ``group`` or ``thread``. ``group`` also matches the threads inside groups.
        peer_id: the conversation: a DM's user id, a group's chat/channel id, a thread's id. A binding on a
            group or channel also routes the threads under it (at the ``parent`` tier).
        parent_peer_id: a thread's parent conversation (only threads have one): "every thread under X".
        group_id: the server a conversation belongs to: a Discord guild id.
        team_id: the workspace a conversation belongs to: a Slack team id. Discord has nothing above a guild, so
            a guild is a ``group_id``; a team ranks below a group because it is the wider container.
    """

    channel: Name | None = None
    account: Name | None = None
    peer_kind: PeerKind | None = None
    peer_id: PlatformId | None = None
    parent_peer_id: PlatformId | None = None
    group_id: PlatformId | None = None
    team_id: PlatformId | None = None

    @model_validator(mode="after")
    def _can_match(self) -> Self:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("a binding must match on something; default_agent takes every unmatched message")
        if self.parent_peer_id is not None and self.peer_kind in ("dm", "group"):
            raise ValueError(f"parent_peer_id never matches a {self.peer_kind}: only threads have a parent")
        return self

    @property
    def tier(self) -> Tier:
        """The tier of a direct match: the most specific field set. (A ``peer_id`` binding matching a thread's
        parent instead ranks one lower, at ``parent``.)"""
        for field, tier in _FIELD_TIERS:
            if getattr(self, field) is not None:
                return tier
        return "channel"  # only channel and/or peer_kind: channel-wide


_FIELD_TIERS: tuple[tuple[str, Tier], ...] = (
    ("peer_id", "peer"), ("parent_peer_id", "parent"), ("group_id", "group"), ("team_id", "team"),
    ("account", "account"),
)


class Binding(_Model):
    """Route the messages ``match`` selects to ``agent``."""

    agent: Name
    match: BindingMatch


class RoutingConfig(_Model):
    """The ``routing`` section of the host config.

    Fields:
        default_agent: receives every message no binding matches.
        dm_scope: the DM session rule (:data:`DmScope`; default :data:`DEFAULT_DM_SCOPE`, see there why).
        bindings: checked in full for each message; the most specific match wins, ties go to the earlier one.
        identity_links: person name -> ``"<channel>:<peer id>"`` entries (channel = platform name, the id as
            the platform gives it, compared exactly); a DM from a linked id is keyed by the person instead of
            the id (``routing.session_key``): under ``per-peer`` one session across channels, under the
            per-channel scopes one per channel. Unused under ``main``. An id may belong to one person only.
    """

    default_agent: Name = "main"
    dm_scope: DmScope = DEFAULT_DM_SCOPE
    bindings: list[Binding] = Field(default_factory=list, max_length=MAX_BINDINGS)
    identity_links: dict[Name, list[str]] = Field(default_factory=dict)
    _people: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _index_links(self) -> Self:
        people: dict[tuple[str, str], str] = {}
        count = 0
        for person, links in self.identity_links.items():
            for link in links:
                count += 1
                if count > MAX_LINKED_IDS:
                    raise ValueError(f"identity_links: more than {MAX_LINKED_IDS} linked ids")
                key = _parse_link(person, link)
                other = people.setdefault(key, person)
                if other != person:
                    raise ValueError(f"identity_links: {link!r} is linked to both {other!r} and {person!r}")
        self._people = people
        return self

    def person_of(self, channel: str, peer_id: str) -> str | None:
        """The person ``channel:peer_id`` is linked to, or None."""
        return self._people.get((channel, peer_id))


def _parse_link(person: str, link: str) -> tuple[str, str]:
    channel, sep, peer = link.partition(":")
    where = f"identity_links.{person}: {link!r}"
    if not sep or not peer:
        raise ValueError(f"{where} must be '<channel>:<peer id>'")
    try:
        _NAME.validate_python(channel)
        _ID.validate_python(peer)
    except ValueError as exc:
        raise ValueError(f"{where}: the channel must match {NAME_PATTERN} and the id have 1 to "
                         f"{MAX_ID_CHARS} characters without outer whitespace") from exc
    return channel, peer


@dataclass(frozen=True, slots=True)
class RouteInput:
    """Where a message comes from, as routing sees it (build it with ``routing.route_input_from``).

    ``channel`` is the platform (``telegram``), ``account`` the channel instance name. ``peer_id`` is the
    conversation: for a ``dm`` the sender's user id, for a ``group`` the chat/channel id, for a ``thread``
    the thread id, with its group in ``parent_peer_id`` (set for threads only). ``group_id`` is a Discord
    guild, ``team_id`` a Slack team.

    Raises:
        ValueError: an empty channel, account or peer id, an unknown kind, a thread without a parent, or a
            parent on something else than a thread.
    """

    channel: str
    account: str
    peer_kind: PeerKind
    peer_id: str
    parent_peer_id: str | None = None
    group_id: str | None = None
    team_id: str | None = None

    def __post_init__(self) -> None:
        if self.peer_kind not in PEER_KINDS:
            raise ValueError(f"peer_kind must be one of {', '.join(PEER_KINDS)}")
        if not (self.channel and self.account and self.peer_id):
            raise ValueError("channel, account and peer_id must not be empty")
        if (self.peer_kind == "thread") != bool(self.parent_peer_id):
            raise ValueError("a thread needs its parent_peer_id, and only a thread has one")


@dataclass(frozen=True, slots=True)
class RouteResult:
    """Where a message goes.

    ``agent`` receives it; ``session_key`` names its conversation for that agent (``agent:<agent>:...``,
    see ``routing.session_key``); ``binding_index`` is the winning binding's position in
    ``RoutingConfig.bindings`` (None: the default agent); ``matched_on`` is the winning tier.
    """

    agent: str
    session_key: str
    binding_index: int | None
    matched_on: Tier
