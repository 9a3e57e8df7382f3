"""An echo agent written against the agent HTTP API only: standard library, no airlock import (the test runs it
with ``python -I``). Usage: http_agent.py BASE_URL TOKEN REPLIES — answers REPLIES messages, then exits 0.

For each message: status "thinking", then the reply ``echo: <content>`` (with an Idempotency-Key, as a real
agent retrying after a timeout would send it)."""

import json
import sys
import urllib.request


def call(base, token, method, path, body=None, key=None):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def main():
    base, token, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    done = 0
    while done < wanted:
        for m in call(base, token, "GET", "/v1/messages?wait=10&limit=5")["messages"]:
            call(base, token, "POST", f"/v1/messages/{m['id']}/status", {"status": "thinking"})
            reply = {"text": f"echo: {m['content']}", "lease_token": m["lease_token"]}
            out = call(base, token, "POST", f"/v1/messages/{m['id']}/reply", reply, key=f"reply-{m['id']}")
            print(f"replied to {m['id']} ({m['channel']}/{m['user_id']}): outbox {out['outbox_id']}", flush=True)
            done += 1


if __name__ == "__main__":
    main()
