"""Component entry point: componentize-py exports the class bound to the name ``Channel``."""

from telegram_channel import TelegramChannel

from airlock_sdk import export

Channel = export(TelegramChannel)
