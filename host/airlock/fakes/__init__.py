"""In-process fakes of the external services Airlock channels talk to.

These ship inside the package (rather than living only under ``tests/``) because the
gateway's demo mode embeds them: a demo run starts a fake service on 127.0.0.1 and points
the real channel plugin at it, so no external account or network access is needed.

Modules:

* :mod:`airlock.fakes.telegram` -- a fake Telegram Bot API server (``FakeTelegram``).
"""
