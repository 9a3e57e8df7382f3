"""``airlock serve --workers N``: worker processes on one machine (issue 12, item 1).

``supervisor`` (the parent: sockets, restarts, status), ``policy`` (backoff and crash loops), ``role`` (what a
worker learns from its supervisor), ``launch`` (the glue with ``airlock serve``). Pollers and websockets run
under leases: ``channels.poll_lease``.
"""
