"""Component entry point: componentize-py exports the classes bound to ``Channel``, ``Delivery``, ``Edits`` and
``Reactions`` (world ``airlock:channel/interactive-channel``: scripts/build-python-guest.sh guest-plugins/telegram
OUT.wasm airlock:channel/interactive-channel)."""

import json

from telegram_channel import CONFIG_PATH, WEBHOOK_PATH, TelegramChannel
from telegram_logic import TelegramConfig

from airlock_sdk import Request, export, export_delivery, export_edits, export_reactions, prewarm

Channel = export(TelegramChannel)
Delivery = export_delivery(TelegramChannel)
Edits = export_edits(TelegramChannel)
Reactions = export_reactions(TelegramChannel)

# Warm the webhook path into the build-time snapshot (see airlock_sdk.prewarm): a made-up private-chat
# update and a group one (ignored: no mention) under a default config with open DMs. No real data.
_WARM_UPDATES = [
    {"update_id": 1, "message": {"message_id": 2, "date": 1, "message_thread_id": 3, "text": " warm up ",
                                 "from": {"id": 4, "is_bot": False, "first_name": "W", "username": "w"},
                                 "chat": {"id": 4, "type": "private", "first_name": "W"}}},
    {"update_id": 5, "message": {"message_id": 6, "date": 1, "text": "hello all",
                                 "from": {"id": 7, "is_bot": False, "first_name": "G"},
                                 "chat": {"id": -8, "type": "group", "title": "G"}}},
]
prewarm(
    Channel,
    [
        Request("POST", WEBHOOK_PATH, {"content-type": "application/json"}, {}, json.dumps(u).encode(), True)
        for u in _WARM_UPDATES
    ],
    workspace={CONFIG_PATH: json.dumps(TelegramConfig.from_dict({"dm_policy": "open"}).to_state())},
)
