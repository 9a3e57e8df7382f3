"""Component entry point for the compat test channel (world near:agent/sandboxed-channel@0.3.1)."""

from compat_channel import Compat

from airlock_sdk import export

Channel = export(Compat)
