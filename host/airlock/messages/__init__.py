"""The message log and what travels with each entry (routing: :mod:`airlock.messages.routing`)."""
