"""Push mode: each message routed to a push agent is POSTed to the URL its operator registered
(``airlock agents add NAME --push-url URL``), signed; a 2xx answer is the acknowledgement.

Request: ``POST <push_url>``, ``Content-Type: application/json``, body = the message JSON (schema ``Message`` of
openapi.json, with its ``lease_token``, so the agent can reply through ``POST /v1/messages/{id}/reply`` before or
after answering), and the headers

    X-Airlock-Timestamp: <Unix seconds>
    X-Airlock-Signature: v1=<hex HMAC-SHA256(push secret, "v1:" + timestamp + ":" + body)>

A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses a timestamp more than
a few minutes old (replay). The push secret is shown once by ``agents add`` and kept in the encrypted secret store.

Retries: anything but a 2xx within :data:`PUSH_TIMEOUT_S` (an error status, a redirect, a refused connection, a
timeout) gives the lease back and the worker waits 0.5 s · 2ⁿ (capped at :data:`MAX_BACKOFF_S`, with jitter)
before the next try; the message keeps its place, so a conversation stays in order. If the gateway dies
mid-push, the lease's visibility timeout offers the message again after a restart.

Where requests go (SSRF): only to the URL the operator registered; redirects are not followed (a 3xx is a
failure), so a receiver cannot send the gateway elsewhere. Loopback and private addresses are allowed because the
operator chose the URL, as with ``upstream_overrides``; no guest or platform can set or change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time

import aiohttp

from ..stores.agents import AgentRecord
from .service import AgentService

log = logging.getLogger("airlock.agentapi")

#: Seconds a push receiver has to answer.
PUSH_TIMEOUT_S = 10.0
#: Longest wait between failed pushes, seconds.
MAX_BACKOFF_S = 30.0
BASE_BACKOFF_S = 0.5
#: Messages leased per round; conversations are pushed side by side, each one's messages one after another.
PUSH_BATCH = 8
#: Seconds one lease round waits for messages.
LEASE_WAIT_S = 30.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``v1:{timestamp}:{body}`` with ``secret`` (UTF-8)."""
    mac = hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (the signature only; it should also bound the timestamp's age)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class PushWorker:
    """Leases the messages of one push agent and POSTs them (module docstring)."""

    def __init__(self, service: AgentService, record: AgentRecord, secret: str,
                 rng: random.Random | None = None) -> None:
        self.service = service
        self.record = record
        self._secret = secret
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.pushed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"airlock-push-{self.record.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    messages = await self.service.lease(self.record.name, PUSH_BATCH, LEASE_WAIT_S)
                    by_conversation: dict[str, list[dict[str, object]]] = {}
                    for m in messages:
                        by_conversation.setdefault(str(m["conversation"]), []).append(m)
                    results = await asyncio.gather(*(self._push_in_order(session, ms)
                                                     for ms in by_conversation.values()))
                except asyncio.CancelledError:
                    raise
                except Exception:  # storage trouble: wait and go on (the leases expire and come back)
                    log.exception("push agent %s: lease failed", self.record.name)
                    results = [False]
                if all(results):
                    self.failures = 0
                    continue
                self.failures += 1
                delay = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** (self.failures - 1))
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))

    async def _push_in_order(self, session: aiohttp.ClientSession, messages: list[dict[str, object]]) -> bool:
        """Push one conversation's messages one after another; after a failure the rest are given back unpushed,
        so a later message never overtakes an earlier one."""
        for i, m in enumerate(messages):
            if not await self._push(session, m):
                for rest in messages[i + 1:]:
                    await self.service.host.bus.release(str(rest["id"]), str(rest["lease_token"]))
                return False
        return True

    async def _push(self, session: aiohttp.ClientSession, message: dict[str, object]) -> bool:
        body = json.dumps(message).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Airlock-Timestamp": stamp,
                   "X-Airlock-Signature": sign(self._secret, stamp, body)}
        mid, token = str(message["id"]), str(message["lease_token"])
        url = self.record.push_url or ""
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                ok = 200 <= resp.status < 300
                reason = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, reason = False, type(exc).__name__
        if ok:
            await self.service.host.bus.ack(mid, token)  # False if the agent replied already: fine
            self.pushed += 1
            return True
        log.warning("push agent %s: message %s not accepted (%s); will retry", self.record.name, mid, reason)
        await self.service.host.bus.release(mid, token)
        return False
