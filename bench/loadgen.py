"""HTTP load generator, run as its own process (never inside the server's): ``concurrency`` connections
POSTing for ``duration`` seconds, one request at a time per connection; prints one JSON line.

Two ways to drive it (bench/e2e.py picks): ``wrk`` (C, cheapest per request, so most of a shared machine's
CPU is left to the server) through :func:`wrk_command` / :func:`parse_wrk`, or this script (aiohttp client),
which is also the only one that can sign every request, as Slack's Events API does:
``X-Slack-Signature = v0=HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")`` computed with slack_sdk's
``SignatureVerifier`` (the host refuses replayed signatures, so each request gets a unique body).

Output: {"requests": int (2xx), "non2xx": int, "errors": int, "duration_s": float, "rps": float,
"p50_ms": float, "p99_ms": float, "statuses": {status: count}}.

Usage: python bench/loadgen.py URL --concurrency 8 --duration 5 --body-file bodies.json
       [--header NAME:VALUE ...] [--slack-signing-secret SECRET]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.signature import SignatureVerifier

WRK_SCRIPT = """
wrk.method = "POST"
{headers}
local bodies = {{ {bodies} }}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    level = "=" * 4
    if f"]{level}]" in text:
        raise ValueError("body contains the Lua long-bracket terminator")
    return f"[{level}[{text}]{level}]"


def wrk_script(bodies: list[bytes], headers: dict[str, str]) -> str:
    """A wrk Lua script POSTing ``bodies`` in turn with ``headers``, printing a WRK-JSON summary line."""
    lines = "\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    return WRK_SCRIPT.format(headers=lines, bodies=", ".join(_lua_string(b.decode()) for b in bodies))


def wrk_command(wrk: str, url: str, script: Path, concurrency: int, duration_s: float) -> list[str]:
    return [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
            "-s", str(script), url]


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The summary of a wrk run from its WRK-JSON line (latencies in wrk's microseconds)."""
    for line in stdout.splitlines():
        if line.startswith("WRK-JSON "):
            raw = json.loads(line.removeprefix("WRK-JSON "))
            duration_s = raw["duration_us"] / 1e6
            ok = raw["requests"] - raw["non2xx"]
            return {"requests": ok, "non2xx": raw["non2xx"], "errors": raw["errors"],
                    "duration_s": round(duration_s, 3), "rps": round(ok / duration_s, 1),
                    "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3, "statuses": {}}
    raise ValueError(f"no WRK-JSON line in wrk output: {stdout[-500:]!r}")


def slack_signer(secret: str, template: dict[str, Any]) -> Callable[[int], tuple[bytes, dict[str, str]]]:
    """Request ``n`` -> (unique body, Slack signature headers), signed by slack_sdk."""
    verifier = SignatureVerifier(secret)

    def sign(n: int) -> tuple[bytes, dict[str, str]]:
        event = json.loads(json.dumps(template))
        event["event_id"] = f"Ev{n:010d}"
        event["event"]["ts"] = event["event"]["event_ts"] = f"1700000000.{n:06d}"
        body = json.dumps(event)
        ts = str(int(time.time()))
        sig = verifier.generate_signature(timestamp=ts, body=body)
        assert sig is not None
        return body.encode(), {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig,
                               "Content-Type": "application/json"}

    return sign


async def run(url: str, concurrency: int, duration_s: float,
              make: Callable[[int], tuple[bytes, dict[str, str]]]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    counter = 0
    deadline = time.perf_counter() + duration_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, counter
        while time.perf_counter() < deadline:
            counter += 1
            body, headers = make(counter)
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except aiohttp.ClientError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    lat = sorted(latencies) or [0.0]
    return {"requests": ok, "non2xx": sum(statuses.values()) - ok, "errors": errors,
            "duration_s": round(elapsed, 3), "rps": round(ok / elapsed, 1),
            "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--body-file", type=Path, required=True, help="JSON list of body strings (or template)")
    parser.add_argument("--header", action="append", default=[], help="NAME:VALUE")
    parser.add_argument("--slack-signing-secret", help="sign each request; --body-file is one event template")
    args = parser.parse_args()
    loaded = json.loads(args.body_file.read_text())
    headers = dict(h.split(":", 1) for h in args.header)
    if args.slack_signing_secret:
        make = slack_signer(args.slack_signing_secret, loaded)
    else:
        bodies = [b.encode() for b in loaded]

        def make(n: int) -> tuple[bytes, dict[str, str]]:
            return bodies[n % len(bodies)], headers

    print(json.dumps(asyncio.run(run(args.url, args.concurrency, args.duration, make))))


if __name__ == "__main__":
    main()
