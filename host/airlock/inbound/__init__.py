"""Inbound paths: the webhook server (polling lives in ``channels.manager``)."""
