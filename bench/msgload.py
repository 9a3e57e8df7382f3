"""Load generator for the message-path benchmarks (bench/roundtrip.py), run as a process of its own.

``roundtrip``: the platform side of webhook -> log -> agent -> reply. ``--conversations`` virtual users, each in
its own conversation, each sending a webhook (the template-rust channel's JSON: user, text, a unique id) and
waiting until the agent's reply reaches this process's fake reply endpoint (``--reply-port``: what the channel's
on-respond POSTs to, through the host's upstream override) before sending the next one. Measured after a warm-up:
round trips per second, round-trip latency (webhook sent -> reply received) and webhook answer latency.

``agents``: ``--connections`` agents on the agent HTTP API, each taking one message at a time (``GET
/v1/messages?limit=1``) and acknowledging it (``POST /v1/messages/{id}/ack`` with its lease token). Measured:
messages per second and the latency of one lease + ack.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web

ROUND_TRIP_TIMEOUT_S = 10.0


def _ms(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    s = sorted(samples)
    return round(s[min(len(s) - 1, max(0, round(q * len(s)) - 1))] * 1000, 2)


async def roundtrip(args: argparse.Namespace) -> dict[str, Any]:
    waiting: dict[str, asyncio.Future[float]] = {}

    async def reply(request: web.Request) -> web.Response:
        doc = await request.json()
        fut = waiting.pop(str(doc.get("in_reply_to")), None)  # template-rust: the platform id it answers
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/airlock/reply", reply)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.reply_port).start()
    start = time.perf_counter()
    counted_from, end = start + args.warmup, start + args.warmup + args.duration
    trips: list[float] = []
    acks: list[float] = []
    failures = {"non2xx": 0, "errors": 0}
    completed = [0]  # round trips of the whole run, warm-up included (the host's CPU time covers all of them)
    ids = itertools.count()
    run = secrets.token_hex(4)  # ids unique across runs: the channel answers a repeated id "duplicate"

    async def user(i: int, session: aiohttp.ClientSession) -> None:
        while (t0 := time.perf_counter()) < end:
            mid = f"{run}-u{i}-{next(ids)}"
            fut = waiting[mid] = asyncio.get_running_loop().create_future()
            try:
                async with session.post(args.webhook, json={"user": f"u{i}", "text": f"hello {mid}", "id": mid},
                                        headers={"X-Airlock-Webhook-Secret": args.secret}) as r:
                    await r.read()
                    status = r.status
                t_ack = time.perf_counter()
                if status != 200:
                    failures["non2xx"] += 1
                    waiting.pop(mid, None)
                    continue
                t1 = await asyncio.wait_for(fut, ROUND_TRIP_TIMEOUT_S)
            except (aiohttp.ClientError, TimeoutError):
                failures["errors"] += 1
                waiting.pop(mid, None)
                continue
            completed[0] += 1
            if t0 >= counted_from and t1 <= end:
                trips.append(t1 - t0)
                acks.append(t_ack - t0)

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await asyncio.gather(*(user(i, session) for i in range(args.conversations)))
    finally:
        await runner.cleanup()
    return {"round_trips": len(trips), "duration_s": args.duration, "rps": round(len(trips) / args.duration, 1),
            "p50_ms": _ms(trips, 0.5), "p99_ms": _ms(trips, 0.99), "ack_p50_ms": _ms(acks, 0.5),
            "ack_p99_ms": _ms(acks, 0.99), "conversations": args.conversations, "all_round_trips": completed[0],
            **failures,
            "trip_samples_s": [round(t, 6) for t in trips], "ack_samples_s": [round(t, 6) for t in acks]}


async def agents(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.token}"}
    end = time.perf_counter() + args.duration
    took: list[float] = []
    failures = {"non2xx": 0, "errors": 0, "empty_polls": 0}

    async def agent(session: aiohttp.ClientSession) -> None:
        while (t0 := time.perf_counter()) < end:
            try:
                async with session.get(f"{args.api}/v1/messages?limit=1&wait=1", headers=headers) as r:
                    if r.status != 200:
                        failures["non2xx"] += 1
                        continue
                    messages = (await r.json())["messages"]
                if not messages:
                    failures["empty_polls"] += 1
                    continue
                m = messages[0]
                async with session.post(f"{args.api}/v1/messages/{m['id']}/ack", headers=headers,
                                        json={"lease_token": m["lease_token"]}) as r:
                    await r.read()
                    if r.status >= 300:
                        failures["non2xx"] += 1
                        continue
            except aiohttp.ClientError:
                failures["errors"] += 1
                continue
            took.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(agent(session) for _ in range(args.connections)))
    elapsed = time.perf_counter() - start
    return {"messages": len(took), "duration_s": round(elapsed, 2), "per_s": round(len(took) / elapsed, 1),
            "p50_ms": _ms(took, 0.5), "p99_ms": _ms(took, 0.99), "connections": args.connections, **failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    rt = sub.add_parser("roundtrip")
    rt.add_argument("--webhook", required=True)
    rt.add_argument("--secret", required=True)
    rt.add_argument("--reply-port", type=int, required=True)
    rt.add_argument("--conversations", type=int, default=8)
    rt.add_argument("--duration", type=float, default=8.0)
    rt.add_argument("--warmup", type=float, default=2.0)
    ag = sub.add_parser("agents")
    ag.add_argument("--api", required=True)
    ag.add_argument("--token", required=True)
    ag.add_argument("--connections", type=int, default=1)
    ag.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    result = asyncio.run(roundtrip(args) if args.mode == "roundtrip" else agents(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
