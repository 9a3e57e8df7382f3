// An Airlock agent in TypeScript (plain `fetch`, no runtime packages): long-polls the agent API and answers with
// "echo: <content>". Messages a user sent in a row (several of one conversation in one lease) get one answer, to the
// newest, echoing them all ("echo: first / second"); the older ones are acknowledged together in one request
// (POST /v1/messages/ack).
// Register it first: `airlock agents add echo-ts` prints its token.
//   make examples-ts && examples/node_modules/.bin/tsc -p examples --outDir /tmp/agent && \
//   AIRLOCK_API=http://127.0.0.1:8789 AIRLOCK_TOKEN=... node /tmp/agent/agent.js
const api: string = process.env.AIRLOCK_API ?? "http://127.0.0.1:8789";
const headers: Record<string, string> = { Authorization: `Bearer ${process.env.AIRLOCK_TOKEN}`,
  "Content-Type": "application/json" };
const maxReplies: number = Number(process.env.MAX_REPLIES ?? Infinity); // tests stop after a few

interface Message { id: string; lease_token: string; channel: string; user_id: string; content: string;
  conversation: string }
interface Leased { messages: Message[] }
interface Accepted { outbox_id: string }
type AckResult = { id: string; state: "acked" } | { id: string; error: { status: 404 | 409; message: string } };
interface AckResults { results: AckResult[] }

async function call<T>(method: "GET" | "POST", path: string, body?: object, key?: string): Promise<T> {
  const h = key ? { ...headers, "Idempotency-Key": key } : headers;
  const res = await fetch(api + path, { method, headers: h, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

let replies = 0;
while (replies < maxReplies) {
  const { messages } = await call<Leased>("GET", "/v1/messages?wait=30&limit=10");
  const newest = new Map<string, Message>();
  const texts = new Map<string, string[]>();
  for (const m of messages) { // a lease is oldest first: the last one stays
    newest.set(m.conversation, m);
    texts.set(m.conversation, [...(texts.get(m.conversation) ?? []), m.content]);
  }
  const older = messages.filter((m) => newest.get(m.conversation) !== m);
  if (older.length > 0) { // up to 100 in one request; each result says acked, or why not (404, 409)
    const items = older.map((m) => ({ id: m.id, lease_token: m.lease_token }));
    const { results } = await call<AckResults>("POST", "/v1/messages/ack", { messages: items });
    for (const r of results) if ("error" in r) console.error(`not acknowledged ${r.id}: ${r.error.message}`);
    console.log(`acknowledged ${older.length} older message(s) in one request`);
  }
  for (const m of newest.values()) {
    await call<unknown>("POST", `/v1/messages/${m.id}/status`, { status: "thinking" });
    const said = (texts.get(m.conversation) ?? [m.content]).join(" / ");
    const body = { text: `echo: ${said}`, lease_token: m.lease_token };
    const { outbox_id } = await call<Accepted>("POST", `/v1/messages/${m.id}/reply`, body, `reply-${m.id}`);
    console.log(`replied to ${m.id} (${m.channel}/${m.user_id}): outbox ${outbox_id}`);
    replies += 1;
  }
}
