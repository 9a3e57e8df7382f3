"""Who may use the admin listener: one bearer token, and browser sessions opened with it.

The token (``TOKEN_PREFIX`` + 43 urlsafe base64 characters: 256 random bits) is shown once, when it is made:
at the first start of a host with the admin listener, or by ``issue_token`` (``airlock admin token``). Only
its SHA-256 is kept, in ``<home>/admin-token`` (JSON, mode 0600, replaced atomically). A fast hash is enough:
with 256 bits of entropy nothing can be guessed from it, and a slow hash (scrypt) would only slow every API
call. Issuing a new token invalidates the old one and every session opened with it, also in a running host
(the file is read again when it changes).

Browser sessions (``Sessions``): ``POST /login`` with the token gives a cookie ``airlock_session`` (random,
``HttpOnly``, ``SameSite=Strict``, path ``/``, no ``Secure`` because the listener is plain HTTP on loopback by
default) that lasts ``SESSION_TTL_S``; at most ``MAX_SESSIONS`` live at once (the oldest goes). Each session has
a CSRF token that every state-changing form must send back. Failed logins are limited to
``LOGIN_FAILURES_PER_MINUTE`` for the whole listener (then 429), so the token cannot be guessed online.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "COOKIE",
    "LOGIN_FAILURES_PER_MINUTE",
    "MAX_SESSIONS",
    "SESSION_TTL_S",
    "TOKEN_FILENAME",
    "TOKEN_PREFIX",
    "LoginLimiter",
    "Session",
    "Sessions",
    "TokenFile",
    "issue_token",
]

TOKEN_FILENAME = "admin-token"
TOKEN_PREFIX = "alk_"
TOKEN_BYTES = 32
COOKIE = "airlock_session"
SESSION_TTL_S = 12 * 3600
"""A console session lasts 12 hours, then the token is asked for again."""
MAX_SESSIONS = 64
LOGIN_FAILURES_PER_MINUTE = 10
_FORMAT = 1


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class TokenFile:
    """The hashed admin token in ``<home>/admin-token`` (module docstring). Thread-safe."""

    def __init__(self, home: Path) -> None:
        self.path = home / TOKEN_FILENAME
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._hash: str | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def issue(self) -> str:
        """Make a new token, store its hash (replacing the old one) and return the token itself."""
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode().rstrip("=")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": _FORMAT, "sha256": _digest(token), "created": int(time.time())}
        _write_private(self.path, json.dumps(doc) + "\n")
        return token

    def ensure(self) -> str | None:
        """Issue a token if none is stored; return it (to be shown once), or None if one existed."""
        with self._lock:
            return None if self.exists() else self.issue()

    def generation(self) -> str | None:
        """The stored hash (changes when a new token is issued), or None if there is no usable file."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                self._signature, self._hash = None, None
                return None
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if signature != self._signature:
                self._signature, self._hash = signature, self._read()
            return self._hash

    def _read(self) -> str | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = doc.get("sha256") if isinstance(doc, dict) else None
        return value if isinstance(value, str) and len(value) == 64 else None

    def check(self, token: str) -> bool:
        """True if ``token`` is the current admin token (constant-time comparison of the hashes)."""
        stored = self.generation()
        if stored is None or not token or len(token) > 256:
            return False
        return hmac.compare_digest(_digest(token), stored)


def issue_token(home: Path) -> str:
    """A new admin token for the host in ``home`` (``airlock admin token``): the old one and its sessions stop
    working, also in a running host. Returns the token (show it once; only its hash is stored).

    Raises:
        ConfigError: the token file cannot be written.
    """
    try:
        return TokenFile(home).issue()
    except OSError as exc:
        raise ConfigError(f"cannot write {home / TOKEN_FILENAME}: {exc.strerror or exc}") from None


@dataclass
class Session:
    """A console session: its CSRF token, the token generation it was opened with, expiry (monotonic s),
    and one-shot messages for the next page."""

    csrf: str
    generation: str
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    """Live console sessions by cookie value (module docstring). Used from the event loop only."""

    def __init__(self, tokens: TokenFile, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens = tokens
        self._clock = clock
        self._live: OrderedDict[str, Session] = OrderedDict()

    def open(self) -> tuple[str, Session]:
        """A new session for a caller who just gave the right token: (cookie value, session)."""
        generation = self._tokens.generation() or ""
        while len(self._live) >= MAX_SESSIONS:
            self._live.popitem(last=False)
        key = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), generation=generation,
                          expires=self._clock() + SESSION_TTL_S)
        self._live[key] = session
        return key, session

    def get(self, key: str | None) -> Session | None:
        """The live session of cookie value ``key``; None if unknown, expired, or opened with a replaced token."""
        if not key:
            return None
        session = self._live.get(key)
        if session is None:
            return None
        if self._clock() >= session.expires or session.generation != (self._tokens.generation() or ""):
            del self._live[key]
            return None
        return session

    def close(self, key: str | None) -> None:
        if key:
            self._live.pop(key, None)


class LoginLimiter:
    """At most ``limit`` failed logins in any 60 s, for the whole listener."""

    def __init__(self, limit: int = LOGIN_FAILURES_PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._failures: deque[float] = deque()

    def _trim(self) -> None:
        cutoff = self._clock() - 60.0
        while self._failures and self._failures[0] <= cutoff:
            self._failures.popleft()

    def blocked(self) -> bool:
        self._trim()
        return len(self._failures) >= self._limit

    def failed(self) -> None:
        self._trim()
        self._failures.append(self._clock())
