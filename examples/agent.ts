// An Airlock agent in TypeScript (plain `fetch`, no runtime packages): long-polls the agent API and answers every
// message with "echo: <content>". Register it first: `airlock agents add echo-ts` prints its token.
//   make examples-ts && examples/node_modules/.bin/tsc -p examples --outDir /tmp/agent && \
//   AIRLOCK_API=http://127.0.0.1:8789 AIRLOCK_TOKEN=... node /tmp/agent/agent.js
const api: string = process.env.AIRLOCK_API ?? "http://127.0.0.1:8789";
const headers: Record<string, string> = { Authorization: `Bearer ${process.env.AIRLOCK_TOKEN}`,
  "Content-Type": "application/json" };
const maxReplies: number = Number(process.env.MAX_REPLIES ?? Infinity); // tests stop after a few

interface Message { id: string; lease_token: string; channel: string; user_id: string; content: string }
interface Leased { messages: Message[] }
interface Accepted { outbox_id: string }

async function call<T>(method: "GET" | "POST", path: string, body?: object, key?: string): Promise<T> {
  const h = key ? { ...headers, "Idempotency-Key": key } : headers;
  const res = await fetch(api + path, { method, headers: h, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

let replies = 0;
while (replies < maxReplies) {
  const { messages } = await call<Leased>("GET", "/v1/messages?wait=30&limit=10");
  for (const m of messages) {
    await call<unknown>("POST", `/v1/messages/${m.id}/status`, { status: "thinking" });
    const body = { text: `echo: ${m.content}`, lease_token: m.lease_token };
    const { outbox_id } = await call<Accepted>("POST", `/v1/messages/${m.id}/reply`, body, `reply-${m.id}`);
    console.log(`replied to ${m.id} (${m.channel}/${m.user_id}): outbox ${outbox_id}`);
    replies += 1;
  }
}
