"""Schemathesis hooks for tests/agentapi/test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

The fuzzer draws Idempotency-Key values from a small space and reuses them across different requests; the API
refuses a reused key with 422 (draft-ietf-httpapi-idempotency-key-header, section 2.7), which schemathesis would
count as "valid data rejected". So a schema-valid key is made specific to its request (a digest of the method,
path and body is appended); invalid keys are left as drawn, so their rejection (400) is still checked. Key reuse
itself is tested in test_agent_api.py::test_idempotent_posts.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import schemathesis

_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID.fullmatch(key):
        what = json.dumps([case.method, case.path, case.path_parameters, case.body], default=str, sort_keys=True)
        headers["Idempotency-Key"] = f"{key[:200]}-{hashlib.sha256(what.encode()).hexdigest()[:16]}"
    return case
