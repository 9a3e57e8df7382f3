"""What ``make run`` runs without any account: the gateway, every bundled channel, and a fake Telegram Bot API
on 127.0.0.1 (``airlock_demo.telegram``), with a scripted conversation (``airlock_demo.demo``).

A separate top-level package on purpose: the production wheel ships ``airlock`` only, so an installed
gateway carries no fake platform server. It runs from a checkout: ``PYTHONPATH=host python -m airlock_demo``.
"""
