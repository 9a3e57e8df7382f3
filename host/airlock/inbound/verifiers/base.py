"""The pieces every webhook verifier shares: the request it sees, its verdicts, and small checks.

A verifier runs in the host before any guest code, on the raw request bytes. It answers :class:`Accept`
(optionally with a replacement body, e.g. a decrypted Feishu event) or :class:`Reject` with status 401
(credentials missing or malformed) or 403 (credentials present but wrong, stale or replayed, or a secret the
check needs is not stored). ``Reject.reason`` is for the host log only: it never contains a secret or a
signature value, and the HTTP body of a rejection carries no detail.

Secrets are looked up on every request (never cached here), so ``airlock secrets set`` takes effect without a
restart. A secret that is missing or empty always rejects: a check is never skipped because its key is absent.
"""

from __future__ import annotations

import hmac
import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

SecretLookup = Callable[[str], str | None]
"""``name -> value`` (None when the secret is not stored), e.g. ``SecretStore.get``."""

#: Slack and Discord: a signed timestamp more than this many seconds before or after the host's clock is stale.
TIMESTAMP_WINDOW_S = 300

#: Signatures remembered per channel to refuse replays (see :class:`ReplayCache`).
MAX_REPLAY_ENTRIES = 10_000

_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Accept:
    """The request may reach the guest.

    ``validated`` is what the guest sees as secret-validated (False only when the host could not check, e.g.
    Meta POSTs without an app secret). ``body``, when not None, replaces the raw body (Feishu decryption).
    """

    validated: bool
    body: bytes | None = None


@dataclass(frozen=True)
class Reject:
    """Refuse before the guest runs: ``status`` 401 or 403; ``reason`` is for the host log only."""

    status: Literal[401, 403]
    reason: str


Verdict = Accept | Reject


class Rejected(Exception):
    """Raised inside a verifier; :meth:`Verifier.verify` turns it into a :class:`Reject`."""

    def __init__(self, status: Literal[401, 403], reason: str) -> None:
        super().__init__(reason)
        self.status: Literal[401, 403] = status
        self.reason = reason


def unauthorized(reason: str) -> Rejected:
    """401: credentials missing or malformed."""
    return Rejected(401, reason)


def forbidden(reason: str) -> Rejected:
    """403: credentials wrong, stale or replayed, or the secret to check them against is not stored."""
    return Rejected(403, reason)


def _multi(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        out[key] = (*out.get(key, ()), value)
    return out


@dataclass(frozen=True)
class WebhookRequest:
    """What a verifier sees. ``headers`` keys are lowercase; values keep every occurrence, in order.

    ``now`` is the host's clock in Unix seconds (passed in so tests can move it).
    """

    method: str
    path: str
    headers: Mapping[str, tuple[str, ...]]
    query: Mapping[str, tuple[str, ...]]
    body: bytes
    now: float

    @classmethod
    def build(
        cls, method: str, path: str, headers: Iterable[tuple[str, str]] | Mapping[str, str],
        query: Iterable[tuple[str, str]] | Mapping[str, str], body: bytes, now: float,
    ) -> WebhookRequest:
        """Make a request from header / query pairs (or plain dicts); header names are matched case-insensitively."""
        hpairs = headers.items() if isinstance(headers, Mapping) else headers
        qpairs = query.items() if isinstance(query, Mapping) else query
        return cls(method.upper(), path, _multi(hpairs, True), _multi(qpairs, False), body, now)

    def header(self, name: str) -> str | None:
        """The header's value, None when absent. Raises :class:`Rejected` (401) when it is repeated (which copy
        the platform signed would be a guess) or not valid UTF-8."""
        return self._one(self.headers.get(name.lower()), f"header {name}")

    def query_value(self, name: str) -> str | None:
        """The query parameter's value, None when absent; 401 when repeated (see :meth:`header`)."""
        return self._one(self.query.get(name), f"query parameter {name}")

    @staticmethod
    def _one(values: tuple[str, ...] | None, what: str) -> str | None:
        if not values:
            return None
        if len(values) > 1:
            raise unauthorized(f"{what} given {len(values)} times")
        value = values[0]
        if not _is_utf8(value):  # aiohttp keeps undecodable header bytes as lone surrogates
            raise unauthorized(f"{what} is not valid UTF-8")
        return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two strings or byte strings (UTF-8 for str)."""
    # surrogateescape: a str holding undecodable request bytes compares as those bytes, never raises
    left = a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a
    right = b.encode("utf-8", "surrogateescape") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def fresh_timestamp(text: str, now: float, what: str, window_s: int = TIMESTAMP_WINDOW_S) -> int:
    """Parse a Unix-seconds timestamp header and check it is within ``window_s`` of ``now`` either way.

    Raises :class:`Rejected`: 401 when it is not 1-12 ASCII digits, 403 when it is outside the window.
    """
    if not _UNIX_SECONDS.fullmatch(text):
        raise unauthorized(f"{what} is not a Unix timestamp")
    when = int(text)
    skew = now - when
    if abs(skew) > window_s:
        direction = "old" if skew > 0 else "in the future"
        raise forbidden(f"{what} is {abs(skew):.0f} s {direction} (window {window_s} s)")
    return when


class ReplayCache:
    """Signatures already accepted, each remembered until its timestamp leaves the window.

    Bounded to ``max_entries`` (default :data:`MAX_REPLAY_ENTRIES`): entries whose expiry has passed are dropped
    first; if the cache is still full, the oldest insertion is evicted (and counted in ``evictions``). An evicted
    signature could be replayed until its timestamp goes stale, so the bound is set well above a platform's
    legitimate volume in one window (10 000 per 5 minutes is 33 signed requests per second per channel).
    Used from the event loop only (not thread-safe).
    """

    def __init__(self, max_entries: int = MAX_REPLAY_ENTRIES) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self.evictions = 0
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def known(self, key: str, now: float) -> bool:
        """True if ``key`` was recorded and has not expired (records nothing)."""
        expiry = self._expiry.get(key)
        return expiry is not None and expiry > now

    def seen(self, key: str, expires_at: float, now: float) -> bool:
        """True if ``key`` was recorded and has not expired; otherwise record it (until ``expires_at``) and
        return False."""
        self._drop_expired(now)
        known = self._expiry.get(key)
        if known is not None and known > now:
            return True
        self._expiry[key] = expires_at
        self._expiry.move_to_end(key)
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
            self.evictions += 1
        return False

    def _drop_expired(self, now: float) -> None:
        # Insertion order is close to expiry order; an expired entry left behind a newer one is harmless (its
        # timestamp is stale, so a replay of it is refused anyway) and is bounded by max_entries.
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                return
            del self._expiry[key]


class ReplayGuard(Protocol):
    """What a verifier asks about a signature: ``ReplayCache`` (this process) or ``state.replay.SharedReplayCache``
    (every process on the state database)."""

    def seen(self, key: str, expires_at: float, now: float) -> bool: ...


ReplayFactory = Callable[[str], ReplayGuard]
"""``channel name -> its replay guard`` (``HostServices.replay``); None: an in-memory ``ReplayCache`` per channel."""


class Verifier(ABC):
    """One channel's webhook check. Build once per channel (:func:`build_verifier`), call :meth:`verify` per
    request. ``scheme`` names the check ("none" when the host does not verify).

    ``secret_headers`` (lowercase names) and ``secret_query`` (parameter names) carry a stored secret verbatim
    (Telegram's secret header, Meta's verify token): the server removes them from what the guest sees, since
    the guest only needs secret-validated and never holds the secret itself.
    """

    scheme: ClassVar[str]

    def __init__(self, channel: str, lookup: SecretLookup) -> None:
        self.channel = channel
        self._lookup = lookup
        self.secret_headers: frozenset[str] = frozenset()
        self.secret_query: frozenset[str] = frozenset()

    def verify(self, req: WebhookRequest) -> Verdict:
        """Check one request. Never raises for anything the request contains."""
        try:
            return self.check(req)
        except Rejected as r:
            return Reject(r.status, r.reason)
        except UnicodeError:  # request bytes that are not text where a scheme needs text: the client's fault
            return Reject(401, "a signed field is not valid UTF-8")

    @abstractmethod
    def check(self, req: WebhookRequest) -> Accept:
        """Return :class:`Accept` or raise :class:`Rejected`."""

    def secret(self, name: str | None, what: str) -> str:
        """The stored value of secret ``name``; 403 when no name is configured or the secret is missing/empty."""
        if not name:
            raise forbidden(f"no {what} secret is named in the capabilities file")
        value = self._lookup(name)
        if not value:
            raise forbidden(f"{what} secret {name} is not stored (airlock secrets set {name})")
        return value
