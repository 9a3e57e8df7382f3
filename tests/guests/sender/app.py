"""Component entry point of the sender test channel (world airlock:channel/interactive-channel)."""

from sender_channel import Sender

from airlock_sdk import export, export_delivery, export_edits, export_reactions

Channel = export(Sender)
Delivery = export_delivery(Sender)
Edits = export_edits(Sender)
Reactions = export_reactions(Sender)
