"""Channels: a loaded, configured component (``Channel``) and the manager that runs them."""
