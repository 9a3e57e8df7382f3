"""The checked-in OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator), the same as its builder, served by
the API, and honoured by the running server (schemathesis, every check, time-bounded)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import aiohttp
from apihelp import api, inject, started_host
from openapi_spec_validator import validate

from airlock.agentapi import openapi
from airlock.agentapi.routes import openapi_text

SCHEMATHESIS_BUDGET_S = 25
HERE = Path(__file__).parent
CHECKED_IN = Path(openapi.__file__).with_name("openapi.json")


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = json.loads(CHECKED_IN.read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises OpenAPIValidationError with the first problem


def test_the_checked_in_file_matches_its_builder() -> None:
    # regenerate with: PYTHONPATH=host python -m airlock.agentapi.openapi > host/airlock/agentapi/openapi.json
    assert CHECKED_IN.read_text() == openapi.render()
    assert openapi_text() == openapi.render()  # what the package serves is that file


async def test_served_and_fuzzed_with_schemathesis(airlock_home: Path, tmp_path: Path) -> None:
    # Short leases and a stock of messages keep long polls short: every poll finds a message at once.
    async with started_host(airlock_home, agent_visibility_timeout_s=0.5) as host:
        token = host.agents.add("fuzz", None)[0]
        for chat in range(30):
            inject(host, "fuzz", f"message {chat}", chat=str(chat + 1))
        async with aiohttp.ClientSession() as s:
            r = await s.get(f"{api(host)}/v1/openapi.json")
            assert r.status == 200 and await r.json() == json.loads(CHECKED_IN.read_text())
        report = tmp_path / "st"
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")), "run", str(CHECKED_IN), "--url", api(host),
            "--checks", "all", "--max-time", str(SCHEMATHESIS_BUDGET_S), "--workers", "1",
            "--request-timeout", "10", "-H", f"Authorization: Bearer {token}", "--report", "junit",
            "--report-dir", str(report), "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "st_hooks",
                 "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])})
        out, _ = await asyncio.wait_for(proc.communicate(), SCHEMATHESIS_BUDGET_S * 4)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-6000:]
        generated = re.search(r"(\d+) generated", text)
        assert generated is not None and int(generated.group(1)) >= 100, text[-3000:]  # it really ran
        assert "Tested: 12" in text, text[-3000:]  # every operation
