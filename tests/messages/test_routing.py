"""Routing (airlock.messages.routing): precedence, ties, DM scopes, identity links, session keys, explain, the
config's validation and limits, and route_input_from over the metadata each bundled channel emits.

Pure logic: every case is a row of a table run through the real functions; no I/O."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from airlock.messages.routing import explain, route, session_key
from airlock.messages.routing_models import (
    DEFAULT_DM_SCOPE,
    MAX_BINDINGS,
    MAX_ID_CHARS,
    MAX_LINKED_IDS,
    DmScope,
    RouteInput,
    RoutingConfig,
)


def config(*bindings: tuple[str, dict[str, Any]], **extra: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {"bindings": [{"agent": agent, "match": match} for agent, match in bindings], **extra})


# ---- precedence: peer > parent > group > team > account > channel > default ---------------------------------

# Listed least specific first, so that list order cannot be what makes the more specific ones win.
LADDER = (
    ("by-channel", {"channel": "slack"}),
    ("by-account", {"channel": "slack", "account": "work"}),
    ("by-team", {"team_id": "T1"}),
    ("by-group", {"group_id": "G1"}),
    ("by-parent", {"parent_peer_id": "C1"}),
    ("by-peer", {"peer_id": "X1"}),
)


def thread(peer: str = "X1", parent: str = "C1", *, channel: str = "slack", account: str = "work",
           group: str | None = "G1", team: str | None = "T1") -> RouteInput:
    return RouteInput(channel, account, "thread", peer, parent, group, team)


PRECEDENCE = [
    # (what differs, input, agent, tier)
    ("everything matches: the peer wins", thread(), "by-peer", "peer"),
    ("another thread of C1: the parent wins", thread("X2"), "by-parent", "parent"),
    ("a thread of another parent: the group wins", thread("X2", "C2"), "by-group", "group"),
    ("another guild: the team wins", thread("X2", "C2", group="G2"), "by-team", "team"),
    ("another team: the account wins", thread("X2", "C2", group="G2", team="T2"), "by-account", "account"),
    ("another account: the channel wins", thread("X2", "C2", group=None, team=None, account="home"),
     "by-channel", "channel"),
    ("another channel: the default agent", thread("X2", "C2", group=None, team=None, channel="discord"),
     "main", "default"),
]


@pytest.mark.parametrize("order", ["least specific first", "most specific first"])
@pytest.mark.parametrize(("why", "inp", "agent", "tier"), PRECEDENCE, ids=[row[0] for row in PRECEDENCE])
def test_most_specific_binding_wins_whatever_the_order(why: str, inp: RouteInput, agent: str, tier: str,
                                                       order: str) -> None:
    ladder = LADDER if order == "least specific first" else tuple(reversed(LADDER))
    result = route(config(*ladder), inp)
    assert (result.agent, result.matched_on) == (agent, tier)
    names = [name for name, _ in ladder]
    assert result.binding_index == (names.index(agent) if agent in names else None)


TIES = [
    ("peer", {"peer_id": "X1"}, thread()),
    ("parent", {"parent_peer_id": "C1"}, thread()),
    ("group", {"group_id": "G1"}, thread()),
    ("team", {"team_id": "T1"}, thread()),
    ("account", {"account": "work"}, thread()),
    ("channel", {"channel": "slack"}, thread()),
]


@pytest.mark.parametrize(("tier", "match", "inp"), TIES, ids=[row[0] for row in TIES])
def test_ties_go_to_the_binding_listed_first(tier: str, match: dict[str, Any], inp: RouteInput) -> None:
    # The second binding adds a filter that holds, so it matches as well, at the same tier.
    also = {**match, "peer_kind": "thread"}
    first = route(config(("first", match), ("second", also)), inp)
    swapped = route(config(("second", also), ("first", match)), inp)
    assert (first.agent, first.binding_index, first.matched_on) == ("first", 0, tier)
    assert (swapped.agent, swapped.binding_index, swapped.matched_on) == ("second", 0, tier)


DM = RouteInput("telegram", "telegram", "dm", "123")
GROUP = RouteInput("telegram", "telegram", "group", "-100")
TOPIC = RouteInput("telegram", "telegram", "thread", "7", "-100")

MATCHING = [
    # (binding match, input, tier or None for no match)
    ({"channel": "telegram", "peer_id": "123"}, DM, "peer"),
    ({"channel": "slack", "peer_id": "123"}, DM, None),  # every field set must hold
    ({"account": "other", "peer_id": "123"}, DM, None),
    ({"peer_kind": "dm", "peer_id": "123"}, DM, "peer"),
    ({"peer_kind": "group", "peer_id": "123"}, DM, None),
    ({"peer_kind": "dm"}, DM, "channel"),
    ({"peer_kind": "dm"}, GROUP, None),
    ({"peer_kind": "group"}, TOPIC, "channel"),  # a group binding covers the group's threads
    ({"peer_kind": "thread"}, GROUP, None),
    ({"peer_id": "-100"}, TOPIC, "parent"),  # a binding on a conversation routes the threads under it
    ({"peer_kind": "group", "peer_id": "-100"}, TOPIC, "parent"),
    ({"peer_kind": "dm", "peer_id": "-100"}, TOPIC, None),
    ({"peer_kind": "thread", "peer_id": "7", "parent_peer_id": "-100"}, TOPIC, "peer"),
    ({"peer_id": "7", "parent_peer_id": "-999"}, TOPIC, None),  # topic 7 of another group
    ({"parent_peer_id": "-100"}, GROUP, None),  # only a thread has a parent
    ({"group_id": "G1"}, DM, None),
    ({"team_id": "T1"}, DM, None),
]


@pytest.mark.parametrize(("match", "inp", "tier"), MATCHING)
def test_which_bindings_match(match: dict[str, Any], inp: RouteInput, tier: str | None) -> None:
    result = route(config(("bound", match)), inp)
    assert (result.agent, result.matched_on, result.binding_index) == (
        ("bound", tier, 0) if tier else ("main", "default", None))


def test_an_exact_thread_binding_beats_its_parents_binding() -> None:
    cfg = config(("room", {"peer_id": "-100"}), ("topic", {"peer_id": "7", "parent_peer_id": "-100"}))
    assert (route(cfg, TOPIC).agent, route(cfg, TOPIC).matched_on) == ("topic", "peer")
    other_topic = RouteInput("telegram", "telegram", "thread", "8", "-100")
    assert (route(cfg, other_topic).agent, route(cfg, other_topic).matched_on) == ("room", "parent")


def test_default_agent_is_configurable() -> None:
    assert route(config(default_agent="helper"), DM).agent == "helper"


# ---- session keys ---------------------------------------------------------------------------------------------

LINKS = {"ada": ["telegram:123", "slack:U0ADA"]}
SCOPES = [
    # (scope, input, key)
    ("main", DM, "agent:main:main"),
    ("main", RouteInput("slack", "slack", "dm", "U0BOB"), "agent:main:main"),
    ("per-peer", DM, "agent:main:person:ada"),
    ("per-peer", RouteInput("slack", "work", "dm", "U0ADA"), "agent:main:person:ada"),
    ("per-peer", RouteInput("slack", "work", "dm", "U0BOB"), "agent:main:direct:slack:U0BOB"),
    ("per-channel-peer", DM, "agent:main:telegram:person:ada"),
    ("per-channel-peer", RouteInput("slack", "work", "dm", "U0ADA"), "agent:main:slack:person:ada"),
    ("per-channel-peer", RouteInput("slack", "work", "dm", "U0BOB"), "agent:main:slack:direct:U0BOB"),
    ("per-account-channel-peer", RouteInput("slack", "work", "dm", "U0ADA"), "agent:main:slack:work:person:ada"),
    ("per-account-channel-peer", RouteInput("slack", "home", "dm", "U0BOB"), "agent:main:slack:home:direct:U0BOB"),
]


@pytest.mark.parametrize(("scope", "inp", "key"), SCOPES)
def test_dm_session_key_by_scope(scope: DmScope, inp: RouteInput, key: str) -> None:
    assert route(config(dm_scope=scope, identity_links=LINKS), inp).session_key == key


@pytest.mark.parametrize("scope", ["main", "per-peer", "per-channel-peer", "per-account-channel-peer"])
def test_groups_and_threads_have_their_own_keys_in_every_scope(scope: DmScope) -> None:
    cfg = config(dm_scope=scope, identity_links=LINKS)
    assert route(cfg, GROUP).session_key == "agent:main:telegram:telegram:group:-100"
    assert route(cfg, TOPIC).session_key == "agent:main:telegram:telegram:group:-100:thread:7"


def test_who_shares_a_dm_session_under_each_scope() -> None:
    ada_tg, ada_slack = DM, RouteInput("slack", "work", "dm", "U0ADA")
    bob_tg, ada_slack_home = RouteInput("telegram", "telegram", "dm", "456"), RouteInput("slack", "home", "dm", "U0ADA")

    def keys(scope: DmScope) -> list[str]:
        cfg = config(dm_scope=scope, identity_links=LINKS)
        return [session_key(cfg, "main", i) for i in (ada_tg, ada_slack, bob_tg, ada_slack_home)]

    main = keys("main")
    assert len(set(main)) == 1  # everyone together
    peer = keys("per-peer")
    assert peer[0] == peer[1] == peer[3] != peer[2]  # the linked person is one session across channels
    channel = keys("per-channel-peer")
    assert channel[1] == channel[3] and len({channel[0], channel[1], channel[2]}) == 3
    account = keys("per-account-channel-peer")
    assert len(set(account)) == 4


def test_unlinked_ids_of_two_platforms_never_share_a_session() -> None:
    cfg = config(dm_scope="per-peer")
    a = route(cfg, RouteInput("telegram", "telegram", "dm", "15551234567"))
    b = route(cfg, RouteInput("whatsapp", "whatsapp", "dm", "15551234567"))
    assert a.session_key != b.session_key


def test_identity_links_compare_ids_exactly_and_by_platform() -> None:
    cfg = config(identity_links={"ada": ["slack:U0ADA"]})
    assert route(cfg, RouteInput("slack", "slack", "dm", "U0ADA")).session_key.endswith(":person:ada")
    assert route(cfg, RouteInput("slack", "slack", "dm", "u0ada")).session_key.endswith(":direct:u0ada")
    assert route(cfg, RouteInput("discord", "discord", "dm", "U0ADA")).session_key.endswith(":direct:U0ADA")


def test_the_session_key_names_the_routed_agent() -> None:
    cfg = config(("support", {"peer_id": "123"}))
    assert route(cfg, DM).session_key == "agent:support:telegram:direct:123"


def test_ids_with_separators_cannot_forge_another_conversations_key() -> None:
    cfg = config()
    # Without encoding, group "a:thread:b" would read as thread b of group a.
    forged = route(cfg, RouteInput("slack", "slack", "group", "a:thread:b")).session_key
    real = route(cfg, RouteInput("slack", "slack", "thread", "b", "a")).session_key
    assert forged != real and forged.count(":") == 5
    assert route(cfg, RouteInput("slack", "slack", "dm", "a%3Ab")).session_key != route(
        cfg, RouteInput("slack", "slack", "dm", "a:b")).session_key


def test_an_overlong_id_becomes_a_digest_in_the_key() -> None:
    cfg = config()
    longest = "9" * MAX_ID_CHARS
    assert route(cfg, RouteInput("slack", "slack", "dm", longest)).session_key.endswith(f":direct:{longest}")
    over = route(cfg, RouteInput("slack", "slack", "dm", longest + "9")).session_key
    other = route(cfg, RouteInput("slack", "slack", "dm", longest + "8")).session_key
    assert ":direct:sha256-" in over and len(over) < 120 and over != other


def test_default_dm_scope_isolates_people() -> None:
    assert DEFAULT_DM_SCOPE == "per-channel-peer" and RoutingConfig().dm_scope == DEFAULT_DM_SCOPE
    cfg = RoutingConfig()
    assert route(cfg, DM).session_key != route(cfg, RouteInput("telegram", "telegram", "dm", "456")).session_key


# ---- explain --------------------------------------------------------------------------------------------------


def test_explain_names_the_winner_and_why_each_other_binding_lost() -> None:
    cfg = config(("broad", {"channel": "telegram"}), ("vip", {"channel": "telegram", "peer_id": "123"}),
                 ("vip2", {"peer_id": "123"}), ("slack", {"channel": "slack"}),
                 identity_links={"ada": ["telegram:123"]})
    lines = explain(cfg, DM)
    assert lines == [
        "message from telegram (account telegram): dm 123",
        "binding #1 -> vip wins at tier peer: dm 123 is the message's conversation",
        "binding #0 -> broad matches at tier channel (channel telegram) but loses: channel is less specific "
        "than peer",
        "binding #2 -> vip2 matches at tier peer (dm 123 is the message's conversation) but loses: same tier as "
        "binding #1, which is listed first",
        "binding #3 -> slack does not match: wants channel slack, the message has telegram",
        "session agent:vip:telegram:person:ada (dm_scope per-channel-peer: one session per person per channel)",
        "identity link: telegram:123 is ada",
    ]


def test_explain_without_a_match_names_the_default_agent() -> None:
    cfg = config(("eng", {"team_id": "T1"}), dm_scope="main", identity_links={"ada": ["slack:U1"]})
    lines = explain(cfg, RouteInput("slack", "slack", "dm", "U1", team_id="T2"))
    assert lines == [
        "message from slack (account slack): dm U1, team_id T2",
        "no binding matches: default agent main",
        "binding #0 -> eng does not match: wants team_id T1, the message has T2",
        "session agent:main:main (dm_scope main: every DM of the agent shares one session)",
        "identity link: slack:U1 is ada (unused: dm_scope main)",
    ]


def test_explain_a_thread_routed_by_its_parent() -> None:
    cfg = config(("room", {"peer_kind": "group", "peer_id": "-100"}))
    assert explain(cfg, TOPIC)[1:] == [
        "binding #0 -> room wins at tier parent: the thread 7 is under -100",
        "session agent:room:telegram:telegram:group:-100:thread:7 (one session per thread)",
    ]


# ---- config validation and limits ----------------------------------------------------------------------------

BAD_CONFIGS = [
    ({"bindings": [{"agent": "a", "match": {}}]}, "must match on something"),
    ({"bindings": [{"agent": "a", "match": {"peer_kind": "dm", "parent_peer_id": "C1"}}]}, "only threads"),
    ({"bindings": [{"agent": "a", "match": {"channel": "slack", "guild": "G1"}}]}, "Extra inputs"),
    ({"bindings": [{"agent": "a", "match": {"channel": "slack"}, "priority": 1}]}, "Extra inputs"),
    ({"dmScope": "main"}, "Extra inputs"),
    ({"dm_scope": "per-thread"}, "dm_scope"),
    ({"bindings": [{"agent": "Support Team", "match": {"channel": "slack"}}]}, "agent"),
    ({"bindings": [{"agent": "a", "match": {"channel": "Slack"}}]}, "channel"),
    ({"bindings": [{"agent": "a", "match": {"peer_kind": "channel"}}]}, "peer_kind"),
    ({"bindings": [{"agent": "a", "match": {"peer_id": 1712345678.0001}}]}, "peer_id"),
    ({"bindings": [{"agent": "a", "match": {"peer_id": True}}]}, "peer_id"),
    ({"bindings": [{"agent": "a", "match": {"peer_id": " 123"}}]}, "whitespace"),
    ({"bindings": [{"agent": "a", "match": {"peer_id": ""}}]}, "peer_id"),
    ({"bindings": [{"agent": "a", "match": {"team_id": "T" * (MAX_ID_CHARS + 1)}}]}, "team_id"),
    ({"default_agent": "a:b"}, "default_agent"),
    ({"identity_links": {"ada": ["123"]}}, "'<channel>:<peer id>'"),
    ({"identity_links": {"ada": ["telegram:"]}}, "'<channel>:<peer id>'"),
    ({"identity_links": {"ada": ["Tele gram:1"]}}, "the channel must match"),
    ({"identity_links": {"ada": ["telegram: 1"]}}, "without outer whitespace"),
    ({"identity_links": {"Ada Lovelace": ["telegram:1"]}}, "identity_links"),
    ({"identity_links": {"ada": ["telegram:1"], "bob": ["slack:U1", "telegram:1"]}}, "linked to both 'ada' and 'bob'"),
]


@pytest.mark.parametrize(("raw", "problem"), BAD_CONFIGS)
def test_bad_configs_are_refused_with_the_problem_named(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        RoutingConfig.model_validate(raw)


def test_numeric_ids_in_json_are_read_as_strings() -> None:
    cfg = RoutingConfig.model_validate_json('{"bindings": [{"agent": "a", "match": {"peer_id": -1001234567890}}]}')
    assert cfg.bindings[0].match.peer_id == "-1001234567890"
    assert route(cfg, RouteInput("telegram", "telegram", "group", "-1001234567890")).agent == "a"


def test_longest_id_is_accepted() -> None:
    cfg = RoutingConfig.model_validate({"bindings": [{"agent": "a", "match": {"team_id": "T" * MAX_ID_CHARS}}]})
    assert cfg.bindings[0].match.team_id == "T" * MAX_ID_CHARS


def test_binding_count_limit() -> None:
    many = [{"agent": "a", "match": {"peer_id": str(i)}} for i in range(MAX_BINDINGS)]
    assert len(RoutingConfig.model_validate({"bindings": many}).bindings) == MAX_BINDINGS
    with pytest.raises(ValidationError, match="bindings"):
        RoutingConfig.model_validate({"bindings": [*many, {"agent": "a", "match": {"peer_id": "x"}}]})


def test_linked_id_count_limit() -> None:
    links = {"ada": [f"telegram:{i}" for i in range(MAX_LINKED_IDS)]}
    assert RoutingConfig.model_validate({"identity_links": links}).person_of("telegram", "0") == "ada"
    links["bob"] = ["slack:U1"]
    with pytest.raises(ValidationError, match=f"more than {MAX_LINKED_IDS} linked ids"):
        RoutingConfig.model_validate({"identity_links": links})


def test_a_linked_id_may_contain_colons() -> None:
    cfg = RoutingConfig.model_validate({"identity_links": {"ada": ["matrix:@ada:example.org"]}})
    assert cfg.person_of("matrix", "@ada:example.org") == "ada"


BAD_INPUTS = [
    (("telegram", "telegram", "chat", "1"), "peer_kind"),
    (("telegram", "telegram", "dm", ""), "must not be empty"),
    (("telegram", "", "dm", "1"), "must not be empty"),
    (("telegram", "telegram", "thread", "7"), "parent_peer_id"),
    (("telegram", "telegram", "group", "-100", "-1"), "parent_peer_id"),
]


@pytest.mark.parametrize(("args", "problem"), BAD_INPUTS)
def test_route_input_refuses_impossible_shapes(args: tuple[Any, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RouteInput(*args)
