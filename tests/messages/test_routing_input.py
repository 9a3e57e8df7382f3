"""route_input_from over the metadata each bundled channel emits (shapes as the guests build them: the source
named per row), plus what unknown or malformed metadata gives (a DM from the sender)."""

from __future__ import annotations

from typing import Any

import pytest

from airlock.messages.routing import route_input_from
from airlock.messages.routing_models import RouteInput

# (case, channel type, user id, emitted thread id, metadata, expected RouteInput fields after channel/account)
Row = tuple[str, str, str, str | None, dict[str, Any], tuple[Any, ...]]

TELEGRAM: list[Row] = [  # guest-plugins/telegram/telegram_logic.py: to_message
    ("telegram private", "telegram", "42", None,
     {"chat_id": 42, "message_id": 5, "chat_type": "private", "username": "ada"}, ("dm", "42")),
    ("telegram group", "telegram", "42", None,
     {"chat_id": -4001, "message_id": 5, "chat_type": "group"}, ("group", "-4001")),
    ("telegram forum topic", "telegram", "42", "7",
     {"chat_id": -1001234567890, "message_id": 5, "chat_type": "supergroup", "thread_id": 7},
     ("thread", "7", "-1001234567890")),
    ("telegram topic from the emitted thread id", "telegram", "42", "7",
     {"chat_id": -100123, "message_id": 5, "chat_type": "supergroup"}, ("thread", "7", "-100123")),
    ("telegram private with a thread stays a dm", "telegram", "42", "3",
     {"chat_id": 42, "message_id": 5, "chat_type": "private", "thread_id": 3}, ("dm", "42")),
    ("telegram group without chat_id", "telegram", "42", None, {"chat_type": "group"}, ("dm", "42")),
]

SLACK: list[Row] = [  # guest-plugins/slack/src/channel.rs: to_outgoing
    ("slack dm", "slack", "U0ALICE", None,
     {"channel": "D0ALICE", "channel_type": "im", "ts": "1.1", "thread_ts": None, "reply_thread_ts": None,
      "user": "U0ALICE", "team": "T1", "event_id": "Ev1", "is_group": False}, ("dm", "U0ALICE", None, None, "T1")),
    ("slack dm thread stays a dm", "slack", "U0ALICE", "0.5",
     {"channel": "D0ALICE", "channel_type": "im", "ts": "1.1", "thread_ts": "0.5", "reply_thread_ts": "0.5",
      "user": "U0ALICE", "team": "T1", "event_id": "Ev1", "is_group": False}, ("dm", "U0ALICE", None, None, "T1")),
    ("slack mention, no thread", "slack", "U0ALICE", None,
     {"channel": "C0GENERAL", "channel_type": "channel", "ts": "1.1", "thread_ts": None, "reply_thread_ts": None,
      "user": "U0ALICE", "team": "T1", "event_id": "Ev2", "is_group": True}, ("group", "C0GENERAL", None, None, "T1")),
    ("slack mention opening a thread under itself", "slack", "U0ALICE", "1.1",
     {"channel": "C0GENERAL", "channel_type": "channel", "ts": "1.1", "thread_ts": None, "reply_thread_ts": "1.1",
      "user": "U0ALICE", "team": "T1", "event_id": "Ev3", "is_group": True},
     ("thread", "1.1", "C0GENERAL", None, "T1")),
    ("slack mention inside that thread: same thread", "slack", "U0BOB", "1.1",
     {"channel": "C0GENERAL", "channel_type": "channel", "ts": "2.2", "thread_ts": "1.1", "reply_thread_ts": "1.1",
      "user": "U0BOB", "team": "T1", "event_id": "Ev4", "is_group": True},
     ("thread", "1.1", "C0GENERAL", None, "T1")),
    ("slack without a channel", "slack", "U0ALICE", None, {"team": "T1"}, ("dm", "U0ALICE", None, None, "T1")),
]

DISCORD: list[Row] = [  # guest-plugins/discord/src/gateway.rs, interaction.rs
    ("discord gateway dm", "discord", "111", None,
     {"source": "gateway", "channel_id": "900", "message_id": "m1", "is_group": False}, ("dm", "111")),
    ("discord gateway guild channel", "discord", "111", "901",
     {"source": "gateway", "channel_id": "901", "message_id": "m2", "is_group": True, "guild_id": "500"},
     ("group", "901", None, "500")),
    ("discord slash command in a guild", "discord", "111", "901",
     {"source": "interaction", "application_id": "app", "interaction_token": "tok", "interaction_id": "i1",
      "command": "ask", "is_group": True, "channel_id": "901", "guild_id": "500"}, ("group", "901", None, "500")),
    ("discord slash command in a dm", "discord", "111", None,
     {"source": "interaction", "application_id": "app", "interaction_token": "tok", "interaction_id": "i2",
      "command": "ask", "is_group": False, "channel_id": "900"}, ("dm", "111")),
    ("discord guild without a channel id", "discord", "111", None,
     {"source": "interaction", "is_group": True, "guild_id": "500"}, ("dm", "111")),
]

FEISHU: list[Row] = [  # guest-plugins/feishu/src/event.rs
    ("feishu p2p", "feishu", "ou_a", None,
     {"message_id": "om_1", "chat_id": "oc_p", "chat_type": "p2p", "open_id": "ou_a"}, ("dm", "ou_a")),
    ("feishu group", "feishu", "ou_a", None,
     {"message_id": "om_2", "chat_id": "oc_g", "chat_type": "group", "open_id": "ou_a"}, ("group", "oc_g")),
    ("feishu group reply chain is not a thread", "feishu", "ou_a", None,
     {"message_id": "om_3", "chat_id": "oc_g", "chat_type": "group", "open_id": "ou_a", "root_id": "om_2"},
     ("group", "oc_g")),
    ("feishu group thread", "feishu", "ou_a", "omt_9",
     {"message_id": "om_4", "chat_id": "oc_g", "chat_type": "group", "open_id": "ou_a", "root_id": "om_2",
      "thread_id": "omt_9"}, ("thread", "omt_9", "oc_g")),
]

OTHERS: list[Row] = [
    ("wecom bot single chat", "wecom", "zhangsan", None,  # guest-plugins/wecom/src/bot.rs: message
     {"mode": "bot", "msgid": "m1", "req_id": "r1", "userid": "zhangsan", "chat_type": "single"}, ("dm", "zhangsan")),
    ("wecom bot group", "wecom", "zhangsan", None,
     {"mode": "bot", "msgid": "m2", "req_id": "r2", "userid": "zhangsan", "chat_type": "group", "chat_id": "wrkG"},
     ("group", "wrkG")),
    ("wecom app callback", "wecom", "zhangsan", None,  # guest-plugins/wecom/src/app.rs: callback
     {"mode": "app", "msgid": "4561255354251345929", "userid": "zhangsan", "agent_id": 218}, ("dm", "zhangsan")),
    ("wechat", "wechat", "o9cq80@im.wechat", None,  # guest-plugins/wechat/src/poll.rs: handle
     {"message_id": "7448678501208393000", "from_user_id": "o9cq80@im.wechat", "context_token": "c"},
     ("dm", "o9cq80@im.wechat")),
    ("whatsapp", "whatsapp", "15551234567", None,  # guest-plugins/whatsapp/src/channel.rs: to_outgoing
     {"phone_number_id": "106", "from": "15551234567", "message_id": "wamid.1", "name": "Alice",
      "context_id": None}, ("dm", "15551234567")),
    ("rust template (unknown type)", "template", "u1", "t",  # guest-plugins/template-rust/src/lib.rs
     {"user": "u1", "message_id": "m1", "thread": "t"}, ("dm", "u1")),
    ("unknown type claiming a group", "ironclaw-x", "u1", None,
     {"chat_id": 5, "chat_type": "group", "is_group": True, "guild_id": "500"}, ("dm", "u1")),
    ("booleans and floats are not ids", "telegram", "42", None,
     {"chat_id": True, "chat_type": "group"}, ("dm", "42")),
    ("a float chat id is not an id", "telegram", "42", None, {"chat_id": -4.5, "chat_type": "group"}, ("dm", "42")),
    ("an empty channel is not an id", "slack", "U1", None, {"channel": "", "channel_type": "channel"},
     ("dm", "U1")),
    ("a non-string kind is ignored", "feishu", "ou_a", None, {"chat_id": "oc_g", "chat_type": ["group"]},
     ("dm", "ou_a")),
]

ROWS = TELEGRAM + SLACK + DISCORD + FEISHU + OTHERS


@pytest.mark.parametrize(("case", "channel", "user", "thread", "meta", "want"), ROWS, ids=[r[0] for r in ROWS])
def test_route_input_from_bundled_channel_metadata(case: str, channel: str, user: str, thread: str | None,
                                                   meta: dict[str, Any], want: tuple[Any, ...]) -> None:
    got = route_input_from(channel, f"{channel}-work", user, thread, meta)
    assert got == RouteInput(channel, f"{channel}-work", *want)


def test_a_message_without_a_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="without a user id"):
        route_input_from("telegram", "telegram", "", None, {"chat_id": 1, "chat_type": "private"})
