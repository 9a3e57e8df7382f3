"""Push-agent leases (``agentapi.push_lease``) on a real lease store (SQLite ``state.leases``): one holder per agent,
renewed while wanted, given back when not, taken over after expiry or a release."""

from __future__ import annotations

from pathlib import Path

from airlock.agentapi.push_lease import LEASE_PREFIX, PushLeases
from airlock.state.leases import SqliteLeases

TTL_S = 15.0


def test_one_holder_per_agent(tmp_path: Path) -> None:
    store = SqliteLeases(tmp_path / "state.db")
    try:
        a, b = PushLeases(store, "node-a", TTL_S), PushLeases(store, "node-b", TTL_S)
        assert a.hold(["p1", "p2"], now=1000.0) == {"p1", "p2"}
        assert b.hold(["p1", "p2", "p3"], now=1001.0) == {"p3"}  # a holds the others
        assert a.hold(["p1", "p2"], now=1000.0 + TTL_S - 1) == {"p1", "p2"}  # renewed before it expired
        assert b.hold(["p1", "p2", "p3"], now=1000.0 + TTL_S + 1) == {"p3"}  # a's renewal counts
        assert a.hold(["p1"], now=1020.0) == {"p1"}  # p2 no longer wanted: given back at once
        assert b.hold(["p1", "p2", "p3"], now=1020.5) == {"p2", "p3"}
        # a stalls past the time to live: b takes p1; a learns it lost it and does not push
        assert b.hold(["p1", "p2", "p3"], now=1020.0 + TTL_S + 1) == {"p1", "p2", "p3"}
        assert a.hold(["p1"], now=1020.0 + TTL_S + 2) == set()
        lease = store.get(LEASE_PREFIX + "p1")
        assert lease is not None and lease.holder == "node-b"
        b.release_all()
        assert a.hold(["p1"], now=1020.0 + TTL_S + 3) == {"p1"}  # released: taken at once, not after expiry
    finally:
        store.close()
