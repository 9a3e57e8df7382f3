"""One pusher per push agent in a cluster: a lease per agent (``state.leases``, name ``push-agent:NAME``).

With PostgreSQL state the agents registry is the cluster's (``stores.agents``), so every node's agent API sees every
push agent. A push worker keeps a conversation in order by pushing its messages one after another
(``agentapi.push``); two workers of one agent on two nodes would each lease a message of the same conversation and
push them side by side. So a node runs an agent's worker only while it holds that agent's lease: taken or renewed at
every look at the registry (``server.REFRESH_S``, 2 s), for ``HostConfig.lease_ttl_s`` (15 s by default), released
when the agent leaves or the node stops. When the holder dies, another node takes the agent over once the lease has
expired; messages it had leased come back after their visibility timeout, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..errors import LeaseLost
from ..state.leases import Lease, Leases

__all__ = ["LEASE_PREFIX", "PushLeases"]

log = logging.getLogger("airlock.agentapi")

LEASE_PREFIX = "push-agent:"
"""Lease names: this prefix and the agent's name."""


class PushLeases:
    """The push-agent leases of one process (module docstring). Blocking: call from a worker thread."""

    def __init__(self, leases: Leases, holder: str, ttl_s: float) -> None:
        self._leases = leases
        self._holder = holder
        self._ttl_s = ttl_s
        self._held: dict[str, Lease] = {}

    def hold(self, agents: Iterable[str], now: float) -> set[str]:
        """Renew or take the lease of each agent in ``agents``, give back the others held; return the agents whose
        lease this process holds now. Raises StateUnavailable (the leases held are kept, to be renewed next
        time)."""
        wanted = set(agents)
        for name in [n for n in self._held if n not in wanted]:
            self._leases.release(self._held.pop(name))
        for name in sorted(wanted):
            lease = self._held.get(name)
            try:
                if lease is not None:
                    self._held[name] = self._leases.renew(lease, self._ttl_s, now)
                    continue
            except LeaseLost:
                del self._held[name]
                log.warning("push agent %s: lease lost; another node pushes now", name)
            taken = self._leases.acquire(LEASE_PREFIX + name, self._holder, self._ttl_s, now)
            if taken is not None:
                self._held[name] = taken
        return set(self._held)

    def release_all(self) -> None:
        """Give every lease back (the node stops: another takes over at once, not after the time to live)."""
        for lease in self._held.values():
            self._leases.release(lease)
        self._held.clear()
