"""Schemathesis hooks for tests/agentapi/test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

The fuzzer draws Idempotency-Key values from a small space and reuses them across different requests; the API
refuses a reused key with 422 (draft-ietf-httpapi-idempotency-key-header, section 2.7), which schemathesis would
count as "valid data rejected". So in positive cases a schema-valid key is made specific to its request (a digest
of the method, path and body is appended); negative cases are left as drawn, so their rejection is still checked.
Positive batch acknowledgements lose their repeated ids (``_unique_ack_ids``).
Key reuse itself is tested in test_agent_api.py::test_idempotent_posts.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import schemathesis

_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    # before_call, not map_case: it also runs in the stateful phase, whose bodies carry lease tokens from links
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode.is_negative:
        return  # a negative case expects a 4xx anyway; editing it would make schemathesis revalidate it as positive
    _unique_ack_ids(case)
    headers = case.headers if case.headers is not None else {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID.fullmatch(key):
        # Not sort_keys: the server fingerprints the raw body, so two bodies differing only in key order are two
        # requests and must get two keys (sorted, they shared one and the second was refused with 422).
        what = json.dumps([case.method, case.path, case.path_parameters, case.body], default=str)
        headers["Idempotency-Key"] = f"{key[:200]}-{hashlib.sha256(what.encode()).hexdigest()[:16]}"


def _unique_ack_ids(case: Any) -> None:
    """A batch acknowledgement naming an id twice is refused with 422 (``models.AckBatchBody``), a rule JSON Schema
    cannot state (``uniqueItems`` compares whole items, not their ids): in positive cases keep each id's first item.
    Duplicates are refused in test_batch_ack.py::test_bad_bodies_are_refused_and_nothing_is_acked."""
    body = case.body
    if case.path != "/v1/messages/ack" or not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return
    seen: set[object] = set()
    kept = []
    for item in body["messages"]:
        key = json.dumps(item.get("id"), sort_keys=True) if isinstance(item, dict) else None
        if key is None or key not in seen:
            kept.append(item)
        seen.add(key)
    body["messages"] = kept
