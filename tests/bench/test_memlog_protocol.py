"""The benchmark's in-memory message log (bench/memlog.py) offers every method of ``MessageLog`` with the same
parameters: the in-memory line of the round-trip benchmark must run the same host code as the log line. (It once
lacked the outbox claim methods added for the cluster; the sender then logged an error on every attempt, which made
the in-memory line slower than it is.)"""

from __future__ import annotations

import inspect
import sys

from conftest import REPO

from airlock.messages.log import MessageLog

sys.path.insert(0, str(REPO / "bench"))

from memlog import MemoryMessageLog


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items()
            if callable(fn) and not name.startswith("_")}


def test_the_in_memory_log_has_every_message_log_method_with_its_parameters() -> None:
    wanted = _methods(MessageLog)
    have = _methods(MemoryMessageLog)
    assert sorted(set(wanted) - set(have)) == []
    for name, sig in wanted.items():
        assert list(have[name].parameters) == list(sig.parameters), name
