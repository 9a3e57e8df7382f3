"""Component entry point for the probe test channel."""

from probe_channel import Probe

from airlock_sdk import export

Channel = export(Probe)
