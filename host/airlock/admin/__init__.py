"""The admin listener: a JSON API, a server-rendered web console and ``/metrics``, behind one bearer token.

- ``server``: the listener (``AdminServer``), access rules and security headers.
- ``auth``: the hashed token file, ``issue_token`` (``airlock admin token``), console sessions, login limit.
- ``api``: JSON routes; ``console`` and ``pages``: HTML routes; ``render`` + ``templates/``: escaped HTML.
- ``views``: the documents and actions the API and the console share.
- ``static/``: the console's CSS and its small refresh script (served by the listener; no CDN).
"""

from .auth import TokenFile, issue_token
from .server import AdminServer
from .views import AdminState

__all__ = ["AdminServer", "AdminState", "TokenFile", "issue_token"]
